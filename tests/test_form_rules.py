"""The rules of fact of `sop.form_rules`, driven through real tasks: a completion that breaks one is refused with a
Russian message at the field and nothing of it is saved (the task stays open); the same step with possible data
goes through."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine import InvalidInput
from sop.models import Case, Document, Resolution

from . import test_sop_service
from .test_sop_diagrams import (
    APPROVE,
    CHECK,
    CLOSURE,
    DISPATCH,
    RECOGNITION,
    REPORT,
    REVIEW_CLOSE,
    SUMMARY,
    at,
    complete,
    specialist_for,
    tasks,
)
from .test_sop_service import SIGNAL, open_task, report_all, to_approval

world = test_sop_service.world  # the fixture: a municipality, its agencies and users, the SOP diagrams deployed

TODAY = "(30.10.2025)"  # the engine clock of the fixtures: 30.10.2025 09:00 Moscow time
REMOVAL = {"visit_date": "2025-10-30", "inspection_findings": "Дети без присмотра", "threat_confirmed": True,
           "removed": True, "removed_from_all_parents": False, "removal_date": "2025-10-30", "placement": "relatives"}
REMOVAL_ACT = {"removal_act_number": "7", "removal_act_date": "2025-10-30", "removal_act_signed": True,
               "placement_details": "Бабушке, Ивановой Г. П."}


def refused(engine, task: dict, user: str, data: dict) -> dict[str, str]:
    """Complete `task` with `data`, expecting a refusal; the task must stay open. The field messages."""
    with pytest.raises(InvalidInput) as err:
        engine.tasks.complete(task["id"], user, data)
    assert task["id"] in {t["id"] for t in engine.tasks.query(instance_id=task["instance_id"])}
    return err.value.errors


def case_row(engine, case_id: int) -> Case:
    with engine.db.session() as session:
        case = session.get(Case, case_id)
        session.expunge(case)
        return case


def emergency(engine, service) -> tuple[int, int]:
    """A signal of a threat to life: the case and its emergency process (visit, police, social protection)."""
    engine.identity.add_user("social", ["social_protection"], agency="КЦСОН г. Йошкар-Олы")
    result = service.register_intake("police", dict(SIGNAL, threat_to_life=True))
    return result.case_id, result.instance_ids[1]


# -- sop_check ------------------------------------------------------------------------------------------------

def test_the_conclusion_is_dated_neither_after_today_nor_before_the_signal(world):
    engine, service = world
    result = service.register_intake("school", SIGNAL)
    check = open_task(engine, result.instance_ids[0], "sop_check")
    errors = refused(engine, check, "secretary", dict(CHECK, conclusion_date="2025-10-31"))
    assert errors == {"conclusion_date": f"дата не может быть позже сегодняшнего дня {TODAY}"}
    errors = refused(engine, check, "secretary", dict(CHECK, conclusion_date="2025-10-28"))
    assert errors == {"conclusion_date": "дата не может быть раньше поступления сигнала (29.10.2025)"}
    case = case_row(engine, result.case_id)
    assert case.status == "check" and case.conclusion is None  # nothing of the refused attempts was saved
    engine.tasks.complete(check["id"], "secretary", dict(CHECK, conclusion_date="2025-10-30"))
    assert case_row(engine, result.case_id).conclusion["conclusion_date"] == "2025-10-30"


def test_today_is_the_municipality_s_day_not_the_server_s(world):
    engine, service = world
    result = service.register_intake("school", SIGNAL)
    at(engine, "2025-10-31 01:00")  # 31.10 in Moscow, still 30.10 by UTC
    check = open_task(engine, result.instance_ids[0], "sop_check")
    assert refused(engine, check, "secretary", dict(CHECK, conclusion_date="2025-11-01")) == {
        "conclusion_date": "дата не может быть позже сегодняшнего дня (31.10.2025)"}
    engine.tasks.complete(check["id"], "secretary", dict(CHECK, conclusion_date="2025-10-31"))


def test_a_confirmed_sop_needs_a_criterion(world):
    engine, service = world
    first = service.register_intake("school", SIGNAL)
    check = open_task(engine, first.instance_ids[0], "sop_check")
    errors = refused(engine, check, "secretary", dict(CHECK, family_criteria=[]))
    assert list(errors) == ["family_criteria"] and "критерий" in errors["family_criteria"]
    assert case_row(engine, first.case_id).status == "check"
    engine.tasks.complete(check["id"], "secretary", dict(CHECK, family_criteria=["c3"]))
    assert case_row(engine, first.case_id).criteria == ["c3"]
    # not confirmed: no criterion is needed
    other = service.register_intake("school", dict(SIGNAL, address="ул. Мира, 3"), new_family=True)
    check = open_task(engine, other.instance_ids[0], "sop_check")
    engine.tasks.complete(check["id"], "secretary", dict(CHECK, family_criteria=[], sop_confirmed=False,
                                                        danger_level="low"))
    assert case_row(engine, other.case_id).status == "rejected"


# -- the commission's decisions and their dispatch --------------------------------------------------------------

def test_the_recognition_meeting_is_not_in_the_future(world):
    engine, service = world
    result = service.register_intake("school", SIGNAL)
    iid = result.instance_ids[0]
    complete(engine, iid, "sop_check", CHECK)
    at(engine, "2025-12-22 10:00")
    recognition = open_task(engine, iid, "sop_recognition")
    assert refused(engine, recognition, "chair", RECOGNITION) == {
        "meeting_date": "дата не может быть позже сегодняшнего дня (22.12.2025)"}
    assert case_row(engine, result.case_id).status == "check"
    at(engine, "2025-12-23 10:00")
    engine.tasks.complete(recognition["id"], "chair", RECOGNITION)
    assert case_row(engine, result.case_id).status == "recognized"


def test_the_approval_and_the_dispatch_of_the_programme(world):
    engine, service = world
    result, iid = to_approval(engine, service)
    at(engine, "2026-01-14 10:00")
    approval = open_task(engine, iid, "sop_programme_approval")
    assert refused(engine, approval, "chair", APPROVE) == {  # approved on 15.01
        "approval_date": "дата не может быть позже сегодняшнего дня (14.01.2026)"}
    with engine.db.session() as session:
        assert session.scalars(select(Resolution).where(Resolution.kind == "approval")).all() == []
    at(engine, "2026-01-16 10:00")
    engine.tasks.complete(approval["id"], "chair", APPROVE)
    dispatch = open_task(engine, iid, "sop_programme_dispatch")
    assert refused(engine, dispatch, "secretary", dict(DISPATCH, programme_sent_date="2026-01-14")) == {
        "programme_sent_date": "дата не может быть раньше утверждения программы (15.01.2026)"}
    assert refused(engine, dispatch, "secretary", dict(DISPATCH, programme_sent_date="2026-01-17")) == {
        "programme_sent_date": "дата не может быть позже сегодняшнего дня (16.01.2026)"}
    assert "sop_execution_report" not in tasks(engine, iid)
    engine.tasks.complete(dispatch["id"], "secretary", DISPATCH)  # sent on 15.01
    assert "sop_execution_report" in tasks(engine, iid)


def test_execution_reports_and_the_activities_they_mark_are_not_dated_ahead(world):
    engine, service = world
    result, iid = to_approval(engine, service)
    at(engine, "2026-01-16 10:00")
    complete(engine, iid, "sop_programme_approval", APPROVE)
    complete(engine, iid, "sop_programme_dispatch", DISPATCH)
    at(engine, "2026-02-05 10:00")
    report = next(r for r in tasks(engine, iid)["sop_execution_report"]
                  if r["agency_name"] == "ОМВД России по г. Йошкар-Оле")
    assert refused(engine, report, "police", dict(REPORT, report_date="2026-02-10")) == {
        "report_date": "дата не может быть позже сегодняшнего дня (05.02.2026)"}
    row = {"number": 1, "title": "Беседа", "status": "done", "status_date": "2026-02-06"}
    errors = refused(engine, report, "police", dict(REPORT, report_date="2026-02-05", activity_reports=[row]))
    assert errors == {"activity_reports": "строка 1: дата не может быть позже сегодняшнего дня (05.02.2026)"}
    engine.tasks.complete(report["id"], "police", dict(REPORT, report_date="2026-02-05",
                                                       activity_reports=[dict(row, status_date="2026-02-01")]))


def test_the_closure_and_its_dispatch(world):
    engine, service = world
    result, iid = to_approval(engine, service)
    at(engine, "2026-01-16 10:00")
    complete(engine, iid, "sop_programme_approval", APPROVE)
    complete(engine, iid, "sop_programme_dispatch", DISPATCH)
    at(engine, "2026-02-10 10:00")
    report_all(engine, iid)
    complete(engine, iid, "sop_curator_summary", SUMMARY)
    at(engine, "2026-06-24 09:00")
    engine.management.sweep()
    complete(engine, iid, "sop_review", REVIEW_CLOSE)
    at(engine, "2026-06-26 10:00")
    closure = open_task(engine, iid, "sop_closure_decision")
    assert refused(engine, closure, "chair", dict(CLOSURE, closure_date="2026-06-27")) == {
        "closure_date": "дата не может быть позже сегодняшнего дня (26.06.2026)"}
    assert case_row(engine, result.case_id).status == "recognized"
    engine.tasks.complete(closure["id"], "chair", dict(CLOSURE, closure_date="2026-06-26"))
    assert case_row(engine, result.case_id).status == "closed"
    dispatch = open_task(engine, iid, "sop_closure_dispatch")
    data = {"copies_recipients": "ОМВД, СОШ № 5", "minor_notified": True, "parents_notified": True}
    assert refused(engine, dispatch, "secretary", dict(data, copies_sent_date="2026-06-25")) == {
        "copies_sent_date": "дата не может быть раньше постановления о снятии с учета (26.06.2026)"}
    engine.tasks.complete(dispatch["id"], "secretary", dict(data, copies_sent_date="2026-06-26"))


# -- the emergency (004 §7) -------------------------------------------------------------------------------------

def test_a_removed_child_was_removed_from_a_confirmed_threat_on_a_day_to_somewhere(world):
    engine, service = world
    case_id, eid = emergency(engine, service)
    inspection = open_task(engine, eid, "em_inspection")
    errors = refused(engine, inspection, "guardian", dict(REMOVAL, threat_confirmed=False, removal_date=None,
                                                          placement="not_removed"))
    assert set(errors) == {"threat_confirmed", "removal_date", "placement"}
    assert errors["placement"] == "ребенок отобран: укажите, куда он передан"
    assert "placement" in refused(engine, inspection, "guardian", dict(REMOVAL, placement=None))
    assert refused(engine, inspection, "guardian", dict(REMOVAL, visit_date="2025-10-31")) == {
        "visit_date": f"дата не может быть позже сегодняшнего дня {TODAY}"}
    assert refused(engine, inspection, "guardian", dict(REMOVAL, visit_date="2025-10-28")) == {
        "visit_date": "дата не может быть раньше поступления сигнала (29.10.2025)"}
    assert case_row(engine, case_id).danger_level != "critical"  # nothing saved
    assert "em_removal_act" not in tasks(engine, eid)
    engine.tasks.complete(inspection["id"], "guardian", REMOVAL)
    assert "em_removal_act" in tasks(engine, eid)


def test_a_visit_without_removal_needs_no_removal_facts(world):
    engine, service = world
    _, eid = emergency(engine, service)
    engine.tasks.complete(open_task(engine, eid, "em_inspection")["id"], "guardian",
                          {"visit_date": "2025-10-30", "inspection_findings": "Угрозы нет", "placement": "not_removed"})


def test_the_removal_act_is_signed_by_the_head_and_not_dated_ahead(world):
    engine, service = world
    case_id, eid = emergency(engine, service)
    engine.tasks.complete(open_task(engine, eid, "em_inspection")["id"], "guardian", REMOVAL)
    act = open_task(engine, eid, "em_removal_act")
    errors = refused(engine, act, "guardian", dict(REMOVAL_ACT, removal_act_signed=False))
    assert list(errors) == ["removal_act_signed"] and "главой" in errors["removal_act_signed"]
    assert refused(engine, act, "guardian", dict(REMOVAL_ACT, removal_act_date="2025-10-31")) == {
        "removal_act_date": f"дата не может быть позже сегодняшнего дня {TODAY}"}
    with engine.db.session() as session:
        assert session.scalars(select(Document).where(Document.case_id == case_id,
                                                      Document.kind == "removal_act")).all() == []
    engine.tasks.complete(act["id"], "guardian", REMOVAL_ACT)
    with engine.db.session() as session:
        assert session.scalars(select(Document).where(Document.case_id == case_id,
                                                      Document.kind == "removal_act")).all() != []


def test_the_police_report_says_guardianship_was_informed(world):
    engine, service = world
    _, eid = emergency(engine, service)
    report = open_task(engine, eid, "em_police_report")
    data = {"police_measures": "Опека проинформирована", "police_report_date": "2025-10-30"}
    errors = refused(engine, report, "police", data)
    assert list(errors) == ["guardianship_informed"] and "опеки" in errors["guardianship_informed"]
    errors = refused(engine, report, "police", dict(data, guardianship_informed=True,
                                                    child_outcome="delivered_institution"))
    assert list(errors) == ["police_social_informed"]
    assert refused(engine, report, "police", dict(data, guardianship_informed=True,
                                                  police_report_date="2025-10-31")) == {
        "police_report_date": f"дата не может быть позже сегодняшнего дня {TODAY}"}
    engine.tasks.complete(report["id"], "police", dict(data, guardianship_informed=True))
    assert "em_police_report" not in tasks(engine, eid)


def test_social_protection_reports_after_its_inspection(world):
    engine, service = world
    _, eid = emergency(engine, service)
    at(engine, "2025-10-31 12:00")
    inspection = open_task(engine, eid, "em_social_inspection")
    data = {"social_findings": "Семья обследована", "social_inspection_date": "2025-10-31"}
    assert refused(engine, inspection, "social", dict(data, social_report_date="2025-10-30")) == {
        "social_report_date": "дата не может быть раньше обследования (31.10.2025)"}
    assert refused(engine, inspection, "social", dict(data, social_report_date="2025-11-01")) == {
        "social_report_date": "дата не может быть позже сегодняшнего дня (31.10.2025)"}
    engine.tasks.complete(inspection["id"], "social", dict(data, social_report_date="2025-10-31"))


def test_the_later_emergency_steps_are_not_dated_ahead(world):
    engine, service = world
    _, eid = emergency(engine, service)
    engine.tasks.complete(open_task(engine, eid, "em_inspection")["id"], "guardian",
                          dict(REMOVAL, removed_from_all_parents=True, placement="institution"))
    engine.tasks.complete(open_task(engine, eid, "em_removal_act")["id"], "guardian", REMOVAL_ACT)
    steps = {"em_prosecutor_notice": ("prosecutor_notice_date", {"prosecutor_office": "Прокуратура"}),
             "em_orphan_journal": ("orphan_journal_date", {"orphan_journal_number": "31"}),
             "em_court_claim": ("claim_date", {"claim_kind": "deprive", "court_name": "Городской суд"})}
    for element, (field, data) in steps.items():
        step = open_task(engine, eid, element)
        assert refused(engine, step, "guardian", {**data, field: "2025-10-31"}) == {
            field: f"дата не может быть позже сегодняшнего дня {TODAY}"}, element
        engine.tasks.complete(step["id"], "guardian", {**data, field: "2025-10-30"})
    inform = open_task(engine, eid, "em_inform_commission")
    data = {"measures_taken": "Ребенок устроен в СРЦН"}
    assert refused(engine, inform, "guardian", dict(data, inform_date="2025-11-02")) == {
        "inform_date": f"дата не может быть позже сегодняшнего дня {TODAY}"}
    engine.tasks.complete(inform["id"], "guardian", dict(data, inform_date="2025-10-30"))


# -- the quarterly reconciliation -------------------------------------------------------------------------------

def test_a_reconciliation_is_either_confirmed_or_names_its_differences(world):
    engine, service = world
    at(engine, "2026-01-01 00:10")
    engine.management.sweep()
    iid = engine.runtime.instances(process_key="quarterly_reconciliation")[0]["id"]
    first, second = tasks(engine, iid)["rec_agency"][:2]
    errors = refused(engine, first, specialist_for(engine, first), {"differences": "  ", "confirmed": False})
    assert list(errors) == ["confirmed"] and "расхождения" in errors["confirmed"]
    engine.tasks.complete(first["id"], specialist_for(engine, first),
                          {"missing_in_agency": "Сидоров И.", "confirmed": False})
    engine.tasks.complete(second["id"], specialist_for(engine, second), {"confirmed": True})
