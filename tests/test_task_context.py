"""The task context (sop.task_context): what each decision shows above its form, what the form starts with, the
options of `valuesKey` fields, data scope; and the escalation that passes the overdue visit to a specialist."""

from __future__ import annotations

from datetime import date, timedelta
from types import SimpleNamespace
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, update

import sop
from engine import InvalidInput
from engine.errors import Conflict, PermissionDenied
from engine.forms import validate_submission
from engine.models import Agency, HumanTask, User
from sop import casefile, jobs
from sop.models import Activity, Case, ExecutionReport, Reconciliation
from sop.task_context import task_context

from .test_sop_diagrams import (
    APPROVE,
    CARD,
    DISPATCH,
    DRAFT,
    FORMS,
    RECOGNITION,
    REVIEW_CLOSE,
    SUMMARY,
    WORKFLOWS,
    at,
)
from .test_sop_service import SIGNAL, report_all

PASSWORD = "demo-password"
HASH = PasswordHasher().hash(PASSWORD)
CHECK = {"minor_name": "Иванов Петр, 12.03.2012", "parents_names": "Иванова Анна Сергеевна",
         "living_conditions": "Отдельного места для занятий нет", "family_criteria": ["c1", "c2"],
         "housing_type": "apartment", "housing_area": 42.5, "sanitary_state": "unsatisfactory",
         "danger_level": "high", "sop_confirmed": True, "conclusion": "Семья находится в СОП",
         "conclusion_date": "2025-10-30", "head_name": "Кузнецов А. П."}
COMMISSION, SCHOOL, POLICE = "КДНиЗП г. Йошкар-Олы", "МБОУ СОШ № 5", "ОМВД России по г. Йошкар-Оле"
GUARDIANSHIP, SOCIAL = "Отдел опеки и попечительства", "КЦСОН г. Йошкар-Олы"
PROPOSALS = {
    POLICE: {"agency_name": "ОМВД", "proposal_situation": "Мать злоупотребляет алкоголем",
             "proposal_tasks": "Профилактика правонарушений", "proposal_activities": "Беседа инспектора ПДН\n"
             "Рейд по месту жительства", "proposal_term": "до 01.03.2026"},
    SCHOOL: {"agency_name": "СОШ № 5", "proposal_situation": "Пропуски занятий без причины",
             "proposal_tasks": "Вернуть ребенка к учебе", "proposal_activities": "Контроль посещаемости; ежедневно",
             "proposal_term": "весь учебный год"},
}
# who does an agency's task: its specialist
AGENCY_USERS = {SCHOOL: "school", POLICE: "police", GUARDIANSHIP: "guardian", SOCIAL: "specialist"}


@pytest.fixture
def world(engine):
    """Two municipalities with their agencies, users with full names (curators among them, one retired), the SOP
    diagrams and forms deployed."""
    service = sop.install(engine)
    identity = engine.identity
    for name, kind in ((COMMISSION, "commission"), (SCHOOL, "education"), (POLICE, "police"),
                       (GUARDIANSHIP, "guardianship"), (SOCIAL, "social_protection")):
        identity.add_agency(name, "Йошкар-Ола", kind=kind)
    identity.add_agency("КДНиЗП Волжска", "Волжск", kind="commission")
    identity.add_agency("КЦСОН Волжска", "Волжск", kind="social_protection")
    for username, full_name, roles, agency in (
            ("secretary", "Смирнова Ольга Викторовна", ["commission_secretary"], COMMISSION),
            ("chair", "Кузнецов Андрей Петрович", ["commission"], COMMISSION),
            ("school", "Лебедева Ирина Владимировна", ["education", "agency_specialist"], SCHOOL),
            ("police", "Орлов Дмитрий Сергеевич", ["police", "agency_specialist"], POLICE),
            ("guardian", "Попова Наталья Ивановна", ["guardianship", "agency_specialist"], GUARDIANSHIP),
            ("guardian2", "Белова Анна Игоревна", ["guardianship"], GUARDIANSHIP),
            ("guardian_clerk", "Егорова Вера Павловна", ["manager"], GUARDIANSHIP),
            ("curator1", "Васильева Елена Николаевна", ["curator"], SOCIAL),
            ("curator2", "Андреева Мария Сергеевна", ["curator", "agency_specialist"], SCHOOL),
            ("retired", "Яковлева Галина Петровна", ["curator"], SOCIAL),
            ("specialist", "Морозова Татьяна Алексеевна", ["agency_specialist"], SOCIAL),
            ("vcurator", "Волкова Ирина Олеговна", ["curator"], "КЦСОН Волжска"),
            ("vsecretary", None, ["commission_secretary"], "КДНиЗП Волжска")):
        identity.add_user(username, roles, agency=agency, full_name=full_name, password_hash=HASH)
    with engine.db.session() as session:
        session.execute(update(User).where(User.username == "retired").values(is_active=False))
    engine.repository.deploy([*sorted(WORKFLOWS.glob("*.bpmn")), *sorted(FORMS.glob("*.json"))])
    return engine, service


# -- driving a case ---------------------------------------------------------------------------------------------

def open_tasks(engine, instance_id, element) -> list[dict]:
    return [t for t in engine.tasks.query(instance_id=instance_id) if t["element_id"] == element]


def one(engine, instance_id, element) -> dict:
    found = open_tasks(engine, instance_id, element)
    assert len(found) == 1, (element, [t["element_id"] for t in engine.tasks.query(instance_id=instance_id)])
    return found[0]


def do(engine, instance_id, element, user, data) -> None:
    engine.tasks.complete(one(engine, instance_id, element)["id"], user, data)


def to_recognition(engine, service) -> tuple[int, int]:
    """A signal from the school, checked by the secretary: (case id, instance id) with the recognition open."""
    result = service.register_intake("school", SIGNAL)
    iid = result.instance_ids[0]
    do(engine, iid, "sop_check", "secretary", CHECK)
    return result.case_id, iid


def to_draft(engine, service) -> tuple[int, int]:
    """Recognised with curator1, the card filled, each working-group agency's proposals in: the draft is open."""
    case_id, iid = to_recognition(engine, service)
    at(engine, "2025-12-23 10:00")
    do(engine, iid, "sop_recognition", "chair", RECOGNITION)
    do(engine, iid, "sop_registration_card", "curator1", CARD)
    for proposal in open_tasks(engine, iid, "sop_proposals"):
        agency = proposal["agency_name"] or POLICE
        engine.tasks.complete(proposal["id"], AGENCY_USERS[agency], PROPOSALS.get(agency, PROPOSALS[POLICE]))
    return case_id, iid


def to_execution(engine, service) -> tuple[int, int]:
    case_id, iid = to_draft(engine, service)
    do(engine, iid, "sop_programme_draft", "curator1", DRAFT)
    at(engine, "2026-01-15 10:00")
    do(engine, iid, "sop_programme_approval", "chair", APPROVE)
    do(engine, iid, "sop_programme_dispatch", "secretary", DISPATCH)
    return case_id, iid


def context_of(engine, task_id: str, user: str, **replace):
    """The task's context as `user` sees it; `replace` gives the row other attributes (a form key another engineer's
    diagram introduces, an agency the task is addressed to)."""
    with engine.db.session() as session:
        row = session.get(HumanTask, task_id)
        if replace:
            row = SimpleNamespace(**{**{c.key: getattr(row, c.key) for c in HumanTask.__table__.columns}, **replace})
        return task_context(engine.sop, session, row, user)


def rows(panel) -> dict[str, str]:
    return dict(panel.rows)


def agency_id(engine, name: str) -> int:
    return next(a["id"] for a in engine.identity.agencies() if a["name"] == name)


# -- the check: the signal -------------------------------------------------------------------------------------

def test_the_check_starts_from_the_signal(world):
    engine, service = world
    result = service.register_intake("school", SIGNAL)
    check = one(engine, result.instance_ids[0], "sop_check")
    context = engine.sop.task_context(check["id"], "secretary")
    assert context.defaults == {
        "minor_name": "Иванов Петр Андреевич, 12.03.2012",
        "parents_names": "Иванова Анна Сергеевна",
        "family_composition": "родитель (законный представитель): Иванова Анна Сергеевна, 02.05.1988, не работает\n"
                              "ребенок: Иванов Петр Андреевич, 12.03.2012, СОШ № 5, 7 «Б»",
        "address_registered": SIGNAL["address"]}  # only fields of the form: it has no field for the source
    signal = rows(context.panel("signal"))
    assert signal["Источник информации"] == SIGNAL["source"] and signal["Суть проблемы"] == SIGNAL["problem"]
    assert signal["Передана органом"] == SCHOOL and signal["Поступила"] == "29.10.2025"


# -- recognition: the conclusion and the curator by name -------------------------------------------------------

def test_recognition_shows_the_conclusion_and_offers_the_municipality_curators_by_name(world):
    engine, service = world
    case_id, iid = to_recognition(engine, service)
    recognition = one(engine, iid, "sop_recognition")
    context = engine.sop.task_context(recognition["id"], "chair")
    conclusion = rows(context.panel("conclusion"))
    assert conclusion["Уровень опасности"] == "высокий"
    assert conclusion["Социально опасное положение"] == "подтверждено"
    assert conclusion["Заключение"] == "Семья находится в СОП"
    assert conclusion["Условия жизни несовершеннолетних"] == "Отдельного места для занятий нет"
    assert conclusion["Критерии СОП"].startswith("• Родители (законные представители) уклоняются от воспитания")
    assert len(conclusion["Критерии СОП"].splitlines()) == 2
    assert conclusion["Жилищные условия"] == "Квартира, 42,5 кв. м"
    assert conclusion["Санитарное состояние жилья"] == "Неудовлетворительное"
    assert conclusion["Дата заключения"] == "30.10.2025" and conclusion["Руководитель"] == "Кузнецов А. П."
    family = context.panel("family")
    assert ["ребенок", "Иванов Петр Андреевич", "12.03.2012", "СОШ № 5, 7 «Б»"] in family.table
    assert ["родитель", "Иванова Анна Сергеевна", "02.05.1988", "не работает"] in family.table
    # active curators of this municipality only: not the retired one, not Volzhsk's, not other roles
    assert context.options == {"curator_options": [
        {"value": "curator2", "label": f"Андреева Мария Сергеевна ({SCHOOL})"},
        {"value": "curator1", "label": f"Васильева Елена Николаевна ({SOCIAL})"}]}
    assert context.defaults == {}
    # the choice is still a username, checked by the handler
    with pytest.raises(InvalidInput, match="curator"):
        engine.tasks.complete(recognition["id"], "chair", {**RECOGNITION, "meeting_date": "2025-10-30",
                                                           "curator": "secretary"})
    engine.tasks.complete(recognition["id"], "chair", {**RECOGNITION, "meeting_date": "2025-10-30",
                                                       "curator": "curator2"})
    assert service.case(case_id)["curator"] == "curator2"


def test_a_valueskey_field_takes_any_plain_value_and_leaves_the_check_to_the_handler():
    schema = {"components": [{"type": "select", "key": "curator", "valuesKey": "curator_options"},
                             {"type": "checklist", "key": "many", "valuesKey": "agency_options"},
                             {"type": "select", "key": "fixed", "values": [{"label": "A", "value": "a"}]}]}
    assert validate_submission(schema, {"curator": "curator1", "many": ["3", 4]})["curator"] == "curator1"
    with pytest.raises(InvalidInput) as err:
        validate_submission(schema, {"curator": {"username": "x"}, "many": [["3"]], "fixed": "b"})
    assert set(err.value.errors) == {"curator", "many", "fixed"}


def recognised_card_defaults(engine, service) -> dict:
    """The registration card's defaults of a case the commission recognised on 23.12.2025."""
    _case_id, iid = to_recognition(engine, service)
    at(engine, "2025-12-23 10:00")
    do(engine, iid, "sop_recognition", "chair", RECOGNITION)
    card = one(engine, iid, "sop_registration_card")
    return engine.sop.task_context(card["id"], "curator1").defaults


def test_the_card_starts_from_who_detected_the_situation_and_when(world):
    engine, service = world
    defaults = recognised_card_defaults(engine, service)
    # the school received the signal on 29.10.2025 and passed it to the commission
    assert defaults["detection_date"] == "2025-10-29" and defaults["detected_by"] == SCHOOL
    # a signal the commission registered itself names its source
    other = service.register_intake("secretary", dict(SIGNAL, source="Заявление соседей", received_on="2025-11-03"),
                                    new_family=True)
    do(engine, other.instance_ids[0], "sop_check", "secretary", dict(CHECK, conclusion_date="2025-11-05"))
    do(engine, other.instance_ids[0], "sop_recognition", "chair", RECOGNITION)
    card = one(engine, other.instance_ids[0], "sop_registration_card")
    defaults = engine.sop.task_context(card["id"], "curator1").defaults
    assert defaults["detection_date"] == "2025-11-03" and defaults["detected_by"] == "Заявление соседей"


def test_the_card_starts_from_the_criteria_the_recognition_and_the_address_the_case_knows(world):
    """The check found the criteria, the commission recognised the family (resolution № 45/3 of 23.12.2025), the
    signal gave one address: the card does not ask for them again."""
    engine, service = world
    defaults = recognised_card_defaults(engine, service)
    assert defaults["sop_kind"] == ["evasion", "evasion_addiction"]  # CHECK's criteria c1, c2
    assert defaults["agency_registrations"] == (
        "КДН: 23.12.2025, протокол № 45/3, признание находящимися в социально опасном положении (уклонение родителей "
        "от воспитания и содержания детей; уклонение родителей от воспитания детей в связи со злоупотреблением "
        "алкоголем, наркотиками, ПАВ)")
    assert defaults["address_actual"] == SIGNAL["address"]  # the case says the family lives where registered
    validate_submission(engine.repository.form("sop_registration_card"), {**CARD, **defaults})  # values it accepts
    # an actual address of its own; the card's kind of violence from the check's c7
    other = service.register_intake("secretary", dict(SIGNAL, address_actual="г. Йошкар-Ола, ул. Баумана, д. 9"),
                                    new_family=True)
    do(engine, other.instance_ids[0], "sop_check", "secretary", dict(CHECK, family_criteria=["c7", "c3"]))
    do(engine, other.instance_ids[0], "sop_recognition", "chair", dict(RECOGNITION, resolution_number="46/1"))
    card = one(engine, other.instance_ids[0], "sop_registration_card")
    defaults = engine.sop.task_context(card["id"], "curator1").defaults
    assert defaults["sop_kind"] == ["violence", "involvement"]
    assert defaults["address_actual"] == "г. Йошкар-Ола, ул. Баумана, д. 9"
    assert defaults["agency_registrations"] == (
        "КДН: 23.12.2025, протокол № 46/1, признание находящимися в социально опасном положении (жестокое обращение "
        "с детьми; вовлечение несовершеннолетних в правонарушения, антиобщественные действия)")


# -- the programme: proposals, draft, approval ------------------------------------------------------------------

def test_the_draft_shows_each_agency_proposal_and_starts_from_their_activities(world):
    engine, service = world
    case_id, iid = to_draft(engine, service)
    draft = one(engine, iid, "sop_programme_draft")
    context = engine.sop.task_context(draft["id"], "curator1")
    proposals = context.panel("proposals")
    assert proposals.columns == ["Орган", "Ситуация в семье", "Задачи", "Мероприятия", "Срок"]
    assert sorted(r[0] for r in proposals.table) == [SCHOOL, POLICE]
    police = next(r for r in proposals.table if r[0] == POLICE)
    assert police[1:] == ["Мать злоупотребляет алкоголем", "Профилактика правонарушений",
                          "Беседа инспектора ПДН\nРейд по месту жительства", "до 01.03.2026"]
    lines = context.defaults["programme_activities"].splitlines()
    assert f"Беседа инспектора ПДН; ; {POLICE}; до 01.03.2026" in lines
    assert f"Рейд по месту жительства; ; {POLICE}; до 01.03.2026" in lines
    assert f"Контроль посещаемости; ежедневно; {SCHOOL}; весь учебный год" in lines
    activities = casefile.activities_from_form(context.defaults)
    assert sorted(a["title"] for a in activities) == ["Беседа инспектора ПДН", "Контроль посещаемости",
                                                      "Рейд по месту жительства"]
    assert {a["responsible"] for a in activities} == {POLICE, SCHOOL}
    assert f"{POLICE}: Мать злоупотребляет алкоголем" in context.defaults["programme_situation"]
    assert f"{SCHOOL}: Вернуть ребенка к учебе" in context.defaults["programme_tasks"]
    # data scope: an agency specialist reads their own agency's proposals only
    as_police = engine.sop.task_context(draft["id"], "police")
    assert [r[0] for r in as_police.panel("proposals").table] == [POLICE]
    assert "СОШ" not in as_police.defaults["programme_activities"]
    assert all(p.key != "card" for p in as_police.panels)  # never the registration card
    # the draft submitted as it was prefilled makes one activity per line
    engine.tasks.complete(draft["id"], "curator1", {**DRAFT, "programme_activities":
                                                    context.defaults["programme_activities"]})
    with engine.db.session() as session:
        assert len(session.scalars(select(Activity).where(Activity.case_id == case_id)).all()) == 3


def test_the_draft_starts_its_family_information_from_the_case(world):
    engine, service = world
    _case_id, iid = to_draft(engine, service)
    defaults = engine.sop.task_context(one(engine, iid, "sop_programme_draft")["id"], "curator1").defaults
    assert defaults["mother_info"] == "Иванова Анна Сергеевна, 02.05.1988, не работает"
    assert defaults["child_info"] == "Иванов Петр Андреевич, 12.03.2012, СОШ № 5, 7 «Б»"
    assert "father_info" not in defaults  # the signal named no father


def test_the_draft_keeps_each_part_of_a_proposed_activity_in_its_column(world):
    """The proposals form asks for «мероприятие; содержание; срок» per line: the draft starts from the activity, its
    content, the proposing agency as the executor and the activity's own term (else the term the agency proposed
    for the programme), each in its column; a line that names no activity («;;», blank) is left out. The draft
    submitted as prefilled keeps them apart: the day of a term is the activity's date, a term in words its term."""
    engine, service = world
    case_id, iid = to_recognition(engine, service)
    at(engine, "2025-12-23 10:00")
    do(engine, iid, "sop_recognition", "chair", RECOGNITION)
    do(engine, iid, "sop_registration_card", "curator1", CARD)
    proposals = {
        SCHOOL: dict(PROPOSALS[SCHOOL], proposal_term="6 месяцев", proposal_activities=(
            "Консультация педагога-психолога; 2 встречи; до 31.12.2026\n\n ; ;\nКонтроль посещаемости; ежедневно\n"
            "Классный час")),
        POLICE: dict(PROPOSALS[POLICE], proposal_term="вчера", proposal_activities=(
            ";;\nБеседа инспектора ПДН; ежемесячно; с матерью; 2026-03-01")),
    }
    for proposal in open_tasks(engine, iid, "sop_proposals"):
        agency = proposal["agency_name"]
        engine.tasks.complete(proposal["id"], AGENCY_USERS[agency], proposals[agency])
    draft = one(engine, iid, "sop_programme_draft")
    context = engine.sop.task_context(draft["id"], "curator1")
    assert next(row for row in context.panel("proposals").table if row[0] == POLICE)[3] == \
        "Беседа инспектора ПДН; ежемесячно; с матерью; 2026-03-01"  # as the agency wrote it, without «;;»
    defaults = context.defaults
    assert sorted(defaults["programme_activities"].splitlines()) == sorted([
        f"Консультация педагога-психолога; 2 встречи; {SCHOOL}; до 31.12.2026",
        f"Контроль посещаемости; ежедневно; {SCHOOL}; 6 месяцев",
        f"Классный час; ; {SCHOOL}; 6 месяцев",
        f"Беседа инспектора ПДН; ежемесячно, с матерью; {POLICE}; 2026-03-01"])

    engine.tasks.complete(draft["id"], "curator1", {**DRAFT, "programme_activities": defaults["programme_activities"]})
    with engine.db.session() as session:
        activities = {a.title: a for a in session.scalars(select(Activity).where(Activity.case_id == case_id))}
        assert sorted(activities) == ["Беседа инспектора ПДН", "Классный час", "Консультация педагога-психолога",
                                      "Контроль посещаемости"]
        consultation = activities["Консультация педагога-психолога"]
        assert (consultation.content, consultation.responsible, consultation.term) == \
            ("2 встречи", SCHOOL, date(2026, 12, 31))
        visits = activities["Контроль посещаемости"]
        assert visits.term is None and casefile.activity_term(visits) == "6 месяцев"
        assert casefile.split_term(visits.content) == ("ежедневно", "6 месяцев")
        assert casefile.activity_term(activities["Классный час"]) == "6 месяцев"
        assert casefile.split_term(activities["Классный час"].content) == (None, "6 месяцев")
        assert activities["Беседа инспектора ПДН"].term == date(2026, 3, 1)
    # the commission reads the terms in their column
    panel = engine.sop.task_context(one(engine, iid, "sop_programme_approval")["id"], "chair").panel("programme")
    assert {row[1]: row[3] for row in panel.table} == {
        "Консультация педагога-психолога": "31.12.2026", "Контроль посещаемости": "6 месяцев",
        "Классный час": "6 месяцев", "Беседа инспектора ПДН": "01.03.2026"}


def test_a_proposed_activity_line_becomes_a_draft_line():
    from sop.task_context import proposed_activity

    assert proposed_activity("Консультация педагога-психолога; 2 встречи; до 31.12.2026", "МБОУ", "6 месяцев") == \
        "Консультация педагога-психолога; 2 встречи; МБОУ; до 31.12.2026"
    assert proposed_activity("Рейд; ; ", "ОМВД", "до 23.06.2026") == "Рейд; ; ОМВД; до 23.06.2026"
    assert proposed_activity("Беседа", "ОМВД", "") == "Беседа; ; ОМВД"
    assert proposed_activity(" ;; ", "ОМВД", "вчера") == "" and proposed_activity("", "ОМВД", "вчера") == ""
    # the draft's own format: the day of a deadline is the activity's date, other terms stay in words
    assert [(a["title"], a["content"], a["responsible"], a["term"]) for a in casefile.activities_from_form(
        {"programme_activities": "Рейд; ; ОМВД; до 23.06.2026\n,,; ; ОМВД; вчера\nБеседа; ; ОМВД; до конца года"})] \
        == [("Рейд", None, "ОМВД", date(2026, 6, 23)), ("Беседа", "срок: до конца года", "ОМВД", None)]


def test_mother_and_father_are_told_apart_by_the_patronymic_and_never_guessed():
    from sop.task_context import _family_information

    def person(last, first, patronymic, born=None, occupation=None):
        return SimpleNamespace(full_name=" ".join(p for p in (last, first, patronymic) if p),
                               patronymic=patronymic, birth_date=born, occupation=occupation)

    family = SimpleNamespace(
        parents=[person("Алиева", "Лейла", "Рашид кызы", date(1990, 1, 2), "продавец"),
                 person("Петров", "Иван", "Ильич", None, " "), person("Смит", "Джон", None, date(1980, 3, 4))],
        children=[person("Петров", "Олег", "Иванович", date(2014, 5, 6), "школа № 3"),
                  person("Петрова", "Ольга", "Ивановна", date(2016, 7, 8))])
    assert _family_information(SimpleNamespace(family=family)) == {
        "mother_info": "Алиева Лейла Рашид кызы, 02.01.1990, продавец",
        "father_info": "Петров Иван Ильич",  # the one without a patronymic is left for the curator
        "child_info": "Петров Олег Иванович, 06.05.2014, школа № 3; Петрова Ольга Ивановна, 08.07.2016"}


def test_a_dispatch_starts_from_the_working_groups_agencies_and_today(world):
    """The dispatch's recipients are the working group's agencies. The date a step's information or document went
    out is the day it is completed in the system; the dates of what happened outside it (a visit, an act, a
    meeting) are left to the person."""
    engine, service = world
    _case_id, iid = to_draft(engine, service)
    do(engine, iid, "sop_programme_draft", "curator1", DRAFT)
    at(engine, "2026-01-15 10:00")
    # a decision's own date, the meeting's, is not guessed
    approval = one(engine, iid, "sop_programme_approval")
    assert "approval_date" not in context_of(engine, approval["id"], "chair").defaults
    do(engine, iid, "sop_programme_approval", "chair", APPROVE)
    dispatch = one(engine, iid, "sop_programme_dispatch")
    recipients = engine.sop.task_context(dispatch["id"], "secretary").defaults["programme_recipients"]
    assert sorted(recipients.splitlines()) == sorted([SCHOOL, POLICE, "КЦСОН г. Йошкар-Олы"])
    assert COMMISSION not in recipients  # the commission sends it, it does not receive it
    # above the form, the resolution whose copies go out
    assert rows(context_of(engine, dispatch["id"], "secretary").panel("resolution")) == {
        "Постановление": "№ 2, от 15.01.2026", "Решение": "утвердить индивидуальную программу"}
    assert context_of(engine, dispatch["id"], "secretary").defaults["programme_sent_date"] == "2026-01-15"
    at(engine, "2026-01-16 01:00")  # still the 15th in UTC, already the 16th in Йошкар-Ола (Moscow time)
    assert context_of(engine, dispatch["id"], "secretary").defaults["programme_sent_date"] == "2026-01-16"


def test_the_six_month_control_shows_the_curators_information_and_how_far_the_programme_got(world):
    engine, service = world
    case_id, iid = to_execution(engine, service)
    report_all(engine, iid)
    do(engine, iid, "sop_curator_summary", "curator1", {**SUMMARY, "patronage_results": "Семья посещена 4 раза"})
    with engine.db.session() as session:  # one activity carried out
        first = session.scalars(select(Activity).where(Activity.case_id == case_id).order_by(Activity.number)).first()
        first.status, first.done_on = "done", date(2026, 3, 2)
        total = len(session.scalars(select(Activity).where(Activity.case_id == case_id)).all())
    at(engine, "2026-06-24 09:00")
    assert engine.management.sweep().timers_fired == 1
    review = one(engine, iid, "sop_review")
    context = engine.sop.task_context(review["id"], "secretary")
    summary = rows(context.panel("curator_summary"))
    assert summary["Анализ исполнения программы и динамика"] == "Положительная динамика"
    assert summary["Итоги социального патронажа"] == "Семья посещена 4 раза"
    assert summary["Предложение куратора"] == "Продолжить ИПР"
    activities = context.panel("activities")
    assert activities.title == f"Мероприятия программы: выполнено 1 из {total}" and len(activities.table) == total
    assert activities.table[0][-1] == "02.03.2026" and activities.table[1][-1] == "—"
    assert "decision" not in context.defaults  # the commission decides; nothing is chosen for it
    # an agency of the working group does not read the curator's report to the commission
    assert context_of(engine, review["id"], "police").panel("curator_summary") is None

    # the control proposes the closure: the commission decides with what brought the question and what it saw
    do(engine, iid, "sop_review", "secretary", REVIEW_CLOSE)
    decision = one(engine, iid, "sop_closure_decision")
    context = engine.sop.task_context(decision["id"], "chair")
    grounds = rows(context.panel("closure_grounds"))
    assert grounds["Итоги контроля"] == "Обстановка в семье улучшилась"
    assert grounds["Решение по итогам контроля"] == "Внести на заседание вопрос о снятии с учета"
    assert grounds["Контроль исполнения программы"] == "24.06.2026"
    assert [p.key for p in context.panels] == ["closure_grounds", "curator_summary", "activities"]
    assert [p.key for p in context_of(engine, decision["id"], "police").panels] == ["activities"]


def test_the_coming_of_age_proposal_is_worded_from_the_record(world):
    engine, service = world
    older = dict(SIGNAL["children"][0], birth_date="2007-12-23")
    younger = dict(SIGNAL["children"][0], first_name="Илья", birth_date="2015-02-01")
    result = service.register_intake("school", dict(SIGNAL, children=[older, younger]))
    iid = result.instance_ids[0]
    do(engine, iid, "sop_check", "secretary", CHECK)
    at(engine, "2025-12-22 10:00")
    do(engine, iid, "sop_recognition", "chair", dict(RECOGNITION, meeting_date="2025-12-22"))
    at(engine, "2025-12-23 00:05")
    assert engine.management.sweep().jobs["minor_turned_18"] == 1
    context = engine.sop.task_context(one(engine, iid, "sop_closure_proposal")["id"], "secretary")
    assert context.panel("minors").table == [["Иванов Петр Андреевич", "23.12.2007", "23.12.2025"],
                                              ["Иванов Илья Андреевич", "01.02.2015", "01.02.2033"]]
    assert context.defaults["closure_proposal"].endswith(
        "совершеннолетия: Иванов Петр Андреевич, 23.12.2007 г. р. (18 лет исполнилось 23.12.2025)")
    assert context.defaults["other_minors_remain"] is True  # Илья keeps the family registered
    assert "proposal_meeting_date" not in context.defaults  # the commission has no schedule: nothing to go by
    with engine.db.session() as session:
        municipality = session.scalar(select(Case.municipality_id))
    engine.sop.meetings.set_up(municipality, COMMISSION, weekday=2, weeks=[2, 4])  # 2nd and 4th Wednesday
    context = engine.sop.task_context(one(engine, iid, "sop_closure_proposal")["id"], "secretary")
    assert context.defaults["proposal_meeting_date"] == "2025-12-24"  # the next meeting day after 23.12


def test_the_approval_shows_the_draft_programme(world):
    engine, service = world
    case_id, iid = to_draft(engine, service)
    do(engine, iid, "sop_programme_draft", "curator1",
       {**DRAFT, "programme_activities": f"Беседа инспектора ПДН; ежемесячно; {POLICE}; 2026-03-01\n"
                                         "Патронаж; еженедельно; КЦСОН; весь год"})
    set_kinds(engine, case_id, {"Беседа инспектора ПДН": "police", "Патронаж": "social_protection"})
    approval = one(engine, iid, "sop_programme_approval")
    panel = engine.sop.task_context(approval["id"], "chair").panel("programme")
    assert rows(panel)["Цель программы"] == "Вывести семью из СОП"
    assert panel.columns == ["№", "Мероприятие", "Исполнитель", "Срок"]
    assert panel.table[0][0:2] == ["1", "Беседа инспектора ПДН"] and POLICE in panel.table[0][2]
    assert panel.table[0][3] == "01.03.2026"
    assert panel.table[1] == ["2", "Патронаж", SOCIAL, "весь год"]  # "КЦСОН" is the working group's КЦСОН


# -- execution: the agency's report and the curator's summary ---------------------------------------------------

def set_kinds(engine, case_id, kinds: dict[str, str | None]) -> None:
    with engine.db.session() as session:
        for activity in session.scalars(select(Activity).where(Activity.case_id == case_id)):
            activity.agency_kind = kinds.get(activity.title)


def test_the_execution_report_starts_with_a_row_per_activity_of_the_agency(world):
    engine, service = world
    case_id, iid = to_execution(engine, service)
    set_kinds(engine, case_id, {"Беседа инспектора ПДН": "police", "Патронаж": "social_protection"})
    report = open_tasks(engine, iid, "sop_execution_report")[0]
    police = agency_id(engine, POLICE)
    context = context_of(engine, report["id"], "police", agency_id=police)
    assert context.defaults["report_agency"] == POLICE
    assert context.defaults["activity_reports"] == [{"number": 1, "title": "Беседа инспектора ПДН"}]
    assert context.panel("activities").table == [["1", "Беседа инспектора ПДН", "", "запланировано"]]
    # a task addressed to no agency: every activity of the programme, the reporting user's agency
    context = context_of(engine, report["id"], "specialist", agency_id=None)
    assert context.defaults["activity_reports"] == [{"number": 1, "title": "Беседа инспектора ПДН"},
                                                    {"number": 2, "title": "Патронаж"}]
    assert context.defaults["report_agency"] == SOCIAL
    # an agency with no activity of its kind gets an empty list
    school = context_of(engine, report["id"], "school", agency_id=agency_id(engine, SCHOOL))
    assert school.defaults["activity_reports"] == [] and school.defaults["report_agency"] == SCHOOL
    # the responsible specialist is, to begin with, the person who fills the report in
    assert school.defaults["report_specialist"] == "Лебедева Ирина Владимировна"
    assert context.defaults["report_specialist"] == "Морозова Татьяна Алексеевна"


def test_each_agencys_proposals_form_names_its_agency(world):
    """The proposals go to every agency of the working group, one task each: the form's «Орган (учреждение)» is
    the agency the task is addressed to (the user's own when it is addressed to none), not typed in again."""
    engine, service = world
    _case_id, iid = to_recognition(engine, service)
    at(engine, "2025-12-23 10:00")
    do(engine, iid, "sop_recognition", "chair", RECOGNITION)
    do(engine, iid, "sop_registration_card", "curator1", CARD)
    proposals = open_tasks(engine, iid, "sop_proposals")
    assert len(proposals) > 1
    for proposal in proposals:
        agency = proposal["agency_name"] or POLICE
        assert context_of(engine, proposal["id"], AGENCY_USERS[agency]).defaults["agency_name"] == agency
    unaddressed = context_of(engine, proposals[0]["id"], "school", agency_id=None)
    assert unaddressed.defaults["agency_name"] == SCHOOL
    # the responsible specialist starts as the person filling the form in; an account without a full name gives none
    assert unaddressed.defaults["proposal_specialist"] == "Лебедева Ирина Владимировна"
    assert "proposal_specialist" not in context_of(engine, proposals[0]["id"], "vsecretary").defaults
    # above the form, what the commission recognised
    recognition = dict(context_of(engine, proposals[0]["id"], "police").panel("recognition").rows)
    assert recognition["Постановление"] == "№ 45/3, от 23.12.2025"
    assert recognition["Уровень опасности"] == "высокий" and recognition["Критерии"].startswith("• Семья, в которой")
    assert recognition["Рабочая группа"] == f"• {SCHOOL}\n• {POLICE}\n• {SOCIAL}"


def test_an_agencys_reconciliation_shows_the_commissions_list_of_the_cases_it_takes_part_in(world):
    """The quarterly reconciliation (004 §5.6): each agency compares the commission's databank with its own list. Its
    task shows the families of the cases it takes part in, and how many other cases the databank holds, without
    naming them (the case file's data scope); the commission's staff see the whole list."""
    engine, service = world
    case_id, _iid = to_draft(engine, service)  # recognised 23.12.2025: police and school in the working group
    at(engine, "2026-01-12 10:00")
    assert jobs.start_quarterly(service) == 2  # Йошкар-Ола and Волжск
    with engine.db.session() as session:
        case = session.get(Case, case_id)
        number = case.number
        reconciliation = session.scalar(select(Reconciliation.process_instance_id)
                                        .where(Reconciliation.municipality_id == case.municipality_id))
    rounds = {t["agency_name"]: t for t in open_tasks(engine, reconciliation, "rec_agency")}

    police = context_of(engine, rounds[POLICE]["id"], "police").panel("databank")
    assert [row[0] for row in police.table] == [number]
    assert police.table[0][1].startswith("Иванов Петр") and police.table[0][4] == "23.12.2025"
    assert "сняты с учета с 01.10.2025" in police.note and "Других дел в банке данных нет" in police.note
    guardianship = context_of(engine, rounds[GUARDIANSHIP]["id"], "guardian").panel("databank")
    assert guardianship.table == [] and "Других дел в банке данных: 1." in guardianship.note
    secretary = context_of(engine, rounds[GUARDIANSHIP]["id"], "secretary").panel("databank")
    assert [row[0] for row in secretary.table] == [number] and secretary.note.startswith("Все семьи")
    # the secretary then has the agencies' answers side by side and the counts of the quarter reconciled
    engine.tasks.complete(rounds[POLICE]["id"], "police", {"differences": "Дата постановки: 24.12.2025",
                                                           "missing_in_commission": "", "missing_in_agency": "",
                                                           "confirmed": False})
    for name, user in ((SCHOOL, "school"), (GUARDIANSHIP, "guardian"), (SOCIAL, "specialist")):
        engine.tasks.complete(rounds[name]["id"], user, {"confirmed": True})
    resolve = one(engine, reconciliation, "rec_resolve")
    context = context_of(engine, resolve["id"], "secretary")
    answers = {row[0]: row for row in context.panel("agency_answers").table}
    assert answers[POLICE][1:] == ["Дата постановки: 24.12.2025", "", "", "нет"] and answers[SCHOOL][4] == "да"
    assert len(answers) == 4
    assert context.defaults["families_count"] == 1 and context.defaults["minors_count"] >= 1
    # the databank goes to the regional commission: its date starts at today
    engine.tasks.complete(resolve["id"], "secretary", {"resolution_summary": "Расхождения устранены",
                                                       "families_count": 1, "minors_count": 1})
    send = one(engine, reconciliation, "rec_send_databank")
    today = engine.clock.now().astimezone(ZoneInfo("Europe/Moscow")).date().isoformat()
    assert context_of(engine, send["id"], "secretary").defaults == {"databank_sent_date": today}


def add_report(engine, case_id, agency: str, author: str, on: str, text: str, data=None) -> None:
    with engine.db.session() as session:
        session.add(ExecutionReport(case_id=case_id, agency_id=agency_id(engine, agency), text=text, data=data,
                                    reported_on=date.fromisoformat(on), author=author))


def test_the_summary_shows_the_round_reports_and_who_did_not_report(world):
    engine, service = world
    case_id, iid = to_execution(engine, service)  # approved on 15.01.2026
    add_report(engine, case_id, SCHOOL, "school", "2025-12-30", "Отчет до утверждения программы")
    add_report(engine, case_id, POLICE, "police", "2026-02-10", "Проведены 2 беседы",
               {"activity_reports": [{"number": 1, "title": "Беседа инспектора ПДН", "status": "partly",
                                      "status_date": "2026-02-09", "comment": "мать не открыла"}]})
    summary = open_tasks(engine, iid, "sop_execution_report")[0]
    context = context_of(engine, summary["id"], "curator1", form_key="sop_curator_summary")
    reports = context.panel("reports")
    assert reports.table == [[POLICE, "10.02.2026",
                              "1. Беседа инспектора ПДН: выполнено частично, 09.02.2026, мать не открыла\n"
                              "Проведены 2 беседы"]]
    assert rows(reports)["Период"] == "с 15.01.2026"
    # the agencies asked for a report this round (a report task each) that have not reported: the school; the
    # curator's agency is in the working group but was not asked
    silent = context.panel("not_reported")
    assert [r[0] for r in silent.table] == [SCHOOL]
    assert context.defaults["agencies_not_reporting"].splitlines() == [SCHOOL]
    # data scope: the school sees no other agency's report, and still who did not report
    as_school = context_of(engine, summary["id"], "school", form_key="sop_curator_summary")
    assert as_school.panel("reports").table == [] and as_school.panel("reports").note
    assert [r[0] for r in as_school.panel("not_reported").table] == [SCHOOL]

    # the next round begins when this summary is completed: only later reports count
    at(engine, "2026-02-20 12:00")
    with engine.db.session() as session:
        session.add(HumanTask(id=str(uuid4()), instance_id=iid, process_key="sop_case",
                              element_id="sop_curator_summary", name="Анализ исполнения", candidate_roles=["curator"],
                              candidate_users=[], candidates="|role:curator|", form_key="sop_curator_summary",
                              status="completed", completed_by="curator1", completed_at=engine.clock.now(),
                              created_at=engine.clock.now() - timedelta(days=1), data={}))
    add_report(engine, case_id, SCHOOL, "school", "2026-03-01", "Посещаемость восстановлена")
    context = context_of(engine, summary["id"], "curator1", form_key="sop_curator_summary")
    assert [r[0] for r in context.panel("reports").table] == [SCHOOL]
    assert rows(context.panel("reports"))["Период"] == "с 20.02.2026"
    assert sorted(r[0] for r in context.panel("not_reported").table) == sorted([POLICE, SOCIAL])


def test_the_summary_counts_a_report_by_the_completion_of_its_task(world):
    """A report of the same day as the previous summary belongs to the round its task was completed in."""
    engine, service = world
    case_id, iid = to_execution(engine, service)
    report = open_tasks(engine, iid, "sop_execution_report")[0]
    at(engine, "2026-02-10 09:00")
    engine.tasks.complete(report["id"], "police" if report["agency_name"] in (None, POLICE)
                          else AGENCY_USERS[report["agency_name"]],
                          {"report_agency": POLICE, "activities_done": "Проведены 2 беседы",
                           "report_date": "2026-02-10"})
    with engine.db.session() as session:
        row = session.scalar(select(ExecutionReport).where(ExecutionReport.case_id == case_id))
        reporter = row.agency_id
    fake = open_tasks(engine, iid, "sop_curator_summary") or open_tasks(engine, iid, "sop_execution_report")
    context = context_of(engine, fake[0]["id"], "curator1", form_key="sop_curator_summary")
    assert [r[2] for r in context.panel("reports").table] == ["Проведены 2 беседы"]
    with engine.db.session() as session:  # a summary completed later that day closes the round
        session.add(HumanTask(id=str(uuid4()), instance_id=iid, process_key="sop_case",
                              element_id="sop_curator_summary", name="Анализ", candidate_roles=["curator"],
                              candidate_users=[], candidates="|role:curator|", form_key="sop_curator_summary",
                              status="completed", completed_by="curator1",
                              completed_at=engine.clock.now() + timedelta(hours=3), created_at=engine.clock.now()))
    context = context_of(engine, fake[0]["id"], "curator1", form_key="sop_curator_summary")
    assert context.panel("reports").table == []
    with engine.db.session() as session:
        name = session.get(Agency, reporter).name
    assert name in [r[0] for r in context.panel("not_reported").table]


# -- assigning the check to an agency -----------------------------------------------------------------------------

def test_assigning_the_check_offers_the_municipality_agencies(world):
    engine, service = world
    result = service.register_intake("school", SIGNAL)
    check = one(engine, result.instance_ids[0], "sop_check")
    context = context_of(engine, check["id"], "secretary", form_key="sop_check_assign")
    options = context.options["agency_options"]
    assert sorted(o["label"] for o in options) == sorted([COMMISSION, SCHOOL, POLICE, GUARDIANSHIP, SOCIAL])
    assert all(o["value"] == str(agency_id(engine, o["label"])) for o in options)


# -- the overdue visit: who to call, and passing it to a specialist ---------------------------------------------

def escalated(engine, service) -> tuple[int, int, dict, dict]:
    """A threat to life registered by the police at 09:00; at 13:00 the visit is overdue and escalated."""
    result = service.register_intake("police", dict(SIGNAL, threat_to_life=True))
    emergency = result.instance_ids[1]
    at(engine, "2025-10-30 13:00:01")
    engine.management.sweep()
    return result.case_id, emergency, one(engine, emergency, "em_escalation"), one(engine, emergency, "em_inspection")


def test_the_escalation_shows_the_guardianship_agency_and_offers_its_specialists(world):
    engine, service = world
    _, _, escalation, inspection = escalated(engine, service)
    assert inspection["agency_name"] == GUARDIANSHIP
    context = engine.sop.task_context(escalation["id"], "secretary")
    panel = rows(context.panel("guardianship"))
    assert panel["Орган"] == GUARDIANSHIP and panel["Срок выезда"] == "30.10.2025 13:00"
    assert panel["Взял(а) в работу"] == "никто"
    assert panel["Сотрудники органа"].splitlines() == ["• Белова Анна Игоревна", "• Егорова Вера Павловна",
                                                       "• Попова Наталья Ивановна"]
    # only those who may do the visit: the guardianship role at that agency
    assert context.options == {"guardian_options": [{"value": "guardian2", "label": "Белова Анна Игоревна"},
                                                    {"value": "guardian", "label": "Попова Наталья Ивановна"}]}


def test_the_escalation_passes_the_visit_to_the_chosen_specialist(world):
    engine, service = world
    _, emergency, escalation, inspection = escalated(engine, service)
    engine.tasks.claim(inspection["id"], "guardian")  # taken, but nobody went
    engine.tasks.complete(escalation["id"], "secretary", {"escalation_measures": "Позвонили начальнику отдела опеки",
                                                          "reassign_to": "guardian2"})
    visit = engine.tasks.get(inspection["id"])
    assert visit["status"] == "open" and visit["assignee"] == "guardian2"
    events = [e for e in engine.history.for_instance(emergency) if e["type"] == "task_assigned"]
    assert [(e["task_id"], e["actor"], e["data"]) for e in events] == [
        (inspection["id"], "secretary", {"assignee": "guardian2", "previous": "guardian"})]
    assert inspection["id"] in [t["id"] for t in engine.tasks.query(user="guardian2")]


def test_the_visit_cannot_go_to_a_user_of_another_agency(world):
    engine, service = world
    _, emergency, escalation, inspection = escalated(engine, service)
    for refused in ("police", "guardian_clerk", "nobody"):
        with pytest.raises(InvalidInput) as err:
            engine.tasks.complete(escalation["id"], "secretary", {"escalation_measures": "Позвонили",
                                                                  "reassign_to": refused})
        assert set(err.value.errors) == {"reassign_to"} and "reassign_to" in err.value.message
    assert engine.tasks.get(escalation["id"])["status"] == "open"  # nothing changed
    assert engine.tasks.get(inspection["id"])["assignee"] is None
    assert not [e for e in engine.history.for_instance(emergency) if e["type"] == "task_assigned"]
    # without a choice the escalation just records the measures
    engine.tasks.complete(escalation["id"], "secretary", {"escalation_measures": "Позвонили"})
    assert engine.tasks.get(inspection["id"])["assignee"] is None


def test_assign_checks_the_task_and_the_user(world):
    engine, service = world
    _, emergency, escalation, inspection = escalated(engine, service)
    with pytest.raises(PermissionDenied, match="not a candidate"):
        engine.tasks.assign(inspection["id"], "police", "secretary")
    with pytest.raises(InvalidInput, match="no active user"):
        engine.tasks.assign(inspection["id"], "retired", "secretary")
    assert engine.tasks.assign(inspection["id"], "guardian", "secretary")["assignee"] == "guardian"
    engine.tasks.complete(inspection["id"], "guardian", {"visit_date": "2025-10-30", "threat_confirmed": False,
                                                         "inspection_findings": "Нет угрозы", "removed": False})
    with pytest.raises(Conflict):
        engine.tasks.assign(inspection["id"], "guardian2", "secretary")
    # the escalation of a visit already made has nobody to pass it to
    context = engine.sop.task_context(escalation["id"], "secretary")
    assert context.panel("guardianship").note and context.options == {"guardian_options": []}
    with pytest.raises(InvalidInput) as err:
        engine.tasks.complete(escalation["id"], "secretary", {"escalation_measures": "—", "reassign_to": "guardian2"})
    assert set(err.value.errors) == {"reassign_to"}


# -- the emergency's steps: the threat, the visit's act, the removal act ------------------------------------------

VISIT = {"visit_date": "2025-10-30", "inspection_act_number": "17",
         "inspection_findings": "Дети одни дома, продуктов нет", "threat_confirmed": True, "removed": True,
         "removed_from_all_parents": True, "removal_date": "2025-10-30", "placement": "relatives",
         "police_called": True}
REMOVAL = {"removal_act_number": "5", "removal_act_date": "2025-10-30", "removal_act_signed": True,
           "removal_act_signed_by": "Глава г. Йошкар-Олы", "placement_details": "Бабушке, Ивановой Г. П."}


def test_every_emergency_step_shows_the_threat_as_the_journal_has_it(world):
    engine, service = world
    at(engine, "2025-10-30 09:00")
    result = service.register_intake("police", dict(SIGNAL, threat_to_life=True,
                                                    problem="Дети одни дома третьи сутки"))
    emergency = result.instance_ids[1]
    for element, user in (("em_inspection", "guardian"), ("em_police_report", "police"),
                          ("em_social_inspection", "specialist")):
        panel = rows(engine.sop.task_context(one(engine, emergency, element)["id"], user).panel("signal"))
        assert panel["Суть проблемы"] == "Дети одни дома третьи сутки", element
        assert panel["Угроза жизни или здоровью"] == "да"
        assert panel["Передана органом"] == POLICE  # the police passed it to the commission the same minute
        assert panel["Зарегистрирована"] == f"30.10.2025 09:00, {COMMISSION}, № 1/2025"
        assert panel["Адрес"] == SIGNAL["address"] and panel["Дети"].startswith("Иванов Петр Андреевич")
    # the secretary's escalation of the overdue visit shows it too
    at(engine, "2025-10-30 13:00:01")
    engine.management.sweep()
    escalation = engine.sop.task_context(one(engine, emergency, "em_escalation")["id"], "secretary")
    assert [p.key for p in escalation.panels] == ["signal", "guardianship"]


def test_the_steps_after_the_visit_show_its_act_and_the_removal_act_starts_from_it(world):
    engine, service = world
    at(engine, "2025-10-30 09:00")
    result = service.register_intake("police", dict(SIGNAL, threat_to_life=True))
    emergency = result.instance_ids[1]
    at(engine, "2025-10-30 11:30")
    do(engine, emergency, "em_inspection", "guardian", VISIT)
    removal = one(engine, emergency, "em_removal_act")
    context = engine.sop.task_context(removal["id"], "guardian")
    visit = rows(context.panel("visit"))
    # the form's own labels and option labels, the unticked boxes said as «нет», who made the act and when
    assert visit["Номер акта обследования"] == "17" and visit["Дата выезда и обследования"] == "30.10.2025"
    assert visit["Куда передан ребенок"] == "Родственникам"
    assert visit["Угроза жизни или здоровью ребенка подтверждена"] == "да"
    assert visit["Вызывались медицинские работники"] == "нет"
    assert visit["Составил(а)"] == f"Попова Наталья Ивановна, {GUARDIANSHIP}, 30.10.2025 11:30"
    assert context.defaults == {"removal_act_date": "2025-10-30", "placement_details": "Родственникам"}
    assert validate_submission(engine.repository.form("em_removal_act"),
                               {**context.defaults, "removal_act_number": "5"})
    # the prosecutor's notice, opened with the removal act, has no removal act to show yet
    notice = engine.sop.task_context(one(engine, emergency, "em_prosecutor_notice")["id"], "guardian")
    assert [p.key for p in notice.panels] == ["signal", "visit"] and notice.defaults == {}
    engine.tasks.complete(removal["id"], "guardian", REMOVAL)
    # once the act is made, the notice (open since before it) cites it: its number and date
    notice = engine.sop.task_context(one(engine, emergency, "em_prosecutor_notice")["id"], "guardian")
    assert [p.key for p in notice.panels] == ["signal", "visit", "removal"]
    assert rows(notice.panel("removal"))["Номер акта"] == "5"
    # social protection, examining the family, is told what became of the child (not the acts themselves)
    social = context_of(engine, one(engine, emergency, "em_social_inspection")["id"], "social")
    assert [p.key for p in social.panels] == ["signal", "child_outcome"]
    assert rows(social.panel("child_outcome")) == {
        "Выезд органа опеки": "30.10.2025; угроза жизни или здоровью подтверждена",
        "Ребенок отобран": "30.10.2025, Бабушке, Ивановой Г. П."}
    do(engine, emergency, "em_prosecutor_notice", "guardian", {"prosecutor_office": "Прокуратура г. Йошкар-Олы",
                                                                 "prosecutor_notice_date": "2025-10-30"})
    inform = engine.sop.task_context(one(engine, emergency, "em_inform_commission")["id"], "guardian")
    assert [p.key for p in inform.panels] == ["signal", "visit", "removal"]
    # the information to the commission starts from the measures recorded so far
    assert inform.defaults["measures_taken"].splitlines() == [
        "Выезд и обследование условий жизни ребенка 30.10.2025, акт обследования № 17; угроза жизни или здоровью "
        "ребенка подтверждена.",
        "Вызывались сотрудники органов внутренних дел.",
        "Ребенок отобран (ст. 77 СК РФ), акт об отобрании № 5 от 30.10.2025; передан: Бабушке, Ивановой Г. П.",
        "Прокурор уведомлен (Прокуратура г. Йошкар-Олы) 30.10.2025."]
    do(engine, emergency, "em_court_claim", "guardian", {"claim_kind": "deprive", "court_name":
                                                         "Йошкар-Олинский городской суд", "claim_date": "2025-10-30"})
    inform = engine.sop.task_context(one(engine, emergency, "em_inform_commission")["id"], "guardian")
    assert inform.defaults["measures_taken"].splitlines()[-1] == (
        "Подан иск в Йошкар-Олинский городской суд (лишение родительских прав) 30.10.2025.")
    assert validate_submission(engine.repository.form("em_inform_commission"),
                               {**inform.defaults, "inform_date": "2025-11-05"})
    assert rows(inform.panel("removal"))["Куда и кому передан ребенок"] == "Бабушке, Ивановой Г. П."
    assert rows(inform.panel("removal"))["Акт подписан главой городского округа (муниципального района)"] == "да"
    # the commission sees the guardianship's acts; the police, in the participant view, does not
    assert inform.panel("visit") is not None
    assert [p.key for p in context_of(engine, one(engine, emergency, "em_inform_commission")["id"],
                                      "secretary").panels] == ["signal", "visit", "removal"]
    assert [p.key for p in context_of(engine, one(engine, emergency, "em_inform_commission")["id"],
                                      "police").panels] == ["signal"]


def test_an_emergency_from_a_critical_check_shows_the_checks_conclusion(world):
    engine, service = world
    result = service.register_intake("school", SIGNAL)  # no threat in the journal
    iid = result.instance_ids[0]
    do(engine, iid, "sop_check", "secretary", {**CHECK, "danger_level": "critical"})
    visit = engine.sop.task_context(one(engine, iid, "em_inspection")["id"], "guardian")
    assert [p.key for p in visit.panels] == ["conclusion"]
    assert rows(visit.panel("conclusion"))["Уровень опасности"] == "критический"


def test_an_agencys_answer_to_a_request_for_materials_names_who_fills_it_in(world):
    from sop.materials import request_materials

    engine, service = world
    result = service.register_intake("school", SIGNAL)
    [_instance] = request_materials(engine, result.case_id, [agency_id(engine, POLICE)], "Сведения о семье",
                                    "secretary")
    [asked] = [t for t in engine.tasks.query() if t["element_id"] == "materials_reply"]
    assert context_of(engine, asked["id"], "police").defaults == {"materials_specialist": "Орлов Дмитрий Сергеевич",
                                                                  "materials_date": "2025-10-30"}


def test_other_forms_have_no_context(world):
    engine, service = world
    _, iid = to_execution(engine, service)
    dispatched = [t for t in engine.tasks.query(instance_id=iid, status="completed")
                  if t["element_id"] == "sop_programme_dispatch"][0]
    # a form another engineer's diagram introduces, which no builder knows
    context = context_of(engine, dispatched["id"], "secretary", form_key="another_diagrams_form")
    assert context.to_dict() == {"panels": [], "defaults": {}, "options": {}}
    with engine.db.session() as session:
        assert session.scalar(select(Case.curator)) == "curator1"


def test_a_recognised_cases_status_says_how_far_its_programme_got():
    from sop.documents.labels import case_status

    assert case_status("recognized", None) == "В СОП, программа разрабатывается"
    assert case_status("recognized", {"status": "draft"}) == "В СОП, программа на утверждении"
    assert case_status("recognized", {"status": "approved"}) == "В СОП, идет работа по программе"
    assert case_status("check") == "Проверка информации" and case_status("closed") == "Сняты с учета"


def test_the_closure_dispatch_does_not_ask_what_the_databank_does_itself():
    """The municipal databank lists a case's removal from the register as soon as the commission decides it (it is
    read from the case), so the dispatch of the copies does not ask the secretary to tick that it was entered."""
    import json

    from .test_sop_diagrams import FORMS

    form = json.loads((FORMS / "sop_closure_dispatch.json").read_text(encoding="utf-8"))
    assert "databank_updated" not in {c.get("key") for c in form["components"]}
    assert "банк данных автоматически" in form["components"][0]["text"]


def test_the_closure_decision_starts_from_coming_of_age_when_every_minor_has(world):
    """п. 6.3: when every child of the case has turned 18, the closure's grounds start at «достижение 18 лет»; while
    a younger child remains, nothing is chosen for the commission."""
    engine, service = world
    for children, expected in (([dict(SIGNAL["children"][0], birth_date="2007-12-23")], "age_18"),
                               ([dict(SIGNAL["children"][0], birth_date="2007-12-23"),
                                 dict(SIGNAL["children"][0], first_name="Илья", birth_date="2015-02-01")], None)):
        at(engine, "2025-10-30 09:00")
        result = service.register_intake("school", dict(SIGNAL, children=children), new_family=True)
        iid = result.instance_ids[0]
        do(engine, iid, "sop_check", "secretary", CHECK)
        at(engine, "2025-12-23 10:00")
        do(engine, iid, "sop_recognition", "chair", RECOGNITION)
        card = one(engine, iid, "sop_registration_card")
        context = context_of(engine, card["id"], "secretary", form_key="sop_closure_decision")
        assert context.defaults.get("grounds") == expected
