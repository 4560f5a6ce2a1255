"""POST /modeler/simulate: methodologists simulate the diagram being edited (CSRF-protected JSON, audited); a bad
scenario is refused with the field named, and real cases are never touched."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine.models import HistoryEvent, HumanTask, ProcessInstance

from .modeler_support import audit, modeler_app, post_json, signed_in, token
from .test_web_auth import login

WORKFLOWS = Path(__file__).resolve().parent.parent / "workflows"
SOP_CASE = (WORKFLOWS / "sop_case.bpmn").read_text(encoding="utf-8")

SCENARIO = {"start": "2026-12-28T09:00", "variables": {"received": "2026-12-28"},
            "choices": {"case_check_result": "case_f_confirmed"},
            "steps": [{"complete": "sop_check"}, {"advance": {"day": 15}}]}


@pytest.fixture
def app(engine):
    app = modeler_app(engine)
    engine.repository.deploy([*sorted(WORKFLOWS.glob("*.bpmn")), *sorted((WORKFLOWS.parent / "forms").glob("*.json"))],
                             deployed_by="installer", comment="Первая установка")
    return app


@pytest.fixture
def method(app):
    return signed_in(app)


def simulate(client, body, with_token=True):
    return post_json(client, "/modeler/simulate", body, with_token=with_token)


@pytest.mark.parametrize("username", ["secretary", "admin"])
def test_other_roles_get_403(app, username):
    client = app.test_client()
    login(client, username)
    assert simulate(client, {"xml": SOP_CASE, "scenario": SCENARIO}).status_code == 403
    assert audit(app, "diagram_simulated") == []


def test_anonymous_is_sent_to_login(app):
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
    response = client.post("/modeler/simulate", data=json.dumps({"xml": SOP_CASE, "scenario": SCENARIO}),
                           content_type="application/json", headers={"X-CSRFToken": csrf})
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]
    assert audit(app, "diagram_simulated") == []


def test_without_the_csrf_token_nothing_runs(app, method):
    response = simulate(method, {"xml": SOP_CASE, "scenario": SCENARIO}, with_token=False)
    assert response.status_code == 400
    assert audit(app, "diagram_simulated") == []


def test_simulation_returns_steps_with_due_dates_and_is_audited(app, method):
    engine = app.extensions["kurator"]

    def counts():
        with engine.db.session() as db:
            return [db.scalar(select(func.count()).select_from(t)) for t in (ProcessInstance, HumanTask, HistoryEvent)]

    before = counts()
    response = simulate(method, {"xml": SOP_CASE, "scenario": SCENARIO})
    assert response.status_code == 200
    result = response.get_json()
    assert result["ok"] is True
    assert result["process_key"] == "sop_case"
    start, checked, day15 = result["steps"]
    assert start["open"][0]["due"] == "2027-01-13T23:59:59+03:00"
    recognition = checked["opened"][0]
    assert (recognition["element_id"], recognition["due"]) == ("sop_recognition", "2027-01-12T23:59:59+03:00")
    assert day15["open"][0]["overdue"] is False  # due at the end of 12.01, the clock is at 09:00
    assert checked["closed"][0]["by"] == "method"
    assert {g["id"] for g in result["gateways"]} >= {"case_check_result", "case_recognized"}
    assert counts() == before

    events = audit(app, "diagram_simulated")
    assert len(events) == 1
    assert events[0]["actor"] == "method"
    assert events[0]["object_type"] == "process" and events[0]["object_id"] == "sop_case"
    assert events[0]["details"]["steps"] == 2
    assert events[0]["details"]["ok"] is True


def test_a_broken_draft_answers_with_its_problems(app, method):
    broken = SOP_CASE.replace("${working_days(5, received)}", "${working_days(}")
    response = simulate(method, {"xml": broken, "scenario": SCENARIO})
    assert response.status_code == 200
    result = response.get_json()
    assert result["ok"] is False and result["steps"] == []
    assert result["problems"][0]["element_id"] == "sop_check"
    assert audit(app, "diagram_simulated")[0]["details"]["ok"] is False


def test_a_step_error_is_returned_as_a_step(app, method):
    scenario = {**SCENARIO, "steps": [{"complete": "sop_review"}]}
    result = simulate(method, {"xml": SOP_CASE, "scenario": scenario}).get_json()
    assert result["ok"] is False
    assert result["steps"][1]["error"]["element_id"] == "sop_review"


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"scenario": SCENARIO}, 400, "xml"),
    ({"xml": "   ", "scenario": SCENARIO}, 400, "xml"),
    ({"xml": SOP_CASE, "scenario": "day 15"}, 400, "scenario"),
    ({"xml": SOP_CASE, "scenario": {**SCENARIO, "variables": "received"}}, 422, "scenario.variables"),
    ({"xml": SOP_CASE, "scenario": {**SCENARIO, "start": "завтра"}}, 422, "scenario.start"),
    ({"xml": SOP_CASE, "scenario": {**SCENARIO, "steps": [{"advance": "P1M"}]}}, 422, "scenario.steps[0].advance"),
    ({"xml": SOP_CASE, "scenario": {**SCENARIO, "steps": [{"jump": 1}]}}, 422, "scenario.steps[0]"),
    ({"xml": SOP_CASE, "scenario": {**SCENARIO, "steps": [{"advance": "P1D"}] * 201}}, 422, "scenario.steps"),
])
def test_bad_input_names_the_field(app, method, body, status, field):
    response = simulate(method, body)
    assert response.status_code == status
    answer = response.get_json()
    assert answer["field"] == field
    assert field in answer["errors"]
    assert answer["message"]
    assert audit(app, "diagram_simulated") == []


def test_a_body_that_is_not_json_is_refused(app, method):
    response = method.post("/modeler/simulate", data="xml=1", content_type="application/x-www-form-urlencoded",
                           headers={"X-CSRFToken": token(method)})
    assert response.status_code == 400
    assert response.get_json()["field"] == "body"


def test_an_oversized_diagram_is_refused(app, method, monkeypatch):
    from webapp.views import simulation

    monkeypatch.setattr(simulation, "MAX_XML", 1000)
    response = simulate(method, {"xml": SOP_CASE, "scenario": SCENARIO})
    assert response.status_code == 413
    assert response.get_json()["field"] == "xml"


def test_the_edit_page_has_the_simulation_panel(app, method):
    page = method.get("/modeler/edit?key=sop_case").get_data(as_text=True)
    assert 'id="simulation"' in page
    assert 'data-simulate-url="/modeler/simulate"' in page
    assert "simulation.js" in page and "simulation.css" in page
