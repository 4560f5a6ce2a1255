"""«Моделер»: methodologists list the deployed processes, open a version in the bpmn-js modeler, validate and deploy
it (CSRF-protected JSON, audited); a broken diagram is refused with problems tied to its elements."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from engine.models import ProcessDefinition
from webapp.views import modeler

from .modeler_support import audit, modeler_app, post_json, signed_in
from .test_web_auth import login

WORKFLOWS = Path(__file__).resolve().parent.parent / "workflows"
SOP_CASE = (WORKFLOWS / "sop_case.bpmn").read_text(encoding="utf-8")
BROKEN = modeler.NEW_DIAGRAM.replace(
    '<bpmn:startEvent id="start" name="Начало" />',
    '<bpmn:startEvent id="start" name="Начало"><bpmn:outgoing>to_check</bpmn:outgoing></bpmn:startEvent>'
    '<bpmn:sequenceFlow id="to_check" sourceRef="start" targetRef="check" />'
    '<bpmn:userTask id="check" name="Проверка" camunda:candidateGroups="commission_secretary"'
    ' camunda:dueDate="${working_days(}"><bpmn:incoming>to_check</bpmn:incoming></bpmn:userTask>')


@pytest.fixture
def app(engine):
    from .test_sop_diagrams import FORMS

    app = modeler_app(engine)
    engine.repository.deploy([*sorted(WORKFLOWS.glob("*.bpmn")), *sorted(FORMS.glob("*.json"))],
                             deployed_by="installer", comment="Первая установка")
    return app


@pytest.fixture
def method(app):
    return signed_in(app)




def versions(app, key) -> list[ProcessDefinition]:
    with app.extensions["kurator"].db.session() as db:
        return list(db.scalars(select(ProcessDefinition).where(ProcessDefinition.key == key)
                               .order_by(ProcessDefinition.version)))



@pytest.mark.parametrize("username", ["secretary", "admin"])
def test_other_roles_get_403(app, username):
    client = app.test_client()
    login(client, username)
    for path in ("/modeler", "/modeler/edit", "/modeler/edit?key=sop_case&version=1"):
        assert client.get(path).status_code == 403
    assert post_json(client, "/modeler/validate", {"xml": SOP_CASE}).status_code == 403
    assert post_json(client, "/modeler/deploy", {"xml": SOP_CASE}).status_code == 403


def test_anonymous_is_sent_to_login(app):
    response = app.test_client().get("/modeler")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_list_shows_deployed_versions(method):
    page = method.get("/modeler").get_data(as_text=True)
    for key in ("sop_case", "sop_programme", "emergency_child_safety", "quarterly_reconciliation"):
        assert key in page and f"/modeler/edit?key={key}&amp;version=1" in page
    assert "installer" in page and "Первая установка" in page and "Новая диаграмма" in page


def test_edit_page_loads_the_version_xml_into_the_modeler(method):
    page = method.get("/modeler/edit?key=sop_case&version=1").get_data(as_text=True)
    assert "vendor/modeler/modeler.bundle.js" in page and "modeler.js" in page
    assert "vendor/modeler/properties-panel.css" in page
    data = json.loads(re.search(r'<script type="application/json" nonce="[^"]+" id="modeler-data">(.*?)</script>',
                                page, re.S).group(1))
    assert data["xml"] == SOP_CASE and data["key"] == "sop_case" and data["version"] == 1
    assert method.get("/modeler/edit?key=sop_case&version=99").status_code == 404
    assert method.get("/modeler/edit?key=nope").status_code == 404


def test_new_diagram_is_a_valid_camunda_diagram_with_a_lane(app, method):
    page = method.get("/modeler/edit").get_data(as_text=True)
    data = json.loads(re.search(r'id="modeler-data">(.*?)</script>', page, re.S).group(1))
    assert data["key"] is None and "<bpmn:lane " in data["xml"] and "<bpmn:startEvent" in data["xml"]
    assert 'xmlns:camunda="http://camunda.org/schema/1.0/bpmn"' in data["xml"]
    assert app.extensions["kurator"].repository.validate([("new.bpmn", data["xml"])]) == []


def test_validate_reports_problems_with_element_ids(app, method):
    response = post_json(method, "/modeler/validate", {"xml": BROKEN})
    assert response.status_code == 200
    problems = response.get_json()
    assert [p["element_id"] for p in problems if p["severity"] == "error" and p["rule"] is None] == ["check"]
    assert "dueDate" in problems[0]["message"] and "camunda:dueDate" in problems[0]["message_ru"]
    assert {p["rule"] for p in problems if p["rule"]} == {"end-event-required", "no-bpmndi", "no-implicit-end"}
    assert [p for p in post_json(method, "/modeler/validate", {"xml": SOP_CASE}).get_json()
            if p["severity"] == "error"] == []
    events = audit(app, "diagram_validated")
    assert len(events) == 2 and {e["object_id"] for e in events} == {"new_process", "sop_case"}
    assert all(e["actor"] == "method" and e["object_type"] == "process" for e in events)
    assert events[1]["details"]["errors"] == sum(p["severity"] == "error" for p in problems)  # newest first


def test_validate_needs_xml(method):
    assert post_json(method, "/modeler/validate", {"comment": "x"}).status_code == 400


def test_deploy_of_a_changed_diagram_creates_the_next_version(app, method):
    changed = SOP_CASE.replace('name="Случай СОП: от проверки сигнала до снятия с учета"',
                               'name="Случай СОП (изменено в моделере)"')
    assert changed != SOP_CASE
    response = post_json(method, "/modeler/deploy", {"xml": changed, "comment": "Новое название"})
    assert response.status_code == 200
    items = response.get_json()["items"]
    assert items == [{"kind": "process", "key": "sop_case", "version": 2, "created": True, "file": "sop_case.bpmn"}]
    latest = versions(app, "sop_case")[-1]
    assert (latest.version, latest.deployed_by, latest.comment) == (2, "method", "Новое название")
    events = audit(app, "diagram_deployed")
    assert len(events) == 1 and events[0]["object_id"] == "sop_case" and events[0]["actor"] == "method"
    assert events[0]["details"]["comment"] == "Новое название"
    assert events[0]["details"]["versions"] == [{"key": "sop_case", "version": 2, "created": True}]
    assert "sop_case" in method.get("/modeler").get_data(as_text=True)
    # the same XML again stores nothing new
    again = post_json(method, "/modeler/deploy", {"xml": changed, "comment": "еще раз"}).get_json()
    assert again["items"][0]["created"] is False and len(versions(app, "sop_case")) == 2


def test_deploy_of_a_broken_diagram_is_refused(app, method):
    response = post_json(method, "/modeler/deploy", {"xml": BROKEN, "comment": "сломано"})
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"] == "validation_failed" and body["problems"][0]["element_id"] == "check"
    assert versions(app, "new_process") == []
    assert audit(app, "diagram_deployed") == [] and len(audit(app, "diagram_deploy_refused")) == 1
    not_bpmn = post_json(method, "/modeler/deploy", {"xml": "<nonsense/>"})
    assert not_bpmn.status_code == 422 and not_bpmn.get_json()["problems"]


def test_posts_need_the_csrf_token(app, method):
    for path in ("/modeler/validate", "/modeler/deploy"):
        assert post_json(method, path, {"xml": SOP_CASE}, with_token=False).status_code == 400
    assert len(versions(app, "sop_case")) == 1 and audit(app, "diagram_validated") == []
