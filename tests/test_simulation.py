"""Simulation of a draft diagram (modeler.simulation): the SOP case run through a scenario in a throw-away engine.

The expected due dates are computed by hand from workflows/README.md and the production calendar of the New Year
holidays 2026/2027: 31.12.2026 is a day off (transferred by the 2026 decree), 01–08.01.2027 are holidays, 09–10.01
a weekend, so the working days after 28.12.2026 are 29.12, 30.12, 11.01, 12.01, 13.01, 14.01, 15.01…
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine.errors import InvalidInput
from engine.models import AuditEvent, FormDefinition, HistoryEvent, HumanTask, ProcessDefinition, ProcessInstance
from modeler.simulation import check_scenario, gateways, simulate

ROOT = Path(__file__).resolve().parents[1]
SOP_CASE = (ROOT / "workflows" / "sop_case.bpmn").read_text(encoding="utf-8")
HOLIDAYS = {"start": "2026-12-28T09:00", "variables": {"received": "2026-12-28"}}
CONFIRMED = {"danger_level": "medium", "sop_confirmed": True}
RECOGNIZED = {"decision": "recognize", "meeting_date": "2026-12-30", "resolution_number": "12/3",
              "curator": "ivanova", "working_group": ["police"]}


@pytest.fixture
def sop(engine):
    """The real engine with the SOP diagrams and forms deployed, as after installation."""
    engine.repository.deploy([*sorted((ROOT / "workflows").glob("*.bpmn")), *sorted((ROOT / "forms").glob("*.json"))],
                             deployed_by="installer")
    return engine


def run(engine, steps, xml=SOP_CASE, **scenario):
    return simulate(engine, xml, {**HOLIDAYS, **scenario, "steps": steps}, actor="method")


def task(step, element):
    found = [t for t in step["open"] if t["element_id"] == element]
    assert found, f"{element} is not open at step {step['index']}: {[t['element_id'] for t in step['open']]}"
    return found[0]


def test_sop_case_due_dates_across_the_new_year_holidays(sop):
    result = run(sop, [{"complete": "sop_check", "data": CONFIRMED},
                       {"complete": "sop_recognition", "data": RECOGNIZED},
                       {"complete": "sop_registration_card"},
                       {"advance": {"day": 15}}])
    assert result["ok"], result
    assert result["problems"] == []
    start, checked, recognized, card, day15 = result["steps"]

    assert start["action"] == "Старт 28.12.2026 09:00"
    assert start["at"] == "2026-12-28T09:00:00+03:00"
    check = task(start, "sop_check")
    # 5 WD from receipt 28.12.2026: 29.12, 30.12, (31.12–10.01 off), 11.01, 12.01, 13.01
    assert check["due"] == "2027-01-13T23:59:59+03:00"
    assert check["due_text"] == "ср 13.01.2027 23:59"
    assert check["roles"] == ["commission_secretary"]
    assert check["role_titles"] == ["Ответственный секретарь КДНиЗП"]
    assert [t["element_id"] for t in start["opened"]] == ["sop_check"]

    assert checked["action"] == "Выполнена задача «Проверка информации и заключение»"
    assert [t["element_id"] for t in checked["closed"]] == ["sop_check"]
    # required fields not given were filled, and said so
    assert {"minor_name", "parents_names", "living_conditions", "conclusion"} <= set(checked["filled"])
    # 15 CD from 28.12.2026 = 12.01.2027, a working day
    assert task(checked, "sop_recognition")["due"] == "2027-01-12T23:59:59+03:00"
    assert task(checked, "sop_recognition")["roles"] == ["commission"]

    # 5 WD from the meeting on 30.12.2026: 11, 12, 13, 14, 15.01
    registration = task(recognized, "sop_registration_card")
    assert registration["due"] == "2027-01-15T23:59:59+03:00"
    assert registration["assignee"] == "ivanova"

    # the called programme: 7 CD from 30.12.2026 = 06.01.2027, a holiday, moved to 11.01.2027
    proposals = task(card, "sop_proposals")
    assert proposals["due"] == "2027-01-11T23:59:59+03:00"
    assert proposals["path"] == ["case_programme", "pr_proposals_round"]
    assert proposals["roles"] == ["agency_specialist"]
    assert proposals["overdue"] is False
    assert {"sop_check", "sop_recognition", "sop_registration_card", "case_ipr_start"} <= set(
        card["completed_elements"])

    assert day15["action"] == "Часы переведены на день 15 (12.01.2027 09:00)"
    assert day15["at"] == "2027-01-12T09:00:00+03:00"
    assert day15["day"] == 15
    assert task(day15, "sop_proposals")["overdue"] is True
    assert not day15["ended"]


def test_day_15_fires_the_timer_that_is_due(sop):
    result = run(sop, [{"complete": "sop_check", "data": {"danger_level": "critical"}}, {"advance": {"day": 15}}],
                 start="2026-12-30T09:00", variables={"received": "2026-12-30"})
    assert result["ok"], result
    _, critical, day15 = result["steps"]
    inspection = task(critical, "em_inspection")
    assert inspection["due"] == "2026-12-30T13:00:00+03:00"  # now + 4 h
    assert inspection["path"] == ["case_emergency_from_check"]
    assert [(t["element_id"], t["at"]) for t in critical["timers_waiting"]] == [
        ("em_inspection_overdue", "2026-12-30T13:00:00+03:00")]
    # 3 WD from the day of the threat, 30.12.2026: 11, 12, 13.01
    assert task(critical, "em_police_report")["due"] == "2027-01-13T23:59:59+03:00"
    assert critical["timers_fired"] == []

    assert [t["element_id"] for t in day15["timers_fired"]] == ["em_inspection_overdue"]
    assert day15["timers_fired"][0]["at"] == "2026-12-30T13:00:00+03:00"
    assert day15["timers_waiting"] == []
    escalation = task(day15, "em_escalation")
    assert escalation["roles"] == ["commission_secretary"]
    # the timer fired at its own time (13:00), not at day 15: the escalation is due 4 h after it
    assert escalation["due"].startswith("2026-12-30T17:00")
    assert [t["element_id"] for t in day15["opened"]] == ["em_escalation"]
    assert task(day15, "em_inspection")["overdue"] is True  # the boundary timer does not cancel it
    assert task(day15, "em_police_report")["overdue"] is True


def test_a_gateway_choice_forces_a_branch_whatever_the_data(sop):
    # the form's default says "not confirmed": without a choice the case ends
    plain = run(sop, [{"complete": "sop_check"}])
    assert plain["steps"][1]["ended"] is True
    assert "case_not_confirmed" in plain["steps"][1]["completed_elements"]

    forced = run(sop, [{"complete": "sop_check"}, {"complete": "sop_recognition", "data": RECOGNIZED}],
                 choices={"case_check_result": "case_f_confirmed", "case_recognized": "case_f_rejected"})
    assert forced["ok"], forced
    checked, recognized = forced["steps"][1:]
    assert [t["element_id"] for t in checked["open"]] == ["sop_recognition"]
    assert "case_not_confirmed" not in checked["completed_elements"]
    # the commission decided "recognize", but the chosen (default) flow "reject" is taken
    assert recognized["ended"] is True
    assert "case_not_recognized" in recognized["completed_elements"]
    assert "sop_registration_card" not in [t["element_id"] for t in recognized["open"]]


def test_gateways_are_listed_with_their_flows(sop):
    found = {g["id"]: g for g in gateways(SOP_CASE)}
    check = found["case_check_result"]
    assert check["kind"] == "inclusive"
    flows = {f["id"]: f for f in check["flows"]}
    assert flows["case_f_not_confirmed"]["default"] is True
    assert flows["case_f_confirmed"]["condition"] == "${sop_confirmed == true}"
    assert flows["case_f_confirmed"]["target_name"] == "Заседание КДНиЗП: признание в СОП и организация ИПР"
    assert "case_programme_merge" not in found  # a merge has one outgoing flow: nothing to choose
    assert run(sop, [])["gateways"] == gateways(SOP_CASE)


def test_the_real_database_is_untouched(sop):
    sop.identity.add_user("secretary", ["commission_secretary"])
    real_instance = sop.runtime.start("sop_case", {"received": "2025-10-30"}, business_key="case-1")
    sop.audit.record("secretary", "case_viewed", "case", "1")
    tables = (ProcessInstance, HumanTask, HistoryEvent, AuditEvent, ProcessDefinition, FormDefinition)

    def counts():
        with sop.db.session() as session:
            return {t.__tablename__: session.scalar(select(func.count()).select_from(t)) for t in tables}

    before = counts()
    clock_before = sop.clock.now()
    result = run(sop, [{"complete": "sop_check", "data": CONFIRMED}, {"advance": "P15D"},
                       {"complete": "sop_recognition", "data": RECOGNIZED}])
    assert result["ok"], result
    assert counts() == before
    assert sop.clock.now() == clock_before
    assert [t["element_id"] for t in sop.tasks.query(instance_id=real_instance)] == ["sop_check"]


def test_calendar_overrides_and_the_municipality_time_zone_are_those_of_the_real_engine(sop):
    sop.calendar.set_override(date(2026, 12, 29), False, "региональный выходной")
    sop.identity.add_agency("КДНиЗП г. Екатеринбурга", "Екатеринбург", kind="commission",
                            timezone="Asia/Yekaterinburg")
    result = simulate(sop, SOP_CASE, {"start": "2026-12-28T09:00", "municipality": "Екатеринбург",
                                      "variables": {"received": "2026-12-28"}})
    assert result["ok"], result
    assert result["timezone"] == "Asia/Yekaterinburg"
    start = result["steps"][0]
    assert start["at"] == "2026-12-28T09:00:00+05:00"
    # 29.12 is now a day off: 30.12, 11.01, 12.01, 13.01, 14.01
    assert task(start, "sop_check")["due"] == "2027-01-14T23:59:59+05:00"


def test_a_broken_draft_returns_its_problems(sop):
    broken = SOP_CASE.replace("${working_days(5, received)}", "${working_days(}")
    result = run(sop, [{"complete": "sop_check"}], xml=broken)
    assert result["ok"] is False
    assert result["steps"] == []
    errors = [p for p in result["problems"] if p["severity"] == "error"]
    assert errors and errors[0]["element_id"] == "sop_check"

    garbage = run(sop, [], xml="<definitions")
    assert garbage["ok"] is False and garbage["steps"] == []
    assert any(p["severity"] == "error" for p in garbage["problems"])

    missing = run(sop, [], xml=SOP_CASE.replace('calledElement="sop_programme"', 'calledElement="no_such_process"'))
    assert missing["ok"] is False and missing["steps"] == []


def test_an_unknown_task_id_stops_the_run_with_an_error_step(sop):
    result = run(sop, [{"complete": "no_such_task"}, {"complete": "sop_check"}])
    assert result["ok"] is False
    assert len(result["steps"]) == 2  # the start and the failing step; the rest is not run
    failed = result["steps"][1]
    assert failed["error"]["element_id"] == "no_such_task"
    assert "sop_check" in failed["error"]["message"]  # names what is open
    assert [t["element_id"] for t in failed["open"]] == ["sop_check"]  # the state before the step


def test_a_failing_expression_is_tied_to_its_element(sop):
    result = simulate(sop, SOP_CASE, {"start": "2026-12-28T09:00", "variables": {}})
    assert result["ok"] is False
    error = result["steps"][0]["error"]
    assert error["element_id"] == "sop_check"
    assert "received" in error["message"]


def test_form_data_that_the_form_refuses_is_an_error_of_the_task(sop):
    result = run(sop, [{"complete": "sop_check", "data": {"danger_level": "extreme"}}])
    error = result["steps"][1]["error"]
    assert error["element_id"] == "sop_check"
    assert "danger_level" in error["message"]


def test_the_clock_does_not_go_back_and_a_closed_case_takes_no_tasks(sop):
    result = run(sop, [{"advance": {"day": 3}}, {"advance": {"to": "2026-12-29T09:00"}}])
    assert result["steps"][2]["error"]["message"].startswith("Часы нельзя перевести назад")

    ended = run(sop, [{"complete": "sop_check"}, {"advance": "P1D"}, {"complete": "sop_recognition"}])
    assert ended["steps"][2]["error"] is None  # time may still pass
    assert ended["steps"][3]["error"]["element_id"] == "sop_recognition"


@pytest.mark.parametrize(("scenario", "field"), [
    ({"steps": [{"advance": "15 дней"}]}, "scenario.steps[0].advance"),
    ({"steps": [{"advance": {"day": -1}}]}, "scenario.steps[0].advance.day"),
    ({"steps": [{"complete": ""}]}, "scenario.steps[0].complete"),
    ({"steps": [{"complete": "a", "advance": "P1D"}]}, "scenario.steps[0]"),
    ({"steps": "sop_check"}, "scenario.steps"),
    ({"variables": ["received"]}, "scenario.variables"),
    ({"start": "28.12.2026"}, "scenario.start"),
    ({"timezone": "Mars/Olympus"}, "scenario.timezone"),
    ({"choices": {"case_check_result": 5}}, "scenario.choices.case_check_result"),
    ({"colour": "red"}, "scenario.colour"),
])
def test_a_bad_scenario_names_its_field(sop, scenario, field):
    with pytest.raises(InvalidInput) as error:
        check_scenario(scenario, sop.clock.now())
    assert field in error.value.errors
    result = simulate(sop, SOP_CASE, scenario)
    assert result["ok"] is False and result["steps"] == []
    assert result["problems"][0]["field"] == field


def test_a_choice_of_an_unknown_gateway_or_flow_is_a_problem(sop):
    result = run(sop, [], choices={"case_check_result": "case_f_close"})
    assert result["ok"] is False
    assert result["problems"][0]["element_id"] == "case_check_result"
    result = run(sop, [], choices={"nowhere": "case_f_close"})
    assert result["problems"][0]["element_id"] == "nowhere"


def test_advance_forms_and_messages(sop):
    result = run(sop, [{"complete": "sop_check", "data": CONFIRMED},
                       {"complete": "sop_recognition", "data": RECOGNIZED},
                       {"advance": "PT2H"}, {"advance": {"days": 1, "hours": 1}},
                       {"message": "minor_turned_18"}])
    assert result["ok"], result
    steps = result["steps"]
    assert steps[3]["at"] == "2026-12-28T11:00:00+03:00"
    assert steps[4]["at"] == "2026-12-29T12:00:00+03:00"
    assert steps[5]["action"] == "Получено сообщение «minor_turned_18»"
    proposal = task(steps[5], "sop_closure_proposal")
    assert proposal["due"] == "2026-12-29T23:59:59+03:00"  # 0 WD: the same working day
    assert proposal["path"] == ["case_minor_adult"]
