"""The SOP domain end to end: signals registered in journals, cases and their records kept in step with the
processes, documents in the case file, escalations, periodic jobs."""

from __future__ import annotations

import io
from datetime import date, timedelta

import pytest
from pypdf import PdfReader
from sqlalchemy import event, func, select

import sop
from engine import InvalidInput
from engine.errors import NotFound, PermissionDenied
from engine.models import Agency, HumanTask
from sop import casefile, repeated_signals
from sop.documents.render import render_pdf
from sop.models import Activity, Case, Document, Escalation, ExecutionReport, IntakeEntry, Person, Resolution
from sop.service import DuplicateFound

from .support import statements_sent
from .test_sop_diagrams import (
    APPROVE,
    CARD,
    CHECK,
    CLOSURE,
    CLOSURE_DISPATCH,
    DISPATCH,
    DRAFT,
    FORMS,
    PROPOSAL,
    RECOGNITION,
    REPORT,
    REVIEW_CLOSE,
    REVIEW_CONTINUE,
    SUMMARY,
    WORKFLOWS,
    at,
    complete,
    tasks,
)

SIGNAL = {"received_on": "2025-10-29", "source": "Классный руководитель МБОУ СОШ № 5",
          "children": [{"last_name": "Иванов", "first_name": "Петр", "patronymic": "Андреевич",
                        "birth_date": "2012-03-12", "occupation": "СОШ № 5, 7 «Б»"}],
          "parents": [{"last_name": "Иванова", "first_name": "Анна", "patronymic": "Сергеевна",
                       "birth_date": "1988-05-02", "occupation": "не работает"}],
          "address": "г. Йошкар-Ола, ул. Пушкина, д. 1, кв. 2",
          "problem": "Ребенок пропускает занятия, мать злоупотребляет алкоголем"}


AGENCY_USERS = {"МБОУ СОШ № 5": "school", "ОМВД России по г. Йошкар-Оле": "police",
                "Отдел опеки и попечительства": "guardian", "КЦСОН г. Йошкар-Олы": "specialist"}


def agency_user(task: dict, default: str) -> str:
    """The specialist of the agency a task is addressed to (any agency specialist for an unaddressed one)."""
    return AGENCY_USERS.get(task["agency_name"], default)


def report_all(engine, instance_id, data=None) -> None:
    """Each agency of the working group reports on the round from its own task."""
    for report in tasks(engine, instance_id)["sop_execution_report"]:
        engine.tasks.complete(report["id"], agency_user(report, "police"), data or REPORT)


@pytest.fixture
def world(engine):
    """A municipality with its commission and agencies, users of every role, the SOP diagrams deployed."""
    service = sop.install(engine)
    identity = engine.identity
    for name, kind in (("КДНиЗП г. Йошкар-Олы", "commission"), ("МБОУ СОШ № 5", "education"),
                       ("ОМВД России по г. Йошкар-Оле", "police"), ("Отдел опеки и попечительства", "guardianship"),
                       ("КЦСОН г. Йошкар-Олы", "social_protection")):
        identity.add_agency(name, "Йошкар-Ола", kind=kind)
    identity.add_user("secretary", ["commission_secretary"], agency="КДНиЗП г. Йошкар-Олы")
    identity.add_user("chair", ["commission"], agency="КДНиЗП г. Йошкар-Олы")
    identity.add_user("school", ["education", "agency_specialist"], agency="МБОУ СОШ № 5")
    identity.add_user("police", ["police", "agency_specialist"], agency="ОМВД России по г. Йошкар-Оле")
    identity.add_user("guardian", ["guardianship", "agency_specialist"], agency="Отдел опеки и попечительства")
    identity.add_user("curator1", ["curator"], agency="КЦСОН г. Йошкар-Олы")
    identity.add_user("specialist", ["agency_specialist"], agency="КЦСОН г. Йошкар-Олы")
    engine.repository.deploy([*sorted(WORKFLOWS.glob("*.bpmn")), *sorted(FORMS.glob("*.json"))])
    return engine, service


def open_task(engine, instance_id, element):
    found = [t for t in engine.tasks.query(instance_id=instance_id) if t["element_id"] == element]
    assert len(found) == 1, [t["element_id"] for t in engine.tasks.query(instance_id=instance_id)]
    return found[0]


def documents(engine, case_id) -> dict[str, bytes]:
    with engine.db.session() as session:
        return {d.kind: d.content for d in session.scalars(select(Document).where(Document.case_id == case_id)
                                                            .order_by(Document.id))}


def pdf_text(pdf: bytes) -> str:
    """The PDF's text with line breaks and repeated spaces folded, so that wrapped values still match."""
    return " ".join(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages).split())


def test_signal_from_a_school_opens_a_case_in_both_journals(world):
    engine, service = world
    result = service.register_intake("school", SIGNAL)
    assert result.case_number == "1/2025" and not result.attached
    with engine.db.session() as session:
        entries = session.scalars(select(IntakeEntry).order_by(IntakeEntry.id)).all()
        assert [(e.agency.kind, e.number, e.case_id) for e in entries] == [("education", 1, result.case_id),
                                                                           ("commission", 1, result.case_id)]
        assert entries[1].forwarded_from_id == entries[0].id
        case = session.get(Case, result.case_id)
        assert case.status == "check" and case.received_on == date(2025, 10, 29)
        assert {p.agency.kind for p in case.participants} == {"commission", "education"}
    check = open_task(engine, result.instance_ids[0], "sop_check")
    assert check["candidate_roles"] == ["commission_secretary"]
    assert check["due"].startswith("2025-11-06")  # 5 working days from 29.10.2025 (1.11 worked, 3-4.11 off)


def test_duplicate_guard_shows_the_existing_case(world):
    engine, service = world
    first = service.register_intake("school", SIGNAL)
    again = dict(SIGNAL, source="Участковый", address="другой адрес, д. 5")
    # the school reported the family: it takes part in the case and is shown the case
    with pytest.raises(DuplicateFound) as err:
        service.register_intake("school", again)
    assert err.value.duplicates[0]["number"] == "1/2025"
    # the police take no part in it: they learn that the commission knows the family, not the case's number,
    # family or status
    with pytest.raises(DuplicateFound) as err:
        service.register_intake("police", again)
    assert err.value.duplicates == [{"case_id": first.case_id, "number": None, "family": None, "status": None}]
    assert "1/2025" not in err.value.message and "Иванов" not in err.value.message
    with engine.db.session() as session:
        assert session.scalar(select(func.count()).select_from(IntakeEntry)) == 2  # nothing saved
    attached = service.register_intake("police", again, attach_to_case=first.case_id)
    assert attached.attached and attached.case_id == first.case_id
    # attaching the signal does not open the case to the police
    assert {a["name"] for a in service.case(first.case_id)["agencies"]}.isdisjoint({"ОМВД России по г. Йошкар-Оле"})
    # the signal waits for the commission: the secretary sees it and records what was done with it
    assert repeated_signals.pending(engine, "police") == []
    [waiting] = repeated_signals.pending(engine, "secretary")
    assert (waiting["case_number"], waiting["agency"], waiting["source"]) == (
        "1/2025", "ОМВД России по г. Йошкар-Оле", "Участковый")
    with pytest.raises(InvalidInput):
        repeated_signals.consider(engine, waiting["id"], "secretary", " ")
    with pytest.raises(PermissionDenied):
        repeated_signals.consider(engine, waiting["id"], "police", "Приобщено")
    repeated_signals.consider(engine, waiting["id"], "secretary", "Приобщено к делу, передано куратору")
    assert repeated_signals.pending(engine, "secretary") == []
    with engine.db.session() as session:
        assert session.get(IntakeEntry, waiting["id"]).result == "Приобщено к делу, передано куратору"
    with pytest.raises(NotFound):  # considered once
        repeated_signals.consider(engine, waiting["id"], "secretary", "еще раз")
    other = service.register_intake("police", again, new_family=True)
    assert other.case_number == "2/2025"


def test_bad_signal_gets_a_message_per_field_and_saves_nothing(world):
    engine, service = world
    bad = dict(SIGNAL, received_on="вчера", children=[{"last_name": "Иванов"}], problem="")
    with pytest.raises(InvalidInput) as err:
        service.register_intake("school", bad)
    assert set(err.value.errors) >= {"received_on", "children.0.first_name", "children.0.birth_date", "problem"}
    with engine.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Case)) == 0


def to_approval(engine, service):
    """A case recognised on 23.12.2025 whose programme waits for the commission's approval."""
    result = service.register_intake("school", SIGNAL)
    iid = result.instance_ids[0]
    complete(engine, iid, "sop_check", CHECK)
    at(engine, "2025-12-23 10:00")
    complete(engine, iid, "sop_recognition", RECOGNITION)
    complete(engine, iid, "sop_registration_card", CARD)
    for proposal in tasks(engine, iid)["sop_proposals"]:
        engine.tasks.complete(proposal["id"], agency_user(proposal, "police"), PROPOSAL)
    complete(engine, iid, "sop_programme_draft", DRAFT)
    return result, iid


def test_each_agency_reports_on_its_activities_and_their_status_follows(world):
    engine, service = world
    result, iid = to_approval(engine, service)
    at(engine, "2026-01-15 10:00")
    complete(engine, iid, "sop_programme_approval", APPROVE)
    complete(engine, iid, "sop_programme_dispatch", DISPATCH)
    reports = {r["agency_name"]: r for r in tasks(engine, iid)["sop_execution_report"]}
    assert sorted(reports) == ["МБОУ СОШ № 5", "ОМВД России по г. Йошкар-Оле"]
    police = reports["ОМВД России по г. Йошкар-Оле"]
    with pytest.raises(PermissionDenied):  # the school cannot report for the police
        engine.tasks.complete(police["id"], "school", REPORT)
    engine.tasks.complete(police["id"], "police", dict(REPORT, activity_reports=[
        {"number": 1, "title": "Беседа инспектора ПДН", "status": "partly", "status_date": "2026-01-15",
         "comment": "Одна беседа из двух"}]))
    with engine.db.session() as session:
        statuses = {a.number: (a.status, a.done_on) for a in
                    session.scalars(select(Activity).where(Activity.case_id == result.case_id))}
        report = session.scalar(select(ExecutionReport).where(ExecutionReport.case_id == result.case_id))
        police_agency = session.scalar(select(Agency.id).where(Agency.name == "ОМВД России по г. Йошкар-Оле"))
    assert statuses == {1: ("partly", date(2026, 1, 15)), 2: ("planned", None)}
    assert report.agency_id == police_agency and report.data["activity_reports"][0]["comment"] == "Одна беседа из двух"
    assert "sop_curator_summary" not in tasks(engine, iid)  # the school has not reported yet
    engine.tasks.complete(reports["МБОУ СОШ № 5"]["id"], "school", REPORT)
    assert "sop_curator_summary" in tasks(engine, iid)


def test_case_records_and_documents_follow_the_process(world):
    engine, service = world
    result = service.register_intake("school", SIGNAL)
    instance = result.instance_ids[0]
    engine.tasks.complete(open_task(engine, instance, "sop_check")["id"], "secretary", CHECK)
    case = service.case(result.case_id)
    assert case["danger_level"] == "high" and case["sop_confirmed"] is True
    at(engine, "2025-12-23 10:00")
    recognition = open_task(engine, instance, "sop_recognition")
    with pytest.raises(InvalidInput, match="curator"):
        engine.tasks.complete(recognition["id"], "chair", dict(RECOGNITION, curator="nobody"))
    engine.tasks.complete(recognition["id"], "chair", RECOGNITION)
    case = service.case(result.case_id)
    assert case["status"] == "recognized" and case["curator"] == "curator1"
    assert case["recognized_on"] == "2025-12-23"
    assert {a["name"] for a in case["agencies"]} >= {"ОМВД России по г. Йошкар-Оле", "КЦСОН г. Йошкар-Олы"}
    engine.tasks.complete(open_task(engine, instance, "sop_registration_card")["id"], "curator1", CARD)
    for proposal in [t for t in engine.tasks.query(instance_id=instance) if t["element_id"] == "sop_proposals"]:
        engine.tasks.complete(proposal["id"], agency_user(proposal, "police"), PROPOSAL)
    engine.tasks.complete(open_task(engine, instance, "sop_programme_draft")["id"], "curator1", DRAFT)
    at(engine, "2026-01-15 10:00")
    engine.tasks.complete(open_task(engine, instance, "sop_programme_approval")["id"], "chair", APPROVE)
    engine.tasks.complete(open_task(engine, instance, "sop_programme_dispatch")["id"], "secretary", DISPATCH)

    with engine.db.session() as session:
        activities = session.scalars(select(Activity).where(Activity.case_id == result.case_id)).all()
        assert [a.title for a in activities] == ["Беседа инспектора ПДН", "Патронаж"]
        # the executor named in each line is matched to a working-group agency: each reports on its own
        assert [a.agency_kind for a in activities] == ["police", "social_protection"]
        kinds = [r.kind for r in session.scalars(select(Resolution).order_by(Resolution.id))]
        assert kinds == ["recognition", "approval"]
    docs = documents(engine, result.case_id)
    assert {"conclusion", "resolution_recognition", "registration_card", "proposals", "programme",
            "resolution_approval"} <= set(docs)
    assert "Иванов Петр Андреевич" in pdf_text(docs["conclusion"])
    assert "45/3" in pdf_text(docs["resolution_recognition"])
    assert "Беседа инспектора ПДН" in pdf_text(docs["programme"])


def test_closure_needs_a_majority_of_those_present(world):
    engine, service = world
    result = service.register_intake("school", SIGNAL)
    from sop.handlers import Context, on_closure_decision

    with engine.db.session() as session:  # the closure handler on its own, as the closure task calls it
        case = session.get(Case, result.case_id)
        case.status = "recognized"
        ctx = Context(service, session, case, None, {"decision": "close", "grounds": "improved", "present": 7,
                                                      "votes_for": 3, "votes_against": 4, "result": "full",
                                                      "resolution_number": "1", "closure_date": "2026-01-20"},
                      "chair", None)
        with pytest.raises(InvalidInput, match="majority"):
            on_closure_decision(ctx)
        ctx.data["votes_for"], ctx.data["votes_against"] = 5, 2
        on_closure_decision(ctx)
        assert case.status == "closed" and case.closure_grounds == "improved"
        assert case.closed_on == date(2026, 1, 20)


def test_overdue_task_is_escalated_to_the_secretary(world):
    engine, service = world
    result = service.register_intake("school", SIGNAL)
    at(engine, "2025-11-07 00:00:01")
    assert engine.management.sweep().overdue_marked == 1
    escalations = service.escalations()
    check = open_task(engine, result.instance_ids[0], "sop_check")
    assert [(e["case_id"], e["task_id"], e["task_name"]) for e in escalations] == [
        (result.case_id, check["id"], check["name"])]
    with engine.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Escalation)) == 1


def test_a_task_overdue_again_after_its_deadline_moved_brings_its_escalation_up_again(world):
    # a migration to a new version can move a missed deadline later (the task is no longer overdue); when the new
    # deadline is missed too, the one escalation of the task is refreshed and shown again, not duplicated
    engine, service = world
    result = service.register_intake("school", SIGNAL)
    at(engine, "2025-11-07 00:00:01")
    engine.management.sweep()
    check = open_task(engine, result.instance_ids[0], "sop_check")
    escalation_id = service.escalations()[0]["id"]
    with engine.db.session() as session:
        session.get(Escalation, escalation_id).acknowledged_at = engine.clock.now()  # seen by the secretary
        task = session.get(HumanTask, check["id"])
        task.due, task.overdue = task.due + timedelta(days=10), False
        new_due = task.due
    at(engine, "2025-11-18 00:00:01")
    engine.management.sweep()
    with engine.db.session() as session:
        rows = session.scalars(select(Escalation).where(Escalation.task_id == check["id"])).all()
        assert [(e.id, e.task_id, e.due, e.acknowledged_at) for e in rows] == [
            (escalation_id, check["id"], new_due, None)]


def test_threat_to_life_starts_the_emergency_path_and_the_removal_joins_the_case(world):
    engine, service = world
    result = service.register_intake("police", dict(SIGNAL, threat_to_life=True))
    assert len(result.instance_ids) == 2
    emergency = result.instance_ids[1]
    inspection = open_task(engine, emergency, "em_inspection")
    assert inspection["candidate_roles"] == ["guardianship"]
    engine.tasks.complete(inspection["id"], "guardian", {"visit_date": "2025-10-30", "inspection_findings": "Угроза",
                                                         "threat_confirmed": True, "removed": True,
                                                         "removed_from_all_parents": True,
                                                         "removal_date": "2025-10-30", "placement": "institution"})
    engine.tasks.complete(open_task(engine, emergency, "em_removal_act")["id"], "guardian",
                          {"removal_act_number": "7", "removal_act_date": "2025-10-30", "removal_act_signed": True,
                           "placement_details": "СРЦН «Дружба»"})
    case = service.case(result.case_id)
    assert case["danger_level"] == "critical"
    assert "Отдел опеки и попечительства" in {a["name"] for a in case["agencies"]}
    text = pdf_text(documents(engine, result.case_id)["removal_act"])
    assert "Иванов Петр Андреевич" in text and "СРЦН «Дружба»" in text


def test_quarterly_reconciliation_starts_once_per_quarter(world):
    engine, service = world
    at(engine, "2026-01-01 00:10")
    first = engine.management.sweep()
    assert first.jobs["quarterly_reconciliation"] == 1
    assert engine.management.sweep().jobs["quarterly_reconciliation"] == 0
    reconciliation = engine.runtime.instances(process_key="quarterly_reconciliation")
    assert len(reconciliation) == 1
    agency_tasks = [t for t in engine.tasks.query(instance_id=reconciliation[0]["id"])
                    if t["element_id"] == "rec_agency"]
    assert len(agency_tasks) == 4  # school, police, guardianship, social protection
    at(engine, "2026-04-01 08:00")
    assert engine.management.sweep().jobs["quarterly_reconciliation"] == 1


def test_a_minor_turning_18_produces_a_closure_proposal_that_day(world):
    engine, service = world
    signal = dict(SIGNAL, children=[dict(SIGNAL["children"][0], birth_date="2007-12-23")])
    result = service.register_intake("school", signal)
    instance = result.instance_ids[0]
    engine.tasks.complete(open_task(engine, instance, "sop_check")["id"], "secretary", CHECK)
    at(engine, "2025-12-22 10:00")
    engine.tasks.complete(open_task(engine, instance, "sop_recognition")["id"], "chair",
                          dict(RECOGNITION, meeting_date="2025-12-22"))
    assert engine.management.sweep().jobs["minor_turned_18"] == 0
    at(engine, "2025-12-23 00:05")
    assert engine.management.sweep().jobs["minor_turned_18"] == 1
    proposal = open_task(engine, instance, "sop_closure_proposal")
    assert proposal["candidate_roles"] == ["commission_secretary"]
    assert engine.management.sweep().jobs["minor_turned_18"] == 0


def test_no_second_closure_question_while_the_commission_has_one(world):
    """A sibling turning 18 the next day, while the first proposal is still before the commission, adds no second
    closure question to the agenda; the sibling stays unproposed until the commission has decided."""
    engine, service = world
    children = [dict(SIGNAL["children"][0], birth_date="2007-12-23"),
                dict(SIGNAL["children"][0], first_name="Анна", birth_date="2007-12-24")]
    result = service.register_intake("school", dict(SIGNAL, children=children))
    instance = result.instance_ids[0]
    engine.tasks.complete(open_task(engine, instance, "sop_check")["id"], "secretary", CHECK)
    at(engine, "2025-12-22 10:00")
    engine.tasks.complete(open_task(engine, instance, "sop_recognition")["id"], "chair",
                          dict(RECOGNITION, meeting_date="2025-12-22"))
    at(engine, "2025-12-23 00:05")
    assert engine.management.sweep().jobs["minor_turned_18"] == 1
    at(engine, "2025-12-24 00:05")
    assert engine.management.sweep().jobs["minor_turned_18"] == 0
    with engine.db.session() as session:
        assert session.scalar(select(func.count()).select_from(HumanTask).where(
            HumanTask.instance_id == instance, HumanTask.form_key == "sop_closure_proposal")) == 1
        anna = session.scalar(select(Person).where(Person.first_name == "Анна"))
        assert anna.age18_proposed_on is None


def test_journal_and_databank_registers(world):
    engine, service = world
    result = service.register_intake("school", SIGNAL)
    with engine.db.session() as session:
        school = session.scalar(select(IntakeEntry.agency_id).order_by(IntakeEntry.id).limit(1))
        municipality = session.scalar(select(Case.municipality_id))
    empty = pdf_text(render_pdf("databank", casefile.databank_context(engine, municipality, date(2025, 12, 31))))
    assert "Иванов" not in empty  # only cases recognised by the commission are in the databank
    with engine.db.session() as session:
        case = session.get(Case, result.case_id)
        case.status, case.recognized_on, case.criteria = "recognized", date(2025, 11, 12), ["c2"]
    journal = pdf_text(render_pdf("intake_journal", casefile.journal_context(engine, school, date(2025, 1, 1),
                                                                             date(2025, 12, 31))))
    assert "Иванова" in journal and "МБОУ СОШ № 5" in journal and "12.03.2012" in journal
    databank = pdf_text(render_pdf("databank", casefile.databank_context(engine, municipality, date(2025, 12, 31))))
    assert "списки" in databank.lower() and "Иванов" in databank and "12.11.2025" in databank


def test_whole_case_from_signal_to_removal_from_the_register(world):
    """Signal → check → recognition → programme drafted late (overdue, escalated) → approval → agency reports →
    six-month review → continue → review → closure by vote, with the case file kept in step."""
    engine, service = world
    at(engine, "2025-10-30 09:00")
    result = service.register_intake("school", dict(SIGNAL, received_on="2025-10-30"))
    iid = result.instance_ids[0]
    complete(engine, iid, "sop_check", CHECK)
    at(engine, "2025-12-23 10:00")
    complete(engine, iid, "sop_recognition", RECOGNITION)
    complete(engine, iid, "sop_registration_card", CARD)
    for proposal in tasks(engine, iid)["sop_proposals"]:
        engine.tasks.complete(proposal["id"], agency_user(proposal, "specialist"), PROPOSAL)
    at(engine, "2026-01-13 00:00:01")  # the 14-day term of the programme (moved to 12.01.2026) has passed
    assert engine.management.sweep().overdue_marked == 1
    assert [e["task_name"] for e in service.escalations()] == [tasks(engine, iid)["sop_programme_draft"][0]["name"]]
    complete(engine, iid, "sop_programme_draft", DRAFT)
    at(engine, "2026-01-15 10:00")  # the commission approves the programme at its meeting
    complete(engine, iid, "sop_programme_approval", APPROVE)
    complete(engine, iid, "sop_programme_dispatch", DISPATCH)
    report_all(engine, iid)
    complete(engine, iid, "sop_curator_summary", SUMMARY)
    at(engine, "2026-06-24 09:00")
    assert engine.management.sweep().timers_fired == 1
    complete(engine, iid, "sop_review", REVIEW_CONTINUE)
    report_all(engine, iid)
    complete(engine, iid, "sop_curator_summary", SUMMARY)
    at(engine, "2026-12-25 09:00")
    assert engine.management.sweep().timers_fired == 1
    complete(engine, iid, "sop_review", REVIEW_CLOSE)
    at(engine, "2026-12-28 10:00")  # the commission's meeting
    with pytest.raises(InvalidInput, match="majority"):
        complete(engine, iid, "sop_closure_decision", dict(CLOSURE, votes_for=3, votes_against=3, present=7))
    complete(engine, iid, "sop_closure_decision", CLOSURE)
    at(engine, "2027-01-11 10:00")
    # the secretary sending the copies sees which resolution they are of
    dispatch = tasks(engine, iid)["sop_closure_dispatch"][0]
    resolution = dict(engine.sop.task_context(dispatch["id"], "secretary").panel("resolution").rows)
    assert resolution == {"Постановление": "№ 112/4, от 28.12.2026",
                          "Решение": "прекратить индивидуальную профилактическую работу и снять с учета",
                          "Основание": "Устранение обстоятельств, улучшение обстановки в семье (п. 6.3 д, 6.4 е)"}
    complete(engine, iid, "sop_closure_dispatch", CLOSURE_DISPATCH)

    assert engine.runtime.instance(iid)["status"] == "completed"
    case = service.case(result.case_id)
    assert (case["status"], case["closed_on"], case["closure_grounds"], case["programme_result"]) == (
        "closed", "2026-12-28", "improved", "full")
    with engine.db.session() as session:
        resolutions = [(r.kind, r.number) for r in session.scalars(select(Resolution).order_by(Resolution.id))]
        reports = session.scalar(select(func.count()).select_from(ExecutionReport))
    assert resolutions == [("recognition", "45/3"), ("approval", "2"), ("closure", "112/4")]
    assert reports == 6  # two rounds of the police and the school, and the two curator summaries
    closure = pdf_text(documents(engine, result.case_id)["resolution_closure"])
    assert "112/4" in closure and "Иванов Петр Андреевич" in closure
    databank = pdf_text(render_pdf("databank", casefile.databank_context(engine, case_municipality(engine),
                                                                         date(2027, 1, 11))))
    assert "23.12.2025" in databank and "28.12.2026" in databank


def case_municipality(engine) -> int:
    with engine.db.session() as session:
        return session.scalar(select(Case.municipality_id).limit(1))


def test_the_secretary_sends_the_check_to_an_agency_which_writes_the_conclusion(world):
    from sop.checks import check_agencies, open_check, send_check

    engine, service = world
    engine.identity.add_agency("Школа № 1 Волжска", "Волжск", kind="education")
    result = service.register_intake("school", SIGNAL)
    iid = result.instance_ids[0]
    check = open_check(engine, result.case_id)
    assert check["agency_id"] is None and check["agency_name"] is None
    names = [a["name"] for a in check_agencies(engine, result.case_id)]
    assert names[0] == "КДНиЗП г. Йошкар-Олы" and "Школа № 1 Волжска" not in names
    school = next(a for a in check_agencies(engine, result.case_id) if a["name"] == "МБОУ СОШ № 5")
    with pytest.raises(PermissionDenied):  # only the commission's secretary sends a check
        send_check(engine, check["task_id"], school["id"], "school")
    other = next(a["id"] for a in engine.identity.agencies() if a["name"] == "Школа № 1 Волжска")
    with pytest.raises(InvalidInput, match="municipality"):
        send_check(engine, check["task_id"], other, "secretary")
    sent = send_check(engine, check["task_id"], school["id"], "secretary")
    assert (sent["agency_name"], sent["candidate_roles"], sent["due"]) == (
        "МБОУ СОШ № 5", ["agency_specialist"], check["due"].isoformat())
    assert check["task_id"] in [t["id"] for t in engine.tasks.query(user="school")]
    assert check["task_id"] not in [t["id"] for t in engine.tasks.query(user="secretary")]
    assert check["task_id"] not in [t["id"] for t in engine.tasks.query(user="police")]
    moved = [e for e in engine.history.for_instance(iid) if e["type"] == "task_addressed"]
    assert moved[0]["actor"] == "secretary" and moved[0]["data"]["agency"] == "МБОУ СОШ № 5"
    # the school writes the conclusion; the case goes on to the commission
    engine.tasks.complete(check["task_id"], "school", CHECK)
    assert service.case(result.case_id)["sop_confirmed"] is True
    assert "sop_recognition" in tasks(engine, iid)


def test_a_check_sent_away_can_be_called_back(world):
    from sop.checks import check_agencies, open_check, send_check

    engine, service = world
    result = service.register_intake("school", SIGNAL)
    check = open_check(engine, result.case_id)
    agencies = {a["kind"]: a["id"] for a in check_agencies(engine, result.case_id)}
    send_check(engine, check["task_id"], agencies["police"], "secretary")
    back = send_check(engine, check["task_id"], agencies["commission"], "secretary")
    assert back["candidate_roles"] == ["commission_secretary"]
    assert check["task_id"] in [t["id"] for t in engine.tasks.query(user="secretary")]
    assert check["task_id"] not in [t["id"] for t in engine.tasks.query(user="police")]


def test_the_commission_requests_materials_and_each_agency_answers_into_the_case_file(world):
    from sop.access import CaseAccess, visible_documents
    from sop.materials import request_materials

    engine, service = world
    result = service.register_intake("school", SIGNAL)  # received 30.10.2025: the check is due 7.11.2025
    agencies = {a["name"]: a["id"] for a in engine.identity.agencies()}
    police, school = agencies["ОМВД России по г. Йошкар-Оле"], agencies["МБОУ СОШ № 5"]
    with pytest.raises(PermissionDenied):
        request_materials(engine, result.case_id, [police], "Сведения о семье", "school")
    with pytest.raises(InvalidInput, match="question"):
        request_materials(engine, result.case_id, [police], "  ", "secretary")
    with pytest.raises(InvalidInput, match="agencies"):
        request_materials(engine, result.case_id, [agencies["КДНиЗП г. Йошкар-Олы"]], "Сведения", "secretary")
    before = len(engine.runtime.instances("sop_materials"))
    started = request_materials(engine, result.case_id, [police, school], "Сведения о поведении подростка",
                                "secretary")
    assert len(started) == 2 and before == 0
    asked = {t["agency_name"]: t for t in engine.tasks.query() if t["element_id"] == "materials_reply"}
    assert sorted(asked) == ["МБОУ СОШ № 5", "ОМВД России по г. Йошкар-Оле"]
    # 3 working days from 30.10.2025 is 5.11.2025 (1.11 worked, 3-4.11 off): earlier than the check's 7.11
    assert {t["due"] for t in asked.values()} == {"2025-11-05T20:59:59+00:00"}
    assert [t["id"] for t in engine.tasks.query(user="police") if t["element_id"] == "materials_reply"] == [
        asked["ОМВД России по г. Йошкар-Оле"]["id"]]
    assert engine.tasks.draft(asked["ОМВД России по г. Йошкар-Оле"]["id"]) == {}
    engine.tasks.complete(asked["ОМВД России по г. Йошкар-Оле"]["id"], "police", {
        "materials_question": "Сведения о поведении подростка", "materials_answer": "На учете в ПДН не состоит",
        "materials_specialist": "Инспектор ПДН Орлов Д. С.", "materials_date": "2025-10-30"})
    with engine.db.session() as session:
        [document] = session.scalars(select(Document).where(Document.case_id == result.case_id,
                                                            Document.kind == "materials")).all()
        assert document.agency_id == police and document.title.endswith("— ОМВД России по г. Йошкар-Оле")
        content = bytes(document.content)
        users = {u.username: u for u in engine.identity.users()}
        case = session.get(Case, result.case_id)

        def sees(username: str) -> bool:
            user = users[username]
            person = type("U", (), {"username": user.username, "roles": frozenset(user.roles),
                                    "agency_id": user.agency_id, "agency_kind": None,
                                    "municipality_wide": "commission_secretary" in user.roles})()
            return any(d.kind == "materials" for d in visible_documents(session, CaseAccess.of(person, case), case.id))

        assert sees("secretary") and sees("police") and not sees("school")
    reader = PdfReader(io.BytesIO(content))
    words = " ".join(page.extract_text() for page in reader.pages)
    assert "На учете в ПДН не состоит" in words and "Сведения о поведении подростка" in words


def test_a_document_left_waiting_is_laid_out_by_its_reader_or_the_scheduler(world):
    """A process that stopped between a step's commit and laying out the PDF (a web worker restarted) leaves the
    document waiting: whoever reads it first lays it out at once, and the scheduler's sweep takes those still
    waiting a minute later."""
    engine, service = world
    acts = []
    for _ in range(2):
        instance = service.register_intake("school", SIGNAL, new_family=True).instance_ids[0]
        deferral = casefile.defer_rendering()
        engine.tasks.complete(open_task(engine, instance, "sop_check")["id"], "secretary", CHECK)
        acts += casefile.deferred_documents(deferral)  # and then never laid out by that process
    first, second = acts
    assert [d["pending"] for d in service.documents(_case_of_document(engine, first))] == [True]
    filename, pdf = service.document(first)  # a reader does not wait for the scheduler
    assert filename.startswith("conclusion-") and pdf.startswith(b"%PDF")
    assert engine.management.sweep().jobs["render_documents"] == 0  # the other was written just now
    engine.clock.advance(minutes=2)
    assert engine.management.sweep().jobs["render_documents"] == 1
    with engine.db.session() as session:
        for document_id in acts:
            act = session.get(Document, document_id)
            assert act.pending_html is None and act.content.startswith(b"%PDF") and act.size == len(act.content)
        assert session.get(Document, first).content == pdf  # stored by the reader, not laid out again


def test_a_document_whose_pdf_cannot_be_laid_out_is_a_clear_error_and_stays_waiting(world, monkeypatch):
    engine, service = world
    instance = service.register_intake("school", SIGNAL).instance_ids[0]
    deferral = casefile.defer_rendering()
    engine.tasks.complete(open_task(engine, instance, "sop_check")["id"], "secretary", CHECK)
    [act] = casefile.deferred_documents(deferral)

    def broken(html):
        raise RuntimeError("layout failed")

    monkeypatch.setattr(casefile, "pdf_from_html", broken)
    with pytest.raises(InvalidInput, match="не удалось сформировать в PDF; его можно сформировать заново"):
        service.document(act)
    assert casefile.render_pending(engine, [act]) == 0  # logged, not raised: the change it followed stands
    with engine.db.session() as session:
        failed = session.get(Document, act)
        assert failed.pending_html is not None and failed.render_failed_at == engine.clock.now()
    assert [d["pdf_state"] for d in service.documents(failed.case_id)] == ["failed"]
    engine.clock.advance(minutes=2)
    assert engine.management.sweep().jobs["render_documents"] == 0  # the scheduler does not try it again
    with pytest.raises(InvalidInput, match="не удалось сформировать в PDF"):  # a regeneration keeps nothing
        casefile.regenerate(engine, act, "secretary")
    with engine.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Document)) == 1
    monkeypatch.undo()
    assert service.document(act)[1].startswith(b"%PDF")  # a reader tries again
    with engine.db.session() as session:
        assert session.get(Document, act).render_failed_at is None


def _case_of_document(engine, document_id: int) -> int:
    with engine.db.session() as session:
        return session.get(Document, document_id).case_id


def test_a_case_step_is_completed_in_one_transaction_without_reading_again_what_the_completion_read(world):
    """The check's completion with the domain attached (its handler writes the conclusion and the act; the next
    step's deadline is `next_meeting()`): one transaction, and neither the domain's listener nor the diagram's
    function reads the task, the instance or the municipality again."""
    engine, service = world
    instance = service.register_intake("school", SIGNAL).instance_ids[0]
    task = open_task(engine, instance, "sop_check")
    commits = []
    committed = commits.append  # one bound method: the listener removed is the one added
    event.listen(engine.db.engine, "commit", committed)
    deferral = casefile.defer_rendering()  # as the web app does: the act's PDF is laid out after the answer
    try:
        with statements_sent(engine) as sent:
            engine.tasks.complete(task["id"], "secretary", CHECK)
    finally:
        event.remove(engine.db.engine, "commit", committed)
        written = casefile.deferred_documents(deferral)
    assert len(commits) == 1
    with engine.db.session() as session:
        act = session.get(Document, written[0])
        assert (len(written), act.kind, act.size, act.pending_html is not None) == (1, "conclusion", 0, True)
    assert casefile.render_pending(engine, written) == 1
    with engine.db.session() as session:
        act = session.get(Document, written[0])
        assert act.content.startswith(b"%PDF") and act.size == len(act.content) and act.pending_html is None
    reads = [s for s in sent if s.lstrip().upper().startswith("SELECT")]
    assert reads[0] == sent[0] and "FROM human_task" in reads[0]  # the completion's one read
    # (the stored state is read when this process does not keep the live workflow, and by the test suite's check
    # of a kept one)
    again = [s for s in reads[1:] if "FROM human_task" in s or "FROM municipality" in s
             or ("FROM process_instance" in s and not s.startswith("SELECT process_instance.state \nFROM"))]
    assert again == []
    assert open_task(engine, instance, "sop_recognition")["due"]
