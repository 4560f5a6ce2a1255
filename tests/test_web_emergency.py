"""The red emergency flag: the commission and managers see every open emergency of their municipality on the inbox,
the case list and the case file, until the emergency ends (sop.emergencies, webapp/emergency.py)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event, select

import sop
from engine.models import ProcessInstance
from sop import emergencies
from sop.emergencies import EMERGENCY_PROCESS, EmergencyFlag, emergency_flag, open_emergencies, run_start
from sop.models import Case, EmergencyRun

from .support import new_engine
from .test_sop_diagrams import CHECK
from .test_sop_service import SIGNAL
from .test_web_intake import FORM, submit
from .test_web_tasks import HASH, build_app, signed_in

EMERGENCY_DATA = {
    "em_inspection": {"visit_date": "2025-10-30", "inspection_findings": "Дети дома, мать трезвая",
                      "threat_confirmed": False, "removed": False, "removed_from_all_parents": False},
    "em_police_report": {"guardianship_informed": True, "police_measures": "Проведена беседа с матерью",
                         "police_report_date": "2025-10-30"},
    "em_social_inspection": {"social_inspection_date": "2025-10-30", "social_findings": "Семья обследована",
                             "social_report_date": "2025-10-30"},
    "em_inform_commission": {"inform_date": "2025-10-30", "measures_taken": "Угроза не подтвердилась"},
}
DOER = {"guardianship": "guardian", "police": "police", "social_protection": "social",
        "commission_secretary": "secretary"}
PAGES = ("/inbox", "/cases")


@pytest.fixture
def app(engine):
    flask_app = build_app(engine)
    identity = engine.identity
    identity.add_user("social", ["social_protection"], agency="КЦСОН г. Йошкар-Олы", password_hash=HASH)
    identity.add_user("boss", ["manager"], agency="КДНиЗП г. Йошкар-Олы", full_name="Федоров Павел Андреевич",
                      password_hash=HASH)
    return flask_app


def flag(page: str) -> str | None:
    found = re.search(r'<section class="emergency-flag".*?</section>', page, re.S)
    return re.sub(r"\s+", " ", found.group(0)) if found else None


def threat_signal(app) -> int:
    """The school registers a signal with a threat to life (the web form): a case and its own emergency start."""
    response = submit(signed_in(app, "school"), {**FORM, "threat_to_life": "true"})
    assert response.status_code == 302
    with app.extensions["kurator"].db.session() as db:
        return db.scalar(select(Case.id))


def finish_emergency(engine, instance_id: int) -> None:
    """Do every open emergency task of an instance, as a user of its role, until none is left."""
    for _round in range(5):
        open_tasks = [t for t in engine.tasks.query(instance_id=instance_id) if t["element_id"] in EMERGENCY_DATA]
        if not open_tasks:
            return
        for task in open_tasks:
            engine.tasks.complete(task["id"], DOER[task["candidate_roles"][0]], EMERGENCY_DATA[task["element_id"]])
    raise AssertionError("the emergency did not end")


def emergency_instance(engine) -> int:
    with engine.db.session() as db:
        return db.scalar(select(ProcessInstance.id).where(ProcessInstance.process_key == EMERGENCY_PROCESS))


def test_the_commission_sees_the_flag_on_the_inbox_the_case_list_and_the_case_file(app):
    case_id = threat_signal(app)
    for username in ("secretary", "chair", "boss"):
        client = signed_in(app, username)
        for path in PAGES:
            banner = flag(client.get(path).get_data(as_text=True))
            assert banner is not None, (username, path)
            assert 'role="alert"' in banner
            assert "Экстренная ситуация: угроза жизни ребенка — " in banner
            assert f'<a href="/cases/{case_id}">Семья Иванова, дело № 1/2025</a>, открыто 30.10.2025 09:00' in banner
        banner = flag(client.get(f"/cases/{case_id}").get_data(as_text=True))
        assert ("Экстренная ситуация: угроза жизни ребенка — по этому делу экстренные меры не завершены, "
                "открыта 30.10.2025 09:00") in banner
        assert f'href="/cases/{case_id}"' not in banner  # the case itself, not a link to it


def test_agency_staff_and_another_municipality_see_no_flag(app):
    case_id = threat_signal(app)
    school = signed_in(app, "school")
    for path in (*PAGES, f"/cases/{case_id}"):
        response = school.get(path)
        assert response.status_code == 200 and flag(response.get_data(as_text=True)) is None, path
    guardian = signed_in(app, "guardian")  # does the emergency's tasks, but is not the commission
    assert flag(guardian.get("/inbox").get_data(as_text=True)) is None
    other = signed_in(app, "vsecretary")
    for path in PAGES:
        page = other.get(path).get_data(as_text=True)
        assert flag(page) is None and "Семья Иванова" not in page, path
    assert other.get(f"/cases/{case_id}").status_code == 404


def test_the_flag_is_gone_when_the_emergency_ends(app):
    engine = app.extensions["kurator"]
    case_id = threat_signal(app)
    secretary = signed_in(app, "secretary")
    assert flag(secretary.get("/inbox").get_data(as_text=True)) is not None
    engine.clock.advance(hours=3)
    finish_emergency(engine, emergency_instance(engine))
    assert engine.runtime.instance(emergency_instance(engine))["status"] == "completed"
    for path in (*PAGES, f"/cases/{case_id}"):
        page = secretary.get(path).get_data(as_text=True)
        assert flag(page) is None and "Экстренная ситуация" not in page, path


def test_an_emergency_called_inside_the_case_flags_the_case_from_the_signal_until_its_tasks_are_done(app):
    """A threat reported in an open case runs the emergency inside the case's own process (a call activity)."""
    engine = app.extensions["kurator"]
    first = engine.sop.register_intake("school", SIGNAL)
    with engine.db.session() as db:
        assert open_emergencies(db, _municipality(engine)) == []
    engine.clock.advance(days=2)  # 1.11.2025 09:00 MSK
    engine.sop.register_intake("police", {**SIGNAL, "source": "Участковый", "received_on": "2025-11-01",
                                          "threat_to_life": True}, attach_to_case=first.case_id)
    case_instance = first.instance_ids[0]
    assert {t["element_id"] for t in engine.tasks.query(instance_id=case_instance)} >= {"em_inspection"}
    with engine.db.session() as db:
        flags = open_emergencies(db, _municipality(engine))
    assert [(e.case_id, e.case_number, e.family, e.since) for e in flags] == [
        (first.case_id, "1/2025", "Семья Иванова", datetime(2025, 11, 1, 6, 0, tzinfo=timezone.utc))]
    banner = flag(signed_in(app, "secretary").get(f"/cases/{first.case_id}").get_data(as_text=True))
    assert "по этому делу экстренные меры не завершены, открыта 01.11.2025 09:00" in banner

    engine.clock.advance(hours=2)
    inspection = next(t for t in engine.tasks.query(instance_id=case_instance) if t["element_id"] == "em_inspection")
    engine.tasks.complete(inspection["id"], "guardian", EMERGENCY_DATA["em_inspection"])  # the run goes on
    with engine.db.session() as db:
        assert [e.since for e in open_emergencies(db, _municipality(engine))] == [flags[0].since]
    finish_emergency(engine, case_instance)
    assert engine.runtime.instance(case_instance)["status"] == "running"  # the case goes on, the emergency ended
    with engine.db.session() as db:
        assert open_emergencies(db, _municipality(engine)) == []
    assert flag(signed_in(app, "secretary").get("/inbox").get_data(as_text=True)) is None


def _municipality(engine) -> int:
    with engine.db.session() as db:
        return db.scalar(select(Case.municipality_id))


def test_an_emergency_run_starts_where_its_tasks_stop_pausing():
    at = datetime(2025, 11, 1, 6, 0, tzinfo=timezone.utc)
    hour = timedelta(hours=1)
    assert run_start([]) is None
    assert run_start([(at, at + hour)]) is None  # all done: no emergency open
    assert run_start([(at, None)]) == at
    # the inspection done, the commission informed next: one emergency since the first task
    assert run_start([(at, at + hour), (at + hour + timedelta(seconds=1), None), (at, at + 2 * hour)]) == at
    # an earlier emergency ended days before: the open one started with its own first task
    assert run_start([(at, at + hour), (at + 3 * 24 * hour, None), (at + 3 * 24 * hour, at + 80 * hour)]) \
        == at + 3 * 24 * hour


def test_many_open_emergencies_are_counted_beyond_the_first_five(app):
    engine = app.extensions["kurator"]
    for number in range(7):
        engine.sop.register_intake("school", dict(SIGNAL, threat_to_life=True, address=f"ул. Мира, д. {number + 1}",
                                                  children=[{"last_name": f"Петров{number}", "first_name": "Иван",
                                                             "birth_date": "2013-04-01"}],
                                                  parents=[{"last_name": f"Петрова{number}", "first_name": "Анна"}]),
                                   new_family=True)
    banner = flag(signed_in(app, "secretary").get("/inbox").get_data(as_text=True))
    assert banner.count("Экстренная ситуация: угроза жизни ребенка — <a") == 5
    assert "и еще 2 дела с открытой экстренной ситуацией" in banner


def _threats(engine, count: int, hours_apart: int = 1) -> list[int]:
    """`count` signals with a threat to life, each in a new family, `hours_apart` after the one before: case ids,
    the oldest emergency first."""
    case_ids = []
    for number in range(count):
        child = {"last_name": f"Петров{number}", "first_name": "Иван", "birth_date": "2013-04-01"}
        result = engine.sop.register_intake(
            "school", dict(SIGNAL, threat_to_life=True, address=f"ул. Мира, д. {number + 1}", children=[child],
                           parents=[{"last_name": f"Петрова{number}", "first_name": "Анна"}]), new_family=True)
        case_ids.append(result.case_id)
        engine.clock.advance(hours=hours_apart)
    return case_ids


class Statements:
    """The SQL an engine's database runs inside the block."""

    def __init__(self, engine):
        self.db_engine = engine.db.engine
        self.seen: list[tuple[str, object]] = []

    def _record(self, _conn, _cursor, statement, parameters, _context, _executemany):
        self.seen.append((statement, parameters))

    def __enter__(self):
        event.listen(self.db_engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *_exc):
        event.remove(self.db_engine, "before_cursor_execute", self._record)

    def reading(self, *columns: str) -> list[tuple[str, object]]:
        return [(sql, params) for sql, params in self.seen if all(c in sql for c in columns)]


def test_the_flag_names_only_the_oldest_shown_cases_and_counts_the_rest(app):
    engine = app.extensions["kurator"]
    case_ids = _threats(engine, 6)
    municipality = _municipality(engine)
    with engine.db.session() as db:
        every = open_emergencies(db, municipality)
        assert [e.case_id for e in every] == case_ids  # oldest first
        with Statements(engine) as sql:
            flag = emergency_flag(db, municipality, shown=2, case_id=case_ids[3])
        assert flag.this == every[3]
        assert flag.others == [every[0], every[1]]
        assert flag.more == 3  # cases 3, 5 and 6 of the six
        # the numbers and families of the three cases drawn are read, not those of the six
        [(_named, params)] = sql.reading("sop_case.number", "sop_family.name")
        assert sorted(v for v in (params.values() if isinstance(params, dict) else params)) == sorted(
            [case_ids[0], case_ids[1], case_ids[3]])
        assert emergency_flag(db, municipality, shown=10).others == every
        assert emergency_flag(db, municipality, shown=10).more == 0
        assert emergency_flag(db, municipality, cases=select(Case.id).where(Case.id == case_ids[5])) == \
            EmergencyFlag(this=None, others=[every[5]], more=0)
        assert emergency_flag(db, municipality, cases=select(Case.id).where(Case.id.is_(None))) is None


def _called_threat(engine, number: int = 0) -> tuple[int, int]:
    """A case opened by an ordinary signal, then a threat to life reported in it two days later (the emergency
    runs inside the case's process): the case id and its instance id."""
    child = {"last_name": f"Петров{number}", "first_name": "Иван", "birth_date": "2013-04-01"}
    family = dict(SIGNAL, address=f"ул. Мира, д. {number + 1}", children=[child],
                  parents=[{"last_name": f"Петрова{number}", "first_name": "Анна"}])
    first = engine.sop.register_intake("school", family, new_family=True)
    engine.clock.advance(days=2)
    engine.sop.register_intake("police", {**family, "source": "Участковый", "received_on": "2025-11-01",
                                          "threat_to_life": True}, attach_to_case=first.case_id)
    return first.case_id, first.instance_ids[0]


def _stored_start(engine, instance_id: int) -> datetime | None:
    with engine.db.session() as db:
        row = db.get(EmergencyRun, instance_id)
        return row.started_at if row else None


def test_a_called_emergency_is_flagged_from_its_stored_start_in_a_fresh_process(app):
    """The start of the run is written when its first step opens and stays while the run goes on, so that another
    process (a fresh engine on the same database, nothing remembered) reads it without the history."""
    engine = app.extensions["kurator"]
    case_id, case_instance = _called_threat(engine)
    began = datetime(2025, 11, 1, 6, 0, tzinfo=timezone.utc)
    assert _stored_start(engine, case_instance) == began
    engine.clock.advance(hours=2)
    split = [t for t in engine.tasks.query(instance_id=case_instance) if t["element_id"] in EMERGENCY_DATA]
    assert {t["element_id"] for t in split} == {"em_inspection", "em_police_report", "em_social_inspection"}
    for task in split:  # the three steps opened together at the signal are done: the next step goes on the run
        engine.tasks.complete(task["id"], DOER[task["candidate_roles"][0]], EMERGENCY_DATA[task["element_id"]])
    assert [t["element_id"] for t in engine.tasks.query(instance_id=case_instance)
            if t["element_id"] in EMERGENCY_DATA] == ["em_inform_commission"]
    assert _stored_start(engine, case_instance) == began

    emergencies._ELEMENTS.clear()  # a process that has seen nothing yet
    fresh = new_engine(engine.db, at="2025-11-01T12:00:00+03:00")
    sop.install(fresh, jobs=False)
    municipality = _municipality(fresh)
    with fresh.db.session() as db, Statements(fresh) as sql:
        assert [(e.case_id, e.since) for e in open_emergencies(db, municipality)] == [(case_id, began)]
        flag = emergency_flag(db, municipality, case_id=case_id)
    assert (flag.this.since, flag.others, flag.more) == (began, [], 0)
    assert sql.reading("human_task.completed_at") == []  # no history read


def test_the_flag_costs_the_same_statements_whatever_the_number_of_called_emergencies(app):
    engine = app.extensions["kurator"]
    _called_threat(engine, 0)
    municipality = _municipality(engine)

    def statements() -> tuple[int, int]:
        with engine.db.session() as db, Statements(engine) as sql:
            flag = emergency_flag(db, municipality, shown=2)
        return len(flag.others) + flag.more, len(sql.seen)

    flagged, cost = statements()
    assert flagged == 1
    for number in range(1, 5):
        _called_threat(engine, number)
    assert statements() == (5, cost)


def test_a_new_emergency_in_the_same_case_process_starts_a_new_run(app):
    engine = app.extensions["kurator"]
    case_id, case_instance = _called_threat(engine)
    engine.clock.advance(hours=3)
    finish_emergency(engine, case_instance)
    with engine.db.session() as db:
        assert open_emergencies(db, _municipality(engine)) == []
    engine.clock.advance(days=5)  # 6.11.2025 12:00 MSK: another threat reported in the same case
    engine.sop.register_intake("police", {**SIGNAL, "source": "Участковый", "received_on": "2025-11-06",
                                          "threat_to_life": True, "address": "ул. Мира, д. 1",
                                          "children": [{"last_name": "Петров0", "first_name": "Иван",
                                                        "birth_date": "2013-04-01"}],
                                          "parents": [{"last_name": "Петрова0", "first_name": "Анна"}]},
                               attach_to_case=case_id)
    again = datetime(2025, 11, 6, 9, 0, tzinfo=timezone.utc)
    assert _stored_start(engine, case_instance) == again
    with engine.db.session() as db:
        assert [e.since for e in open_emergencies(db, _municipality(engine))] == [again]


def test_an_agency_that_sees_the_case_through_its_task_is_told_why(app):
    """Guardianship inspects the family in the emergency without being in the working group: its case file says it
    sees the case because of a task, not as a member of the group, as the school that sent the signal is."""
    case_id = threat_signal(app)
    guardian = signed_in(app, "guardian").get(f"/cases/{case_id}")
    assert guardian.status_code == 200
    page = re.sub(r"\s+", " ", guardian.get_data(as_text=True))
    assert "Вы видите дело, потому что вашему органу (" in page and "поручалась задача по нему" in page
    assert "участник рабочей группы" not in page
    school = re.sub(r"\s+", " ", signed_in(app, "school").get(f"/cases/{case_id}").get_data(as_text=True))
    assert "Вы видите дело как участник рабочей группы" in school


def emergency_section(page: str) -> str | None:
    found = re.search(r'<section id="emergency".*?</section>', page, re.S)
    return re.sub(r"\s+", " ", found.group(0)) if found else None


def test_the_case_file_shows_what_each_emergency_step_recorded_to_those_who_may_read_it(app):
    """The emergency's completed steps, in order, with what each recorded under its form's labels: the commission
    reads them all; an agency reads its own step's record and sees that the others' steps were done."""
    engine = app.extensions["kurator"]
    case_id = threat_signal(app)
    assert emergency_section(signed_in(app, "secretary").get(f"/cases/{case_id}").get_data(as_text=True)) is None
    instance_id = emergency_instance(engine)
    for element in ("em_police_report", "em_inspection", "em_social_inspection", "em_inform_commission"):
        if element != "em_inspection":  # the visit's act is recorded the same minute as the police's step
            engine.clock.advance(hours=1)
        task = next(t for t in engine.tasks.query(instance_id=instance_id) if t["element_id"] == element)
        engine.tasks.complete(task["id"], DOER[task["candidate_roles"][0]], EMERGENCY_DATA[element])
    section = emergency_section(signed_in(app, "secretary").get(f"/cases/{case_id}").get_data(as_text=True))
    assert section is not None
    for text in ("Выезд и акт обследования условий жизни ребенка", "Результаты обследования условий жизни ребенка и "
                 "семьи", "Дети дома, мать трезвая", "Угроза жизни или здоровью ребенка подтверждена</dt><dd "
                 'class="pre">нет', "Проведена беседа с матерью", "Семья обследована", "Угроза не подтвердилась"):
        assert text in section, text
    assert (section.index("Меры ОВД") < section.index("Выезд и акт обследования") < section.index("Обследование семьи")
            < section.index("Информировать КДНиЗП"))  # in the order done
    police = emergency_section(signed_in(app, "police").get(f"/cases/{case_id}").get_data(as_text=True))
    assert "Проведена беседа с матерью" in police and "Выезд и акт обследования условий жизни ребенка" in police
    assert "Дети дома, мать трезвая" not in police and "Семья обследована" not in police
    assert "Что записано, видят комиссия и орган, выполнивший шаг" in police


def test_the_case_file_shows_an_emergency_called_inside_the_case_process(app):
    engine = app.extensions["kurator"]
    first = engine.sop.register_intake("school", SIGNAL)
    check = next(t for t in engine.tasks.query(instance_id=first.instance_ids[0]) if t["element_id"] == "sop_check")
    engine.tasks.complete(check["id"], "secretary", CHECK)  # a step of the case's own, not the emergency's
    engine.clock.advance(days=2)
    engine.sop.register_intake("police", {**SIGNAL, "source": "Участковый", "received_on": "2025-11-01",
                                          "threat_to_life": True}, attach_to_case=first.case_id)
    inspection = next(t for t in engine.tasks.query(instance_id=first.instance_ids[0])
                      if t["element_id"] == "em_inspection")
    engine.tasks.complete(inspection["id"], "guardian", EMERGENCY_DATA["em_inspection"])
    section = emergency_section(signed_in(app, "chair").get(f"/cases/{first.case_id}").get_data(as_text=True))
    assert "Дети дома, мать трезвая" in section
    assert "Проверка информации" not in section and CHECK["conclusion"] not in section
