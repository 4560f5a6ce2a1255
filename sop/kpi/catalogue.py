"""The key indicators of the programme of seed 003 (Плесецкий округ, 2025–2026, «Ключевые показатели реализации
Программы») with their planned values per half-year: the default catalogue that `kurator demo` and
`kurator kpi seed` load. Names are shortened; numbers, units and targets are those of the table.

The aggregation follows the table's own words: «(с нарастающим)» / «(нарастающий)» is cumulative from the
programme's start (July 2025); «функционирующих», «находящихся», «удельный вес» are a stock at the end of the
half-year; the rest count what was done in the half-year. Two indicators are better when lower (children in
residential care, families in СОП: the plan is a ceiling). Two are counted from the records: families in СОП (the
statistics' stock, `sop/reports/statistics.py`) and the commission's meetings held (`sop/meetings`)."""

from __future__ import annotations

from datetime import date

from .models import CUMULATIVE, PERIOD, STOCK

PROGRAMME_START = date(2025, 7, 1)  # «Срок реализации Программы: июль 2025 – декабрь 2026 годов»
HALVES = ("2025-H2", "2026-H1", "2026-H2")

FAMILIES_IN_SOP = "families_in_sop"
MEETINGS_HELD = "meetings_held"
SOURCES = {FAMILIES_IN_SOP: "учетные данные: семьи в СОП на конец полугодия",
           MEETINGS_HELD: "учетные данные: проведенные заседания КДНиЗП"}

S1 = "1. Целевые группы системы профилактики социального сиротства"
S2 = "2. Управленческая и финансовая модель"
S3 = "3. Межведомственное взаимодействие"
S4 = "4. Служба «Дети в семье»"
S5 = "5. Методическая и образовательная поддержка"
S6 = "6. Информационно-аналитическое сопровождение"
S7 = "7. Практики помощи"
S8 = "8. Работа с общественными организациями"

# code, section, name, unit, aggregation, source, lower is better, plan for HALVES
INDICATORS: tuple[tuple, ...] = (
    ("1.1", S1, "Дети на круглосуточном стационарном пребывании в детских учреждениях", "единиц", STOCK, None,
     True, (35, 31, 26)),
    ("1.2", S1, "Удельный вес детей, возвращенных в кровную семью", "%", STOCK, None, False, (74, 75, 76)),
    ("1.3", S1, "Семьи, находящиеся в социально опасном положении", "единиц", STOCK, FAMILIES_IN_SOP, True,
     (97, 95, 93)),
    ("1.4", S1, "Случаи восстановления в родительских правах, отмены ограничения", "единиц", PERIOD, None, False,
     (1, 2, 3)),
    ("2.1", S2, "Разработанные и утвержденные муниципальные программы («дорожные карты»)", "единиц", CUMULATIVE,
     None, False, (1, 1, 1)),
    ("2.2", S2, "Аналитические справки и постановления по причинам помещения детей в учреждения", "единиц", PERIOD,
     None, False, (2, 2, 2)),
    ("3.1", S3, "Межведомственные заседания по вопросам профилактики семейного неблагополучия", "единиц",
     CUMULATIVE, MEETINGS_HELD, False, (1, 2, 3)),
    ("3.2", S3, "Семьи, рассмотренные на межведомственных консилиумах, с антикризисным сопровождением", "единиц",
     CUMULATIVE, None, False, (6, 14, 23)),
    ("3.3", S3, "Функционирующие межведомственные мобильные бригады экстренной помощи семье", "единиц", STOCK, None,
     False, (1, 1, 1)),
    ("4.1", S4, "Функционирующие службы «Дети в семье»", "единиц", STOCK, None, False, (1, 1, 1)),
    ("4.2", S4, "Сопровожденные ресурсные родители по восстановлению в родительских правах", "единиц", CUMULATIVE,
     None, False, (3, 6, 9)),
    ("4.3", S4, "Сопровожденные семьи по возвращению детей из государственных учреждений", "единиц", CUMULATIVE,
     None, False, (10, 17, 23)),
    ("5.1", S5, "Выездные обучающие семинары по специальному проекту «Вызов»", "единиц", CUMULATIVE, None, False,
     (4, 8, 12)),
    ("5.2", S5, "Специалисты, участвовавшие в региональных совещаниях, обучениях, курсах", "единиц", PERIOD, None,
     False, (13, 16, 19)),
    ("5.3", S5, "Мероприятия по профилактике профессионального выгорания специалистов", "единиц", CUMULATIVE, None,
     False, (1, 2, 3)),
    ("6.1", S6, "Публикации о мерах социальной поддержки", "единиц", CUMULATIVE, None, False, (2, 4, 6)),
    ("6.2", S6, "Публикации о деятельности службы «Дети в семье»", "единиц", CUMULATIVE, None, False, (4, 10, 16)),
    ("6.3", S6, "Мероприятия ко Дню семьи, любви и верности, Дню защиты детей, Дню матери, конкурсы", "единиц",
     PERIOD, None, False, (3, 4, 5)),
    ("6.4", S6, "Публикации о результатах проекта «Вызов»", "единиц", CUMULATIVE, None, False, (4, 9, 14)),
    ("6.5", S6, "Информационные листовки, буклеты и брошюры для родителей", "единиц", CUMULATIVE, None, False,
     (5, 10, 15)),
    ("6.6", S6, "Публикации в рубрике «Советы родителям»", "единиц", CUMULATIVE, None, False, (6, 13, 20)),
    ("7.1", S7, "Успешные практики работы с кровной семьей при нахождении детей в стационаре", "единиц", PERIOD,
     None, False, (1, 2, 2)),
    ("7.2", S7, "Семьи в ТЖС/СОП с зависимостями родителей, получившие помощь", "единиц", CUMULATIVE, None, False,
     (4, 8, 13)),
    ("7.3", S7, "Мероприятия по формированию мотивирующей социальной среды", "единиц", PERIOD, None, False,
     (2, 4, 4)),
    ("7.4", S7, "Встречи-семинары с семьями в сфере молодежной политики", "единиц", PERIOD, None, False, (1, 2, 1)),
    ("7.5", S7, "Семьи в ТЖС/СОП, получившие помощь в трудоустройстве и обучении", "единиц", CUMULATIVE, None,
     False, (1, 3, 4)),
    ("7.6", S7, "Семьи в ТЖС/СОП, получившие помощь по социальному контракту", "единиц", CUMULATIVE, None, False,
     (1, 3, 5)),
    ("7.7", S7, "Встречи клуба «Устойчивая семья»", "единиц", CUMULATIVE, None, False, (10, 20, 30)),
    ("7.8", S7, "Родители, восстановленные в правах, под наставничеством", "единиц", STOCK, None, False, (2, 3, 4)),
    ("7.9", S7, "Замещающие семьи на сопровождении", "единиц", STOCK, None, False, (8, 12, 14)),
    ("7.10", S7, "Проведенная социальная супервизия", "единиц", PERIOD, None, False, (10, 10, 10)),
    ("8.1", S8, "Организации, с которыми организовано взаимодействие", "единиц", STOCK, None, False, (3, 3, 3)),
    ("8.2", S8, "Семьи, получившие спонсорскую и благотворительную помощь", "единиц", PERIOD, None, False,
     (5, 8, 14)),
)


def field_key(code: str) -> str:
    """The campaign forms' field of an indicator: «7.10» → «kpi_7_10»."""
    return "kpi_" + code.replace(".", "_")


def entered_codes() -> list[str]:
    """The indicators whose actual is entered in the campaign (no records source)."""
    return [row[0] for row in INDICATORS if row[5] is None]
