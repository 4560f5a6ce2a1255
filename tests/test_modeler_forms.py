"""Forms versioned with the diagrams that use them, the forms editor (live preview, deploy), and modeler drafts."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select, update

from engine import Conflict, InvalidInput, NotFound
from engine.models import FormDefinition, ProcessDefinition
from webapp import create_app

from .modeler_support import audit, post_json, signed_in, token
from .support import DIAGRAMS
from .test_web_auth import HASH, login

LIFECYCLE = (DIAGRAMS / "lifecycle.bpmn").read_text(encoding="utf-8")
FORM_V1_TEXT = (DIAGRAMS / "check_form.json").read_text(encoding="utf-8")
FORM_V1 = json.loads(FORM_V1_TEXT)
# version 2 makes the curator's name required
FORM_V2 = {**FORM_V1, "components": [
    *FORM_V1["components"][:2],
    {"type": "textfield", "key": "curator", "label": "Куратор", "validate": {"required": True}},
]}


def deploy(engine, form: dict, **kwargs):
    return engine.repository.deploy([("lifecycle.bpmn", LIFECYCLE),
                                     ("check_form.json", FORM_V1_TEXT if form is FORM_V1
                                      else json.dumps(form, ensure_ascii=False))], **kwargs)


def open_check_task(engine, instance_id: int) -> str:
    tasks = [t for t in engine.tasks.query(instance_id=instance_id) if t["element_id"] == "check"]
    assert len(tasks) == 1
    return tasks[0]["id"]


# -- pinning ----------------------------------------------------------------------------------------------------

def test_a_process_version_keeps_the_form_versions_it_was_deployed_with(deployed):
    engine = deployed
    old_instance = engine.runtime.start("lifecycle", {"received": "2025-10-30"}, business_key="old")
    result = deploy(engine, FORM_V2, deployed_by="method", comment="Куратор обязателен")
    created = {(i.kind, i.key, i.version) for i in result.items if i.created}
    # the diagram did not change, its form did: a new process version pins the new form version
    assert created == {("form", "check_form", 2), ("process", "lifecycle", 2)}
    with engine.db.session() as db:
        pins = dict(db.execute(select(ProcessDefinition.version, ProcessDefinition.form_versions)
                               .where(ProcessDefinition.key == "lifecycle")).all())
    assert pins == {1: {"check_form": 1}, 2: {"check_form": 2}}

    new_instance = engine.runtime.start("lifecycle", {"received": "2025-10-30"}, business_key="new")
    old_task, new_task = open_check_task(engine, old_instance), open_check_task(engine, new_instance)
    assert engine.tasks.form(old_task) == FORM_V1 and engine.tasks.form(new_task) == FORM_V2
    # completion is validated against the task's own form version
    with pytest.raises(InvalidInput) as refused:
        engine.tasks.complete(new_task, "secretary", {"danger_level": "low"})
    assert "curator" in str(refused.value.errors)
    engine.tasks.complete(old_task, "secretary", {"danger_level": "low"})


def test_redeploying_the_same_diagram_and_forms_stores_nothing(deployed):
    engine = deployed
    result = deploy(engine, FORM_V1)
    assert result.items and not any(i.created for i in result.items)


def test_a_version_deployed_before_pinning_runs_with_the_latest_forms_and_is_not_duplicated(deployed):
    engine = deployed
    with engine.db.session() as db:
        db.execute(update(ProcessDefinition).values(form_versions=None))
    instance = engine.runtime.start("lifecycle", {"received": "2025-10-30"})
    assert engine.tasks.form(open_check_task(engine, instance)) == FORM_V1
    result = deploy(engine, FORM_V1)
    assert not any(i.created for i in result.items)
    with engine.db.session() as db:
        assert db.scalar(select(ProcessDefinition.form_versions)) == {"check_form": 1}


def test_spec_form_keys_include_called_processes(engine):
    from .test_sop_diagrams import FORMS, WORKFLOWS

    engine.repository.deploy([*sorted(WORKFLOWS.glob("*.bpmn")), *sorted(FORMS.glob("*.json"))])
    with engine.db.session() as db:
        sop_case = db.scalar(select(ProcessDefinition).where(ProcessDefinition.key == "sop_case"))
    assert "sop_check" in sop_case.form_versions  # a task of sop_case itself
    assert "sop_programme_draft" in sop_case.form_versions  # a task of sop_programme, which sop_case calls


# -- drafts (engine) ------------------------------------------------------------------------------------------

def test_drafts_are_saved_updated_and_guarded_against_lost_updates(engine):
    draft = engine.drafts.save("diagram", "<xml/>", "method", key="sop_case", base_version=1, note="срок")
    assert (draft["revision"], draft["created_by"], draft["key"]) == (1, "method", "sop_case")
    updated = engine.drafts.save("diagram", "<xml>2</xml>", "method2", key="sop_case", draft_id=draft["id"],
                                 revision=1)
    assert updated["revision"] == 2 and updated["saved_by"] == "method2" and updated["created_by"] == "method"
    with pytest.raises(Conflict):  # saved on revision 1, but revision 2 is there now
        engine.drafts.save("diagram", "<xml>3</xml>", "method", draft_id=draft["id"], revision=1)
    assert engine.drafts.get(draft["id"])["content"] == "<xml>2</xml>"
    assert [d["id"] for d in engine.drafts.list("diagram")] == [draft["id"]] and engine.drafts.list("form") == []
    with pytest.raises(InvalidInput):
        engine.drafts.save("diagram", "   ", "method")
    with pytest.raises(InvalidInput):
        engine.drafts.save("picture", "x", "method")
    engine.drafts.delete(draft["id"])
    with pytest.raises(NotFound):
        engine.drafts.get(draft["id"])


# -- web --------------------------------------------------------------------------------------------------------

@pytest.fixture
def app(deployed):
    deployed.identity.add_user("method", ["methodologist"], password_hash=HASH, full_name="Методист")
    deployed.identity.add_user("clerk", ["commission_secretary"], password_hash=HASH, full_name="Секретарь")
    return create_app({"TESTING": True, "SECRET_KEY": "test", "WTF_CSRF_ENABLED": True}, engine=deployed)


@pytest.fixture
def method(app):
    return signed_in(app)





def test_forms_pages_are_for_methodologists_only(app):
    client = app.test_client()
    login(client, "clerk")
    for path in ("/modeler/forms", "/modeler/forms/edit?key=check_form"):
        assert client.get(path).status_code == 403
    token = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/inbox").get_data(as_text=True)).group(1)
    for path, body in (("/modeler/forms/preview", {"schema": "{}"}),
                       ("/modeler/forms/deploy", {"key": "check_form", "schema": json.dumps(FORM_V2)}),
                       ("/modeler/drafts", {"kind": "form", "content": "{}"})):
        response = client.post(path, data=json.dumps(body), content_type="application/json",
                               headers={"X-CSRFToken": token})
        assert response.status_code == 403
    assert app.extensions["kurator"].drafts.list() == []


def test_forms_list_shows_each_form_with_the_processes_that_use_it(method):
    page = method.get("/modeler/forms").get_data(as_text=True)
    assert "check_form" in page and "lifecycle v1" in page
    assert "/modeler/forms/edit?key=check_form" in page


def test_form_editor_preview_draws_the_fields_and_reports_problems(app, method):
    page = method.get("/modeler/forms/edit?key=check_form").get_data(as_text=True)
    assert "Уровень опасности" in page and "form-editor.js" in page and "lifecycle" in page
    preview = post_json(method, "/modeler/forms/preview", {"schema": json.dumps(FORM_V2)}).get_json()
    assert preview["problems"] == [] and preview["fields"] == ["curator", "danger_level", "sop_confirmed"]
    assert 'name="danger_level"' in preview["html"] and "Критический" in preview["html"]
    assert 'id="f-curator" name="curator" aria-required="true"' in preview["html"]
    broken = post_json(method, "/modeler/forms/preview", {"schema": '{"components": [{"key": "a b"}]'}).get_json()
    assert broken["html"] == "" and broken["problems"][0]["severity"] == "error"
    twice = {"components": [{"type": "textfield", "key": "x"}, {"type": "number", "key": "x"}]}
    problems = post_json(method, "/modeler/forms/preview", {"schema": json.dumps(twice)}).get_json()["problems"]
    assert problems and problems[0]["element_id"] == "x"
    assert post_json(method, "/modeler/forms/preview", {"nothing": 1}).status_code == 400
    assert post_json(method, "/modeler/forms/preview", {"schema": "{}"}, with_token=False).status_code == 400


def test_deploying_a_form_deploys_new_versions_of_its_processes(app, method):
    engine = app.extensions["kurator"]
    running = engine.runtime.start("lifecycle", {"received": "2025-10-30"})
    response = post_json(method, "/modeler/forms/deploy",
                         {"key": "check_form", "schema": json.dumps(FORM_V2), "comment": "Куратор обязателен"})
    assert response.status_code == 200, response.get_json()
    created = {(i["kind"], i["key"], i["version"]) for i in response.get_json()["items"] if i["created"]}
    assert created == {("form", "check_form", 2), ("process", "lifecycle", 2)}
    with engine.db.session() as db:
        latest = db.scalar(select(ProcessDefinition).where(ProcessDefinition.key == "lifecycle")
                           .order_by(ProcessDefinition.version.desc()))
        assert (latest.deployed_by, latest.comment, latest.form_versions) == \
            ("method", "Куратор обязателен", {"check_form": 2})
    # the running case keeps its form until it is migrated
    assert engine.tasks.form(open_check_task(engine, running)) == FORM_V1
    events = audit(app, "form_deployed")
    assert len(events) == 1 and events[0]["object_id"] == "check_form" and events[0]["actor"] == "method"


def test_a_broken_form_is_refused_and_nothing_is_stored(app, method):
    engine = app.extensions["kurator"]
    with engine.db.session() as db:
        processes = len(db.scalars(select(ProcessDefinition)).all())
    response = post_json(method, "/modeler/forms/deploy", {"key": "check_form", "schema": '{"components": 5}'})
    assert response.status_code == 422 and response.get_json()["problems"]
    bad_key = post_json(method, "/modeler/forms/deploy", {"key": "../etc", "schema": json.dumps(FORM_V2)})
    assert bad_key.status_code == 400
    with engine.db.session() as db:
        assert db.scalar(select(FormDefinition.version).order_by(FormDefinition.version.desc())) == 1
        assert len(db.scalars(select(ProcessDefinition)).all()) == processes
    assert len(audit(app, "form_deploy_refused")) == 1 and audit(app, "form_deployed") == []


def test_diagram_draft_round_trip_through_the_modeler(app, method):
    engine = app.extensions["kurator"]
    response = post_json(method, "/modeler/drafts", {"kind": "diagram", "content": LIFECYCLE, "base_version": 1,
                                                     "note": "новый срок"})
    assert response.status_code == 200
    draft = response.get_json()
    assert draft["key"] == "lifecycle" and draft["revision"] == 1 and "content" not in draft
    index = method.get("/modeler").get_data(as_text=True)
    assert f"/modeler/edit?draft={draft['id']}" in index and "новый срок" in index
    page = method.get(f"/modeler/edit?draft={draft['id']}").get_data(as_text=True)
    data = json.loads(re.search(r'id="modeler-data">(.*?)</script>', page, re.S).group(1))
    assert data["xml"] == LIFECYCLE and data["draft_id"] == draft["id"] and data["revision"] == 1
    assert data["base_version"] == 1 and data["key"] == "lifecycle"
    # a save over a stale revision is refused with who saved in between
    second = post_json(method, "/modeler/drafts", {"kind": "diagram", "content": LIFECYCLE + " ",
                                                   "draft_id": draft["id"], "revision": 1}).get_json()
    assert second["revision"] == 2
    stale = post_json(method, "/modeler/drafts", {"kind": "diagram", "content": LIFECYCLE,
                                                  "draft_id": draft["id"], "revision": 1})
    assert stale.status_code == 409 and "Методист" not in stale.get_json()["message"]
    assert "method" in stale.get_json()["message"]
    for body, field in (({"kind": "diagram", "content": "<x/>"}, "content"),
                        ({"kind": "image", "content": "x"}, "kind"),
                        ({"kind": "diagram", "content": LIFECYCLE, "revision": "2"}, "revision")):
        refused = post_json(method, "/modeler/drafts", body)
        assert refused.status_code == 400 and refused.get_json()["field"] == field
    assert method.get("/modeler/edit?draft=999").status_code == 404
    deleted = method.post(f"/modeler/drafts/{draft['id']}/delete", data={"csrf_token": token(method, "/modeler/forms")})
    assert deleted.status_code == 302 and engine.drafts.list() == []
    actions = [e["action"] for e in engine.audit.events(object_type="draft")]
    assert actions.count("draft_saved") == 2 and "draft_opened" in actions and "draft_deleted" in actions


def test_form_draft_is_listed_and_reopened(app, method):
    response = post_json(method, "/modeler/drafts", {"kind": "form", "content": json.dumps(FORM_V2),
                                                     "key": "check_form", "base_version": 1})
    draft = response.get_json()
    page = method.get("/modeler/forms").get_data(as_text=True)
    assert f"/modeler/forms/edit?draft={draft['id']}" in page
    editor = method.get(f"/modeler/forms/edit?draft={draft['id']}").get_data(as_text=True)
    assert "&#34;required&#34;: true" in editor or '"required": true' in editor
    assert method.get(f"/modeler/edit?draft={draft['id']}").status_code == 404  # not a diagram draft


def test_deploying_a_diagram_draft_closes_it(app, method):
    from .test_sop_diagrams import FORMS, WORKFLOWS

    engine = app.extensions["kurator"]
    engine.repository.deploy([*sorted(WORKFLOWS.glob("*.bpmn")), *sorted(FORMS.glob("*.json"))])
    original = (WORKFLOWS / "quarterly_reconciliation.bpmn").read_text(encoding="utf-8")
    changed = original.replace('isExecutable="true"', 'isExecutable="true" camunda:versionTag="draft"', 1)
    assert changed != original
    draft = post_json(method, "/modeler/drafts", {"kind": "diagram", "content": changed}).get_json()
    response = post_json(method, "/modeler/deploy", {"xml": changed, "comment": "из черновика",
                                                     "draft_id": draft["id"]})
    body = response.get_json()
    assert response.status_code == 200, body
    assert body["draft_deleted"] is True and engine.drafts.list() == []
    assert [e["details"]["reason"] for e in engine.audit.events(object_type="draft")
            if e["action"] == "draft_deleted"] == ["deployed"]


def test_a_form_deployed_alone_reaches_new_cases_through_new_process_versions(deployed):
    engine = deployed
    running = engine.runtime.start("lifecycle", {"received": "2025-10-30"})
    result = engine.repository.deploy([("check_form.json", json.dumps(FORM_V2, ensure_ascii=False))],
                                      deployed_by="cli", comment="форма отдельно")
    created = {(i.kind, i.key, i.version) for i in result.items if i.created}
    assert created == {("form", "check_form", 2), ("process", "lifecycle", 2)}
    fresh = engine.runtime.start("lifecycle", {"received": "2025-10-30"})
    assert engine.tasks.form(open_check_task(engine, fresh)) == FORM_V2
    assert engine.tasks.form(open_check_task(engine, running)) == FORM_V1
    again = engine.repository.deploy([("check_form.json", json.dumps(FORM_V2, ensure_ascii=False))])
    assert not any(i.created for i in again.items)
