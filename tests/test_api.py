"""The REST API (/api/v1): tokens, tasks (detail, claim, unclaim, complete, overdue), intake, cases, history,
documents; data scope (404 outside it), conflicts (409), validation (422), the audit log, the OpenAPI document."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, update

import sop
from engine.models import HumanTask
from sop.models import Document
from webapp import create_app

from .test_sop_diagrams import CHECK, FORMS, WORKFLOWS
from .test_sop_service import SIGNAL

PASSWORD = "api-password"
CHECK_TASK = "Проверка информации и заключение"


def build_app(engine):
    """Two municipalities: Йошкар-Ола (commission, two schools, police) and Волжск (its commission); users with
    the password PASSWORD; the SOP diagrams and forms deployed."""
    sop.install(engine)
    identity = engine.identity
    for name, city, kind in (("КДНиЗП Йошкар-Олы", "Йошкар-Ола", "commission"),
                             ("Школа № 5", "Йошкар-Ола", "education"), ("Школа № 7", "Йошкар-Ола", "education"),
                             ("ОМВД", "Йошкар-Ола", "police"), ("КДНиЗП Волжска", "Волжск", "commission")):
        identity.add_agency(name, city, kind=kind)
    password_hash = PasswordHasher().hash(PASSWORD)
    for username, roles, agency in (("secretary", ["commission_secretary"], "КДНиЗП Йошкар-Олы"),
                                    ("secretary2", ["commission_secretary"], "КДНиЗП Йошкар-Олы"),
                                    ("chair", ["commission"], "КДНиЗП Йошкар-Олы"),
                                    ("school", ["education", "agency_specialist"], "Школа № 5"),
                                    ("school7", ["education", "agency_specialist"], "Школа № 7"),
                                    ("police", ["police", "agency_specialist"], "ОМВД"),
                                    ("headmaster", ["manager"], "Школа № 5"),
                                    ("police_chief", ["manager"], "ОМВД"),
                                    ("vsecretary", ["commission_secretary"], "КДНиЗП Волжска")):
        identity.add_user(username, roles, agency=agency, password_hash=password_hash)
    engine.repository.deploy([*sorted(WORKFLOWS.glob("*.bpmn")), *sorted(FORMS.glob("*.json"))])
    return create_app({"TESTING": True, "SECRET_KEY": "api-test"}, engine=engine)


def token_headers(client, username: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['token']}"}


@pytest.fixture
def app(engine):
    return build_app(engine)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def auth(client):
    """`auth("secretary")` → the headers of a bearer token of that user (tokens are cached per user)."""
    tokens: dict[str, dict[str, str]] = {}

    def headers(username: str) -> dict[str, str]:
        if username not in tokens:
            tokens[username] = token_headers(client, username)
        return tokens[username]

    return headers


@pytest.fixture
def case(client, auth):
    """A signal registered by school № 5 through the API: a new case in check."""
    response = client.post("/api/v1/intake", json=SIGNAL, headers=auth("school"))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def engine_of(app):
    return app.extensions["kurator"]


def actions(app, object_type=None, object_id=None) -> list[str]:
    return [e["action"] for e in engine_of(app).audit.events(object_type, object_id)]


def check_task(client, auth) -> dict:
    tasks = client.get("/api/v1/tasks?scope=candidate", headers=auth("secretary")).get_json()
    return next(t for t in tasks if t["name"] == CHECK_TASK)


# -- authentication -------------------------------------------------------------------------------------------

PROTECTED = [("get", "/api/v1/tasks"), ("get", "/api/v1/tasks/overdue"),
             ("get", "/api/v1/tasks/6f1c1a52-4a53-4a43-9b7e-3c3f3f1f0b11"),
             ("post", "/api/v1/tasks/6f1c1a52-4a53-4a43-9b7e-3c3f3f1f0b11/claim"),
             ("post", "/api/v1/tasks/6f1c1a52-4a53-4a43-9b7e-3c3f3f1f0b11/unclaim"),
             ("post", "/api/v1/tasks/6f1c1a52-4a53-4a43-9b7e-3c3f3f1f0b11/complete"),
             ("post", "/api/v1/intake"), ("get", "/api/v1/cases"), ("get", "/api/v1/cases/1"),
             ("get", "/api/v1/cases/1/history"), ("get", "/api/v1/cases/1/documents"),
             ("get", "/api/v1/documents/1")]


@pytest.mark.parametrize("method,path", PROTECTED)
def test_every_endpoint_needs_a_valid_token(client, method, path):
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic c2VjcmV0YXJ5Og=="}):
        response = getattr(client, method)(path, headers=headers, json={"scope": "x"} if method == "post" else None)
        assert response.status_code == 401, (path, headers)
        body = response.get_json()
        assert body["message"].startswith("Нужен токен") and body["errors"] == {}


def test_token_for_a_wrong_password_is_refused(client):
    response = client.post("/api/v1/auth/token", json={"username": "secretary", "password": "wrong"})
    assert response.status_code == 401 and response.get_json()["message"]
    missing = client.post("/api/v1/auth/token", json={"username": "secretary"})
    assert missing.status_code == 422 and "password" in missing.get_json()["errors"]


def test_a_token_of_another_key_is_refused(app, client, auth):
    other = create_app({"TESTING": True, "SECRET_KEY": "another-key"}, engine=engine_of(app)).test_client()
    token = other.post("/api/v1/auth/token", json={"username": "secretary", "password": PASSWORD}).get_json()
    assert client.get("/api/v1/tasks", headers={"Authorization": f"Bearer {token['token']}"}).status_code == 401
    assert client.get("/api/v1/tasks", headers=auth("secretary")).status_code == 200


# -- tasks ----------------------------------------------------------------------------------------------------

def test_task_detail_has_the_task_fields_its_case_and_its_form(app, client, auth, case):
    task = check_task(client, auth)
    response = client.get(f"/api/v1/tasks/{task['id']}", headers=auth("secretary"))
    assert response.status_code == 200
    detail = response.get_json()
    assert set(detail) >= {"id", "name", "process_key", "instance_id", "candidate_roles", "assignee", "due",
                           "follow_up", "form_key", "overdue", "form", "case_id", "case_number", "status"}
    assert detail["case_id"] == case["case_id"] and detail["case_number"] == case["case_number"] == "1/2025"
    assert detail["candidate_roles"] == ["commission_secretary"] and detail["status"] == "open"
    assert actions(app, "task", task["id"]) == ["task_viewed"]
    keys = {c.get("key") for c in detail["form"]["components"]}
    assert {"danger_level", "conclusion", "sop_confirmed"} <= keys


def test_task_outside_the_scope_or_unknown_is_404(client, auth, case):
    task = check_task(client, auth)
    for path in (f"/api/v1/tasks/{task['id']}", f"/api/v1/tasks/{task['id']}/claim"):
        method = client.get if path.endswith(task["id"]) else client.post
        response = method(path, headers=auth("vsecretary"))  # another municipality's commission
        assert response.status_code == 404 and response.get_json()["message"] == "Задача не найдена"
    unknown = client.get("/api/v1/tasks/00000000-0000-4000-8000-000000000000", headers=auth("secretary"))
    assert unknown.status_code == 404
    assert client.get("/api/v1/tasks/not-a-uuid", headers=auth("secretary")).status_code == 404


def test_claim_unclaim_and_the_conflicts_of_a_claimed_task(app, client, auth, case):
    task = check_task(client, auth)
    claimed = client.post(f"/api/v1/tasks/{task['id']}/claim", headers=auth("secretary"))
    assert claimed.status_code == 200 and claimed.get_json()["assignee"] == "secretary"
    again = client.post(f"/api/v1/tasks/{task['id']}/claim", headers=auth("secretary"))
    assert again.status_code == 200  # claiming one's own task again changes nothing
    assert [t["id"] for t in client.get("/api/v1/tasks?scope=mine", headers=auth("secretary")).get_json()] \
        == [task["id"]]
    assert client.get("/api/v1/tasks?scope=candidate", headers=auth("secretary2")).get_json() == []

    conflict = client.post(f"/api/v1/tasks/{task['id']}/claim", headers=auth("secretary2"))
    assert conflict.status_code == 409
    assert conflict.get_json()["errors"] == {"assignee": "secretary"}
    assert "secretary" in conflict.get_json()["message"]
    taken = client.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": CHECK}, headers=auth("secretary2"))
    assert taken.status_code == 409 and taken.get_json()["errors"] == {"assignee": "secretary"}
    not_theirs = client.post(f"/api/v1/tasks/{task['id']}/unclaim", headers=auth("secretary2"))
    assert not_theirs.status_code == 403 and not_theirs.get_json()["errors"] == {"assignee": "secretary"}

    released = client.post(f"/api/v1/tasks/{task['id']}/unclaim", headers=auth("secretary"))
    assert released.status_code == 200 and released.get_json()["assignee"] is None
    assert actions(app, "task", task["id"])[:2] == ["task_unclaimed", "task_claimed"]


def test_a_task_of_another_role_cannot_be_claimed(client, auth, case):
    task = check_task(client, auth)
    response = client.post(f"/api/v1/tasks/{task['id']}/claim", headers=auth("chair"))
    assert response.status_code == 403 and "commission_secretary" in response.get_json()["errors"]["candidate_roles"]


def test_complete_validates_the_form_then_moves_the_process_on(app, client, auth, case):
    task = check_task(client, auth)
    path = f"/api/v1/tasks/{task['id']}/complete"
    invalid = client.post(path, json={"data": {**CHECK, "danger_level": None, "conclusion": ""}},
                          headers=auth("secretary"))
    assert invalid.status_code == 422
    assert set(invalid.get_json()["errors"]) == {"danger_level", "conclusion"}
    bad_names = client.post(path, json={"data": {"_hidden": 1}}, headers=auth("secretary"))
    assert bad_names.status_code == 422 and "_hidden" in bad_names.get_json()["errors"]
    not_an_object = client.post(path, json={"data": [1, 2]}, headers=auth("secretary"))
    assert not_an_object.status_code == 422 and "data" in not_an_object.get_json()["errors"]

    done = client.post(path, json={"data": CHECK}, headers=auth("secretary"))
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["status"] == "completed" and done.get_json()["assignee"] == "secretary"
    twice = client.post(path, json={"data": CHECK}, headers=auth("secretary"))
    assert twice.status_code == 409
    assert twice.get_json()["errors"] == {"status": "completed", "completed_by": "secretary"}
    assert "уже выполнена" in twice.get_json()["message"]
    assert actions(app, "task", task["id"])[0] == "task_completed"
    # the process went on: the commission meeting waits for the chair
    names = [t["name"] for t in client.get("/api/v1/tasks", headers=auth("chair")).get_json()]
    assert any("Заседание КДНиЗП" in name for name in names)


def test_a_completion_whose_audit_record_fails_is_not_saved(app, client, auth, case, monkeypatch):
    """The completion, its audit record and the answer are one transaction: no change without its record."""
    task = check_task(client, auth)
    engine = engine_of(app)

    def broken(*_args, **_kwargs):
        raise RuntimeError("audit log unavailable")

    headers = auth("secretary")
    monkeypatch.setattr(engine.audit, "record", broken)
    response = client.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": CHECK}, headers=headers)
    assert response.status_code == 500
    monkeypatch.undo()
    assert engine.tasks.get(task["id"])["status"] == "open"
    assert "task_completed" not in actions(app, "task", task["id"])
    assert [t["id"] for t in client.get("/api/v1/tasks?scope=candidate", headers=auth("secretary")).get_json()] \
        == [task["id"]]


def test_the_task_list_is_in_the_inbox_order_due_then_opened(app, client, auth):
    """Tasks due at the same moment come in the order they were opened, as on «Мои задачи» (then by id)."""
    engine = engine_of(app)
    for number in range(4):
        engine.sop.register_intake("school", dict(SIGNAL, address=f"ул. Мира, д. {number + 1}"), new_family=True)
    with engine.db.session() as db:
        rows = db.execute(select(HumanTask.id, HumanTask.due).where(HumanTask.element_id == "sop_check")).all()
        assert len({due for _id, due in rows}) == 1  # the same day, the same deadline
        # opened in the reverse order of the ids, a minute apart
        opened = min(row.due for row in rows) - timedelta(days=3)
        for minutes, task_id in enumerate(sorted((row.id for row in rows), reverse=True)):
            db.execute(update(HumanTask).where(HumanTask.id == task_id)
                       .values(created_at=opened + timedelta(minutes=minutes)))
    listed = [t["id"] for t in client.get("/api/v1/tasks?scope=candidate", headers=auth("secretary")).get_json()]
    assert listed == sorted((row.id for row in rows), reverse=True)


def test_overdue_tasks_for_the_commission_and_managers_only(app, client, auth, case):
    assert client.get("/api/v1/tasks/overdue", headers=auth("secretary")).get_json() == []
    engine = engine_of(app)
    engine.clock.advance(days=30)
    assert engine.management.sweep().overdue_marked >= 1
    overdue = client.get("/api/v1/tasks/overdue", headers=auth("secretary")).get_json()
    assert [t["name"] for t in overdue] == [CHECK_TASK]
    assert overdue[0]["overdue"] is True and overdue[0]["case_id"] == case["case_id"]
    assert client.get("/api/v1/tasks/overdue", headers=auth("chair")).get_json()[0]["name"] == CHECK_TASK
    assert client.get("/api/v1/tasks/overdue", headers=auth("vsecretary")).get_json() == []
    # a manager sees the overdue tasks of the cases their agency takes part in
    assert [t["id"] for t in client.get("/api/v1/tasks/overdue", headers=auth("headmaster")).get_json()] \
        == [overdue[0]["id"]]
    assert client.get("/api/v1/tasks/overdue", headers=auth("police_chief")).get_json() == []
    refused = client.get("/api/v1/tasks/overdue?limit=0", headers=auth("school"))
    assert refused.status_code == 403 and refused.get_json()["message"]
    invalid = client.get("/api/v1/tasks/overdue?limit=0", headers=auth("secretary"))
    assert invalid.status_code == 422 and "limit" in invalid.get_json()["errors"]


def test_task_list_validates_its_query(client, auth):
    response = client.get("/api/v1/tasks?scope=everything", headers=auth("secretary"))
    assert response.status_code == 422 and "scope" in response.get_json()["errors"]


def test_input_no_database_can_store_is_422_not_500(client, auth, case):
    """NUL (PostgreSQL), lone surrogates (no UTF-8) and NaN/infinity (not JSON) are refused per field."""
    token = client.post("/api/v1/auth/token", data='{"username": "a\\u0000b", "password": "x"}',
                        content_type="application/json")
    assert token.status_code == 422 and "username" in token.get_json()["errors"]
    signal = json.dumps({**SIGNAL, "source": "школа\ud800"})
    intake = client.post("/api/v1/intake", data=signal, content_type="application/json", headers=auth("school"))
    assert intake.status_code == 422 and "source" in intake.get_json()["errors"]
    children = json.dumps({**SIGNAL, "children": [{**SIGNAL["children"][0], "last_name": "Ива\x00нов"}]})
    nested = client.post("/api/v1/intake", data=children, content_type="application/json", headers=auth("school"))
    assert nested.status_code == 422 and "children.0.last_name" in nested.get_json()["errors"]
    task = check_task(client, auth)
    for body in ('{"data": {"housing_area": NaN}}', '{"data": {"housing_area": 1e999}}',
                 '{"data": {"a\\u0000": 1}}'):
        response = client.post(f"/api/v1/tasks/{task['id']}/complete", data=body, content_type="application/json",
                               headers=auth("secretary"))
        assert response.status_code == 422 and response.get_json()["errors"], body


# -- intake ---------------------------------------------------------------------------------------------------

def test_intake_opens_a_case_and_is_audited(app, client, auth, case):
    assert case["case_number"] == "1/2025" and case["attached"] is False and len(case["instance_ids"]) == 1
    assert isinstance(case["intake_id"], int) and isinstance(case["case_id"], int)
    assert actions(app, "case", case["case_id"]) == ["intake_registered"]
    assert client.get(f"/api/v1/cases/{case['case_id']}", headers=auth("school")).status_code == 200


def test_intake_of_a_known_family_is_409_with_the_duplicates(client, auth, case):
    response = client.post("/api/v1/intake", json=SIGNAL, headers=auth("secretary"))
    assert response.status_code == 409
    body = response.get_json()
    assert body["duplicates"] == [{"case_id": case["case_id"], "number": "1/2025", "family": "Семья Иванова",
                                   "status": "check"}]
    assert "1/2025" in body["message"] and "1/2025" in body["errors"]["duplicates"]
    # the police take no part in the case: the commission knows the family, but not which case it is to them
    response = client.post("/api/v1/intake", json=SIGNAL, headers=auth("police"))
    assert response.status_code == 409
    body = response.get_json()
    assert body["duplicates"] == [{"case_id": case["case_id"], "number": None, "family": None, "status": None}]
    assert "1/2025" not in body["message"] and "Иванов" not in str(body["errors"])
    attached = client.post("/api/v1/intake", json={**SIGNAL, "attach_to_case": case["case_id"]},
                           headers=auth("police"))
    assert attached.status_code == 201
    assert attached.get_json()["attached"] is True and attached.get_json()["case_id"] == case["case_id"]
    assert client.get(f"/api/v1/cases/{case['case_id']}", headers=auth("police")).status_code == 404
    another = client.post("/api/v1/intake", json={**SIGNAL, "new_family": True}, headers=auth("police"))
    assert another.status_code == 201 and another.get_json()["case_number"] == "2/2025"


def test_intake_validation_errors_per_field(client, auth):
    signal = {**SIGNAL, "children": [{"last_name": "Иванов", "birth_date": "2012-13-40"}], "source": ""}
    del signal["address"]
    response = client.post("/api/v1/intake", json=signal, headers=auth("school"))
    assert response.status_code == 422
    errors = response.get_json()["errors"]
    assert {"address", "source", "children"} <= set(errors)
    unknown = client.post("/api/v1/intake", json={**SIGNAL, "extra": 1}, headers=auth("school"))
    assert unknown.status_code == 422 and "extra" in unknown.get_json()["errors"]
    not_json = client.post("/api/v1/intake", data="{", content_type="application/json", headers=auth("school"))
    assert not_json.status_code == 400 and not_json.get_json()["message"]


def test_intake_attach_to_an_unknown_case_or_by_a_role_without_intake(client, auth):
    response = client.post("/api/v1/intake", json={**SIGNAL, "attach_to_case": 999_999}, headers=auth("school"))
    assert response.status_code == 422 and "attach_to_case" in response.get_json()["errors"]
    assert client.post("/api/v1/intake", json=SIGNAL, headers=auth("chair")).status_code == 403
    assert client.post("/api/v1/intake", json={}, headers=auth("chair")).status_code == 403  # roles come first


# -- cases ----------------------------------------------------------------------------------------------------

def test_cases_list_is_paginated_filtered_and_scoped(app, client, auth, case):
    client.post("/api/v1/intake", json={**SIGNAL, "new_family": True}, headers=auth("police"))
    page = client.get("/api/v1/cases?per_page=1", headers=auth("secretary")).get_json()
    assert page["total"] == 2 and page["pages"] == 2 and [c["number"] for c in page["items"]] == ["2/2025"]
    second = client.get("/api/v1/cases?per_page=1&page=2", headers=auth("secretary")).get_json()
    assert [c["number"] for c in second["items"]] == ["1/2025"]
    assert second["items"][0]["family"] == "Семья Иванова" and second["items"][0]["status"] == "check"
    assert client.get("/api/v1/cases?status=closed", headers=auth("secretary")).get_json()["total"] == 0
    assert client.get("/api/v1/cases?status=check", headers=auth("secretary")).get_json()["total"] == 2
    # a school sees the cases its school takes part in; another municipality sees none
    assert [c["id"] for c in client.get("/api/v1/cases", headers=auth("school")).get_json()["items"]] \
        == [case["case_id"]]
    assert client.get("/api/v1/cases", headers=auth("school7")).get_json()["total"] == 0
    assert client.get("/api/v1/cases", headers=auth("vsecretary")).get_json()["total"] == 0
    invalid = client.get("/api/v1/cases?status=lost&page=0", headers=auth("secretary"))
    assert invalid.status_code == 422 and {"status", "page"} <= set(invalid.get_json()["errors"])


def test_case_detail_is_audited_and_404_outside_the_scope(app, client, auth, case):
    path = f"/api/v1/cases/{case['case_id']}"
    response = client.get(path, headers=auth("secretary"))
    assert response.status_code == 200
    detail = response.get_json()
    assert detail["number"] == "1/2025" and detail["status"] == "check"
    assert detail["family"]["children"][0]["name"] == "Иванов Петр Андреевич"
    assert {a["role"] for a in detail["agencies"]} == {"commission", "intake"}
    events = engine_of(app).audit.events("case", case["case_id"])
    assert events[0]["action"] == "case_viewed" and events[0]["actor"] == "secretary" and events[0]["ip"]
    for user in ("vsecretary", "school7"):
        for suffix in ("", "/history", "/documents"):
            hidden = client.get(path + suffix, headers=auth(user))
            assert hidden.status_code == 404 and hidden.get_json()["message"] == "Дело не найдено", (user, suffix)
    assert client.get("/api/v1/cases/999999", headers=auth("secretary")).status_code == 404
    assert client.get("/api/v1/cases/0", headers=auth("secretary")).status_code == 404
    assert client.get("/api/v1/cases/99999999999999999999", headers=auth("secretary")).status_code == 404
    assert client.get("/api/v1/cases/abc", headers=auth("secretary")).status_code == 404
    assert actions(app, "case", case["case_id"]).count("case_viewed") == 1  # refusals are not reads


def test_case_history_covers_the_case_processes(app, client, auth, case):
    task = check_task(client, auth)
    client.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": CHECK}, headers=auth("secretary"))
    response = client.get(f"/api/v1/cases/{case['case_id']}/history", headers=auth("school"))
    assert response.status_code == 200
    events = response.get_json()
    types = [e["type"] for e in events]
    assert types[0] == "instance_started" and "task_completed" in types
    completed = next(e for e in events if e["type"] == "task_completed")
    assert completed["task_name"] == CHECK_TASK and completed["actor"] == "secretary"
    assert completed["process_key"] == "sop_case"
    assert completed["data"] is None  # the commission's form data is not the school's to read (sop.access)
    assert events[0]["data"]["variables"]  # the school registered the case: its own entry keeps its data
    full = client.get(f"/api/v1/cases/{case['case_id']}/history", headers=auth("secretary")).get_json()
    assert next(e for e in full if e["type"] == "task_completed")["data"]["danger_level"] == "high"
    assert "case_history_viewed" in actions(app, "case", case["case_id"])


def test_emergency_signal_history_includes_both_processes(client, auth):
    response = client.post("/api/v1/intake", json={**SIGNAL, "threat_to_life": True}, headers=auth("school"))
    assert response.status_code == 201 and len(response.get_json()["instance_ids"]) == 2
    events = client.get(f"/api/v1/cases/{response.get_json()['case_id']}/history",
                        headers=auth("secretary")).get_json()
    assert {e["process_key"] for e in events} == {"sop_case", "emergency_child_safety"}


def test_documents_list_and_download(app, client, auth, case):
    documents = f"/api/v1/cases/{case['case_id']}/documents"
    assert client.get(documents, headers=auth("secretary")).get_json() == []
    task = check_task(client, auth)
    answer = client.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": CHECK}, headers=auth("secretary"))
    listed = client.get(documents, headers=auth("secretary")).get_json()
    # the act's PDF is laid out once the completion's answer has gone out, which the test client has not closed
    assert [(d["kind"], d["size"], d["pending"]) for d in listed] == [("conclusion", 0, True)]
    document = listed[0]
    assert document["url"] == f"/api/v1/documents/{document['id']}"
    pdf = client.get(document["url"], headers=auth("school"))  # a download does not wait: it lays it out
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")
    listed = client.get(documents, headers=auth("secretary")).get_json()
    assert [(d["size"], d["pending"]) for d in listed] == [(len(pdf.data), False)]  # and stored it
    assert [d["pdf_state"] for d in listed] == ["ready"]
    answer.close()  # the server closes the answer: nothing is left to lay out
    assert client.get(document["url"], headers=auth("school")).data == pdf.data
    assert "attachment" in pdf.headers["Content-Disposition"]
    events = engine_of(app).audit.events("document", document["id"])  # as the web UI records it
    assert events[0]["action"] == "document_downloaded" and events[0]["actor"] == "school"
    assert events[0]["details"]["case_id"] == case["case_id"]
    assert "case_documents_listed" in actions(app, "case", case["case_id"])
    for user in ("vsecretary", "school7"):
        assert client.get(document["url"], headers=auth(user)).status_code == 404
    assert client.get("/api/v1/documents/999999", headers=auth("secretary")).status_code == 404


def test_a_document_a_step_writes_is_laid_out_once_the_answer_is_sent(app, client, auth, case):
    task = check_task(client, auth)
    answer = client.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": CHECK}, headers=auth("secretary"))
    assert answer.status_code == 200
    answer.close()  # as the WSGI server does once the answer is sent: the worker lays the PDF out then
    with engine_of(app).db.session() as session:
        act = session.scalars(select(Document).where(Document.case_id == case["case_id"])).one()
        assert act.pending_html is None and act.content.startswith(b"%PDF") and act.size == len(act.content)


# -- the OpenAPI document ---------------------------------------------------------------------------------------

def test_openapi_document_describes_every_endpoint(client):
    spec = client.get("/api/openapi.json").get_json()
    assert spec["openapi"].startswith("3.") and spec["info"]["title"] == "Kurator API"
    expected = {"/api/v1/auth/token": {"post"}, "/api/v1/tasks": {"get"}, "/api/v1/tasks/overdue": {"get"},
                "/api/v1/tasks/{task_id}": {"get"}, "/api/v1/tasks/{task_id}/claim": {"post"},
                "/api/v1/tasks/{task_id}/unclaim": {"post"}, "/api/v1/tasks/{task_id}/complete": {"post"},
                "/api/v1/intake": {"post"}, "/api/v1/cases": {"get"}, "/api/v1/cases/{case_id}": {"get"},
                "/api/v1/cases/{case_id}/history": {"get"}, "/api/v1/cases/{case_id}/documents": {"get"},
                "/api/v1/documents/{document_id}": {"get"}, "/api/v1/cases/{case_id}/bundle.pdf": {"get"},
                "/api/v1/auth/tokens": {"get"}, "/api/v1/auth/tokens/{token_id}": {"delete"}, "/api/v1/kpi": {"get"}}
    meeting = "/api/v1/meetings/{meeting_id}"
    expected.update({"/api/v1/commission": {"get"}, "/api/v1/meetings": {"get", "post"}, meeting: {"get"},
                     f"{meeting}/attendance": {"post"}, f"{meeting}/items": {"post"}, f"{meeting}/close": {"post"},
                     f"{meeting}/items/{{item_id}}/decision": {"post"}, f"{meeting}/agenda.pdf": {"get"},
                     f"{meeting}/items/{{item_id}}/postpone": {"post"}, f"{meeting}/minutes.pdf": {"get"}})
    paths = spec["paths"]
    assert set(paths) == set(expected)
    for path, methods in expected.items():
        assert {m for m in paths[path] if m != "parameters"} == methods, path
    assert spec["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    assert spec["security"] == [{"bearer": []}]
    assert paths["/api/v1/auth/token"]["post"]["security"] == []

    def parameter(path, name):
        return next(p for p in paths[path]["parameters"] if p["name"] == name)

    assert parameter("/api/v1/cases/{case_id}", "case_id")["schema"]["type"] == "integer"
    assert parameter("/api/v1/documents/{document_id}", "document_id")["schema"]["type"] == "integer"
    assert parameter("/api/v1/tasks/{task_id}", "task_id")["schema"] == {"type": "string", "format": "uuid"}
    query = {p["name"] for p in paths["/api/v1/cases"]["get"]["parameters"]}
    assert query == {"status", "page", "per_page"}
    for path, methods in expected.items():
        for method in methods:
            responses = paths[path][method]["responses"]
            if path != "/api/v1/auth/token":
                assert "401" in responses, (path, method)
    assert "409" in paths["/api/v1/intake"]["post"]["responses"]
    assert "409" in paths["/api/v1/tasks/{task_id}/claim"]["post"]["responses"]
    assert "422" in paths["/api/v1/intake"]["post"]["responses"]
    assert "application/pdf" in paths["/api/v1/documents/{document_id}"]["get"]["responses"]["200"]["content"]
    body = paths["/api/v1/intake"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    intake = spec["components"]["schemas"][body.rsplit("/", 1)[-1]]
    assert {"received_on", "children", "attach_to_case", "new_family"} <= set(intake["properties"])
    assert spec["components"]["schemas"]["ApiError"]["required"] == ["message"]
