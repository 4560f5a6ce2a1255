"""Statistics from the case records (sop.reports): counting rules on a synthetic cohort, АППГ, a year boundary.

The cohort is built row by row in the test; the expected figures are worked out in the comments next to it."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from engine.models import HumanTask, Municipality
from sop.models import Case, CaseAgency, Family, InstanceScope, Person, fold
from sop.reports import Period, build_report, change_percent, change_text, year_earlier
from sop.reports.statistics import age_band, age_on

from .support import DIAGRAMS

MSK = ZoneInfo("Europe/Moscow")
YEAR = Period(date(2025, 1, 1), date(2025, 12, 31))
AS_OF = date(2025, 12, 31)


class Cohort:
    """Writes families, children and cases straight into the tables."""

    def __init__(self, engine):
        self.engine = engine
        self.agencies = {name: engine.identity.add_agency(name, municipality, kind=kind) for name, municipality, kind
                         in (("КДН Йошкар-Олы", "Йошкар-Ола", "commission"), ("Школа № 1", "Йошкар-Ола", "education"),
                             ("ОМВД", "Йошкар-Ола", "police"), ("КДН Волжска", "Волжск", "commission"))}
        with engine.db.session() as db:
            self.municipalities = dict(db.execute(select(Municipality.name, Municipality.id)).all())
        self.cases = 0

    def family(self, municipality: str, name: str, children: list[tuple[str, str | None]]) -> int:
        with self.engine.db.session() as db:
            family = Family(municipality_id=self.municipalities[municipality], name=name,
                            created_at=datetime(2020, 1, 1, tzinfo=MSK))
            db.add(family)
            db.flush()
            for first, born in children:
                db.add(Person(family_id=family.id, kind="child", last_name=name, first_name=first,
                              birth_date=date.fromisoformat(born) if born else None,
                              name_key=fold(f"{name} {first}")))
            db.add(Person(family_id=family.id, kind="parent", last_name=name, first_name="Мать",
                          birth_date=date(1985, 1, 1), name_key=fold(f"{name} Мать")))
            return family.id

    def case(self, family_id: int, recognized: str | None, closed: str | None = None, grounds: str | None = None,
             curator: str | None = None, agencies: tuple[str, ...] = (), status: str | None = None) -> int:
        self.cases += 1
        with self.engine.db.session() as db:
            family = db.get(Family, family_id)
            case = Case(number=f"{self.cases}/T", municipality_id=family.municipality_id, family_id=family_id,
                        status=status or ("closed" if closed else "recognized" if recognized else "check"),
                        received_on=date(2020, 1, 1), curator=curator,
                        recognized_on=date.fromisoformat(recognized) if recognized else None,
                        closed_on=date.fromisoformat(closed) if closed else None, closure_grounds=grounds,
                        created_at=datetime(2020, 1, 1, tzinfo=MSK))
            case.participants = [CaseAgency(agency_id=self.agencies[a]) for a in agencies]
            db.add(case)
            db.flush()
            return case.id


def cohort_of_the_year(engine) -> Cohort:
    """The reference cohort. Report: Йошкар-Ола at 31.12.2025 for 2025; АППГ at 31.12.2024 for 2024.

    F1 Орловы   children Аня 31.12.2020 (5 on the very date: band 5–6), Боря 01.01.2008 (17), Вера 31.12.2007
                (18 on the very date: no longer a child in СОП, but 17 on recognition)
                case K1 recognised 01.01.2025 (first day of the period), open, curator cur1, agencies Школа, ОМВД
    F2 Петровы  child Гоша 31.12.2007   K2 recognised 10.06.2024, removed 31.12.2025 (last day), age_18, cur2
    F3 Смирновы child Дина 15.06.2015   K3 recognised 01.03.2023, removed 01.02.2024, improved
                                        K4 recognised 31.12.2024, open, cur1 — the same child in two cases
    F4 Орловы   (the grandmother's household) child Боря 01.01.2008 — the same child as in F1 — and Ева
                01.01.2021 (4 on 31.12.2025, 5 the next day: band 0–4); K5 recognised 01.03.2025, open, no curator,
                agency Школа
    F5 Козловы  child Жора 05.05.2012   K6 recognised 31.12.2024, removed 01.01.2025 (first day), moved, cur2
    F6 Новы     child Зоя 2016          a case in check (never recognised): not counted
    F7 Волковы  (Волжск) child Иван 01.01.2019   K7 recognised 01.02.2025, open: another municipality

    2025, at 31.12.2025
      families in СОП: F1 (K1), F3 (K4), F4 (K5) = 3          (K2 removed on the date, K6 on 01.01)
      children in СОП: Аня, Боря (once, in F1 and F4), Дина, Ева = 4   (Вера turned 18 on the date)
        bands: 0–4 Ева, 5–6 Аня, 10–13 Дина, 16–17 Боря
      recognised: K1, K5 -> families F1, F4 = 2; children Аня, Боря, Вера, Ева = 4
      removed: K2 (age_18), K6 (moved) -> families 2, children Гоша, Жора = 2
      cases per curator at the date: cur1 K1, K4 = 2; no curator K5 = 1
      cases per agency: Школа K1, K5 = 2; ОМВД K1 = 1
    2024 (АППГ), at 31.12.2024
      families in СОП: F2 (K2), F3 (K4 from its first day), F5 (K6) = 3
      children: Гоша (17: band 16–17), Дина (9: 7–9), Жора (12: 10–13) = 3
      recognised: K2, K4, K6 -> families 3, children 3
      removed: K3 (improved) -> 1 family, 1 child
      curators: cur2 K2, K6 = 2; cur1 K4 = 1
    """
    c = Cohort(engine)
    f1 = c.family("Йошкар-Ола", "Орлов", [("Аня", "2020-12-31"), ("Боря", "2008-01-01"), ("Вера", "2007-12-31")])
    c.case(f1, "2025-01-01", curator="cur1", agencies=("Школа № 1", "ОМВД"))
    f2 = c.family("Йошкар-Ола", "Петров", [("Гоша", "2007-12-31")])
    c.case(f2, "2024-06-10", "2025-12-31", "age_18", curator="cur2")
    f3 = c.family("Йошкар-Ола", "Смирнов", [("Дина", "2015-06-15")])
    c.case(f3, "2023-03-01", "2024-02-01", "improved")
    c.case(f3, "2024-12-31", curator="cur1")
    f4 = c.family("Йошкар-Ола", "Орлов", [("Боря", "2008-01-01"), ("Ева", "2021-01-01")])
    c.case(f4, "2025-03-01", agencies=("Школа № 1",))
    f5 = c.family("Йошкар-Ола", "Козлов", [("Жора", "2012-05-05")])
    c.case(f5, "2024-12-31", "2025-01-01", "moved", curator="cur2")
    f6 = c.family("Йошкар-Ола", "Нов", [("Зоя", "2016-04-04")])
    c.case(f6, None)
    f7 = c.family("Волжск", "Волков", [("Иван", "2019-01-01")])
    c.case(f7, "2025-02-01")
    return c


def test_dates_ages_and_the_change():
    assert year_earlier(date(2024, 2, 29)) == date(2023, 2, 28)
    assert YEAR.previous_year() == Period(date(2024, 1, 1), date(2024, 12, 31))
    assert age_on(date(2020, 12, 31), date(2025, 12, 30)) == 4 and age_on(date(2020, 12, 31), AS_OF) == 5
    assert age_band(date(2021, 1, 1), AS_OF) == "0–4 года" and age_band(date(2020, 12, 31), AS_OF) == "5–6 лет"
    assert age_band(date(2007, 12, 31), AS_OF) is None  # 18 today
    assert age_band(date(2008, 1, 1), AS_OF) == "16–17 лет"
    assert change_percent(3, 2) == 50.0 and change_percent(2, 3) == -33.3 and change_percent(5, 0) is None
    assert (change_text(3, 2), change_text(2, 3), change_text(4, 4), change_text(1, 0)) == \
           ("+50,0", "−33,3", "0,0", "—")
    with pytest.raises(ValueError):
        Period(date(2025, 2, 1), date(2025, 1, 1))
    assert [m.start.month for m in Period(date(2025, 11, 15), date(2026, 2, 3)).months()] == [11, 12, 1, 2]


def test_counts_of_distinct_families_and_children_at_the_edges(engine):
    cohort = cohort_of_the_year(engine)
    with engine.db.session() as db:
        report = build_report(db, [cohort.municipalities["Йошкар-Ола"]], AS_OF, YEAR, MSK, "Йошкар-Ола")
    f = report.figures
    assert f["families_at"] == (3, 3)
    assert f["children_at"] == (4, 3)
    assert f["families_recognised"] == (2, 3)
    assert f["children_recognised"] == (4, 3)
    assert f["families_removed"] == (2, 1)
    assert f["children_removed"] == (2, 1)
    main = {row[0]: row[1:] for row in report.section("main").rows}
    assert main["Семей признано находящимися в СОП за период"] == [2, 3, "−33,3"]
    assert main["Семей снято с учета за период"] == [2, 1, "+100,0"]
    assert main["Семей в СОП на дату"] == [3, 3, "0,0"]

    ages = {row[0]: row[1:3] for row in report.section("age").rows}
    assert ages == {"0–4 года": [1, 0], "5–6 лет": [1, 0], "7–9 лет": [0, 1], "10–13 лет": [1, 1],
                    "14–15 лет": [0, 0], "16–17 лет": [1, 1], "дата рождения не указана": [0, 0]}

    grounds = {row[0]: row[1:] for row in report.section("grounds").rows}
    assert grounds["достижение 18-летнего возраста"] == [1, 0, "—", 1, 0, "—"]
    assert grounds["выезд на постоянное место жительства за пределы муниципального образования"] == \
           [1, 0, "—", 1, 0, "—"]
    assert grounds["устранение обстоятельств, улучшение обстановки в семье"] == [0, 1, "−100,0", 0, 1, "−100,0"]
    assert sum(r[1] for r in report.section("grounds").rows) == f["families_removed"][0]

    curators = {row[0]: row[1:3] for row in report.section("curators").rows}
    assert curators == {"cur1": [2, 1], "куратор не назначен": [1, 0], "cur2": [0, 2]}
    agencies = {row[0]: row[1:3] for row in report.section("agencies").rows}
    assert agencies == {"Школа № 1": [2, 0], "ОМВД": [1, 0]}
    # the months: 12 of 2025; at the end of January F1, F2, F3 are on the register (F5 removed on 01.01)
    assert len(report.months) == 12 and report.months[0].label == "январь 2025"
    assert (report.months[0].families, report.months[0].recognised, report.months[0].removed) == (3, 1, 1)
    assert (report.months[11].families, report.months[11].removed, report.months[11].families_before) == (3, 1, 3)


def test_the_regional_view_sums_municipalities_and_shows_each(engine):
    cohort = cohort_of_the_year(engine)
    ids = [cohort.municipalities["Йошкар-Ола"], cohort.municipalities["Волжск"]]
    with engine.db.session() as db:
        report = build_report(db, ids, AS_OF, YEAR, MSK, "Регион", by_municipality=True)
        volzhsk = build_report(db, ids[1:], AS_OF, YEAR, MSK, "Волжск")
    # Волжск adds F7 (recognised 01.02.2025) with Иван: 3 + 1 families, 4 + 1 children
    assert report.figures["families_at"] == (4, 3) and report.figures["children_at"] == (5, 3)
    assert report.figures["families_recognised"] == (3, 3)
    assert volzhsk.figures["families_at"] == (1, 0)
    rows = {row[0]: row[1:] for row in report.section("municipalities").rows}
    assert rows["Волжск"][:3] == [1, 0, "—"] and rows["Йошкар-Ола"][:3] == [3, 3, "0,0"]
    assert rows["Йошкар-Ола"][3:6] == [4, 3, "+33,3"]


def test_emergencies_and_deadlines_from_the_engine_tasks(engine):
    """Inspections of the emergency path and deadlines of completed steps, read from the task rows.

    2025: an inspection with a removal dated 28.12.2025 completed on 10.01.2026 (counts in 2025), an inspection
    without removal on 15.03.2025 with a threat confirmed, a removal in Волжск (another municipality); 2024: one
    removal. Deadlines (check step, Йошкар-Ола): in 2025 two on time (one exactly at the due instant) and one late;
    in 2024 one on time; a cancelled task and a task without a due date are not counted."""
    cohort = cohort_of_the_year(engine)
    engine.repository.deploy([DIAGRAMS / "lifecycle.bpmn", DIAGRAMS / "check_form.json"], deployed_by="tester")
    yoshkar, volzhsk = cohort.municipalities["Йошкар-Ола"], cohort.municipalities["Волжск"]
    instances = {}
    with engine.db.session() as db:
        family_cases = dict(db.execute(select(Case.family_id, Case.id).where(Case.status == "recognized")).all())
        families = dict(db.execute(select(Family.name, Family.id)).all())
    for key, municipality, family in (("y", yoshkar, "Смирнов"), ("v", volzhsk, "Волков")):
        instance_id = engine.runtime.start("lifecycle", {"received": "2025-10-30", "curator": "secretary"})
        with engine.db.session() as db:
            db.add(InstanceScope(instance_id=instance_id, case_id=family_cases[families[family]],
                                 municipality_id=municipality))
        instances[key] = instance_id

    def task(instance, form, completed, due=None, data=None, status="completed", agency=None):
        name = {"em_inspection": "Выезд и обследование", "sop_check": "Проверка", "sop_proposals": "Предложения"}[form]
        return HumanTask(id=str(uuid.uuid4()), instance_id=instances[instance], process_key="p", element_id=form,
                         name=f"{name} — {agency}" if agency else name, agency_id=cohort.agencies.get(agency),
                         form_key=form, candidates="|", candidate_roles=[], due=due, status=status,
                         completed_at=completed, completed_by="x", data=data,
                         created_at=datetime(2020, 1, 1, tzinfo=MSK),
                         municipality_id=yoshkar if instance == "y" else volzhsk)

    due = datetime(2025, 5, 20, 23, 59, 59, tzinfo=MSK)
    with engine.db.session() as db:
        db.add_all([
            task("y", "em_inspection", datetime(2026, 1, 10, 12, tzinfo=MSK),
                 data={"visit_date": "2025-12-27", "removed": True, "removal_date": "2025-12-28",
                       "threat_confirmed": True}),
            task("y", "em_inspection", datetime(2025, 3, 15, 12, tzinfo=MSK),
                 data={"visit_date": "2025-03-15", "removed": False, "threat_confirmed": True}),
            task("v", "em_inspection", datetime(2025, 4, 1, 12, tzinfo=MSK),
                 data={"visit_date": "2025-04-01", "removed": True, "removal_date": "2025-04-01"}),
            task("y", "em_inspection", datetime(2024, 7, 1, 12, tzinfo=MSK),
                 data={"visit_date": "2024-07-01", "removed": True, "removal_date": "2024-07-01"}),
            task("y", "sop_check", due - timedelta(days=1), due),
            task("y", "sop_check", due, due),
            task("y", "sop_check", due + timedelta(seconds=1), due),
            task("y", "sop_check", due - timedelta(days=365), due - timedelta(days=364)),
            task("y", "sop_check", due, due, status="cancelled"),
            task("y", "sop_check", due, None),
            task("v", "sop_check", due + timedelta(days=1), due),
            # one task per agency, named for it: one step
            task("y", "sop_proposals", due, due, agency="Школа № 1"),
            task("y", "sop_proposals", due + timedelta(days=2), due, agency="ОМВД"),
        ])
    with engine.db.session() as db:
        report = build_report(db, [yoshkar], AS_OF, YEAR, MSK, "Йошкар-Ола")
        region = build_report(db, [yoshkar, volzhsk], AS_OF, YEAR, MSK, "Регион", by_municipality=True)
    # both 2025 inspections were of the same family (Смирновы): one family visited, one with a threat, one removal
    assert report.figures["emergency_visits"] == (1, 1)
    assert report.figures["emergency_threats"] == (1, 0)
    assert report.figures["emergency_removals"] == (1, 1)
    assert region.figures["emergency_removals"] == (2, 1)  # + Волковы in Волжск
    steps = {row[0]: row[1:] for row in report.section("deadlines").rows}
    # Проверка: 2 on time, 1 late, 66,7 %; АППГ 1 on time, 0 late, 100,0 %; on time +100 %
    assert steps["Проверка"] == [2, 1, "66,7", 1, 0, "100,0", "+100,0"]
    assert steps["Предложения"] == [1, 1, "50,0", 0, 0, "—", "—"] and len(steps) == 2
    assert {r[0]: r[1:3] for r in region.section("deadlines").rows}["Проверка"] == [2, 2]  # + Волжск's late one
    assert report.months[11].label == "декабрь 2025"


def test_appg_across_a_year_boundary(engine):
    """December–January: the period 01.12.2025–31.01.2026 beside 01.12.2024–31.01.2025.

    Recognised: 15.12.2024 and 20.01.2025 last year (2 families); 20.12.2025, 10.01.2026 and 31.01.2026 this year
    (3 families): +50 %. At 31.01.2026 the three new families and the one of 20.01.2025 (still open) are on the
    register (4); at 31.01.2025 the two of last year's window (2), since the one of 15.12.2024 was removed
    on 01.01.2026, between the two dates. The months: December 2025 (1 recognised, АППГ 1) and January 2026
    (2, АППГ 1; removed 1, АППГ 0)."""
    c = Cohort(engine)
    recognised = ("2024-12-15", "2025-01-20", "2025-12-20", "2026-01-10", "2026-01-31")
    for number, day in enumerate(recognised):
        family = c.family("Йошкар-Ола", f"Семья{number}", [(f"Ребенок{number}", "2015-01-01")])
        c.case(family, day, "2026-01-01" if number == 0 else None, "improved" if number == 0 else None)
    period = Period(date(2025, 12, 1), date(2026, 1, 31))
    with engine.db.session() as db:
        report = build_report(db, [c.municipalities["Йошкар-Ола"]], period.end, period, MSK, "Йошкар-Ола")
    assert report.period_before == Period(date(2024, 12, 1), date(2025, 1, 31))
    assert report.figures["families_recognised"] == (3, 2)
    assert report.figures["families_at"] == (4, 2)
    assert report.figures["families_removed"] == (1, 0)
    main = {row[0]: row[1:] for row in report.section("main").rows}
    assert main["Семей признано находящимися в СОП за период"] == [3, 2, "+50,0"]
    assert main["Семей снято с учета за период"] == [1, 0, "—"]
    assert [(m.label, m.recognised, m.recognised_before, m.removed, m.removed_before) for m in report.months] == \
           [("декабрь 2025", 1, 1, 0, 0), ("январь 2026", 2, 1, 1, 0)]


def test_the_regional_total_counts_a_child_in_two_municipalities_once(engine):
    """The regional view builds each municipality's counts once and derives the region's from them; a family or
    child on the register in two municipalities is still one family or child of the region.

    Йошкар-Ола: F1 Лебедевы, child Мира 01.03.2015, K1 recognised 01.02.2025, open.
    Волжск:     F2 Лебедевы (the father's household), the same Мира (same name and birth date), K2 recognised
                01.06.2025, open; child Лев 10.10.2010, who is in no other family.
    Волжск:     F3 Соколовы, child Ника 05.05.2012, K3 recognised 01.03.2024, removed 01.04.2025.
    At 31.12.2025: Йошкар-Ола 1 family, 1 child (Мира); Волжск 1 family (F2), 2 children (Мира, Лев);
    the region 2 families, 2 children (Мира once, Лев) — not 1 + 2 = 3 children.
    Recognised in 2025: Йошкар-Ола 1 family, 1 child; Волжск 1 family, 2 children; the region 2 families,
    2 children. At 31.12.2024 (АППГ): Волжск F3 with Ника; the region the same, 1 family, 1 child."""
    c = Cohort(engine)
    f1 = c.family("Йошкар-Ола", "Лебедев", [("Мира", "2015-03-01")])
    c.case(f1, "2025-02-01")
    f2 = c.family("Волжск", "Лебедев", [("Мира", "2015-03-01"), ("Лев", "2010-10-10")])
    c.case(f2, "2025-06-01")
    f3 = c.family("Волжск", "Соколов", [("Ника", "2012-05-05")])
    c.case(f3, "2024-03-01", "2025-04-01", "improved")
    ids = [c.municipalities["Йошкар-Ола"], c.municipalities["Волжск"]]
    with engine.db.session() as db:
        region = build_report(db, ids, AS_OF, YEAR, MSK, "Регион", by_municipality=True)
        single = {m: build_report(db, [m], AS_OF, YEAR, MSK, "МО") for m in ids}
    assert region.figures["families_at"] == (2, 1)
    assert region.figures["children_at"] == (2, 1)
    assert region.figures["children_recognised"] == (2, 1)
    assert region.figures["families_recognised"] == (2, 1)
    assert region.figures["children_removed"] == (1, 0)
    ages = {row[0]: row[1:3] for row in region.section("age").rows}
    assert ages["10–13 лет"] == [1, 1] and ages["14–15 лет"] == [1, 0]  # Мира 10, Лев 15; АППГ Ника 12
    rows = {row[0]: row[1:] for row in region.section("municipalities").rows}
    assert rows["Йошкар-Ола"][:6] == [1, 0, "—", 1, 0, "—"]
    assert rows["Волжск"][:6] == [1, 1, "0,0", 2, 1, "+100,0"]
    # each municipality's row is what its own municipal report says
    for name, municipality in (("Йошкар-Ола", ids[0]), ("Волжск", ids[1])):
        own = single[municipality].figures
        assert rows[name][0:2] == list(own["families_at"]) and rows[name][3:5] == list(own["children_at"])
        assert rows[name][6:10] == [*own["families_recognised"], *own["families_removed"]]
    # the same region built without the table by municipality gives the same figures
    with engine.db.session() as db:
        assert build_report(db, ids, AS_OF, YEAR, MSK, "Регион").figures == region.figures


def test_completed_task_queries_read_the_municipalities_period_through_the_index(engine):
    """Deadlines and emergencies read the completed tasks of the municipalities in the period through
    ix_human_task_completed_municipality, not every completed task (checked with SQLite's query plan, so the test
    does not depend on the machine's speed)."""
    if engine.db.engine.dialect.name != "sqlite":
        pytest.skip("the query plan checked is SQLite's")
    from sqlalchemy import event, text

    from sop.reports.statistics import deadline_rows, load_emergencies

    c = Cohort(engine)
    ids = list(c.municipalities.values())
    for n in range(8):  # the region's report asks for many municipalities at once
        engine.identity.add_agency(f"КДН {n}", f"МО {n}", kind="commission")
    with engine.db.session() as db:
        ids = list(db.scalars(select(Municipality.id)))
    assert len(ids) == 10
    statements: list[tuple[str, object]] = []

    def remember(_conn, _cursor, statement, parameters, _context, _many):
        if "human_task" in statement:
            statements.append((statement, parameters))

    event.listen(engine.db.engine, "before_cursor_execute", remember)
    try:
        with engine.db.session() as db:
            deadline_rows(db, ids, YEAR, MSK)
            load_emergencies(db, ids, YEAR.start, YEAR.end, MSK)
    finally:
        event.remove(engine.db.engine, "before_cursor_execute", remember)
    assert len(statements) == 2
    with engine.db.engine.connect() as conn:
        for statement, parameters in statements:
            plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}",
                                                                         parameters))
            assert "ix_human_task_completed_municipality" in plan, plan
            assert "completed_at>?" in plan.replace(" ", ""), plan
        assert conn.execute(text("SELECT count(*) FROM sqlite_master WHERE type = 'index' "
                                 "AND name = 'ix_human_task_completed_municipality'")).scalar() == 1
