"""The web app's front door: login (argon2, rate limit, audit), logout, password change, CSRF, cookies, the inbox
and its data scope."""

from __future__ import annotations

import re

import pytest
from argon2 import PasswordHasher

import sop
from engine.models import User
from webapp import create_app

from .test_sop_service import SIGNAL

HASH = PasswordHasher().hash("demo-password")


@pytest.fixture
def app(engine):
    sop.install(engine)
    for name, kind in (("КДНиЗП", "commission"), ("Школа № 5", "education"), ("ОМВД", "police")):
        engine.identity.add_agency(name, "Йошкар-Ола", kind=kind)
    engine.identity.add_agency("Школа № 1", "Волжск", kind="education")
    engine.identity.add_agency("КДНиЗП Волжска", "Волжск", kind="commission")
    for username, roles, agency in (("secretary", ["commission_secretary"], "КДНиЗП"),
                                    ("school", ["education", "agency_specialist"], "Школа № 5"),
                                    ("police", ["police", "agency_specialist"], "ОМВД"),
                                    ("other", ["education", "agency_specialist"], "Школа № 1"),
                                    ("vsecretary", ["commission_secretary"], "КДНиЗП Волжска")):
        engine.identity.add_user(username, roles, agency=agency, password_hash=HASH)
    from .test_sop_diagrams import FORMS, WORKFLOWS

    engine.repository.deploy([*sorted(WORKFLOWS.glob("*.bpmn")), *sorted(FORMS.glob("*.json"))])
    return create_app({"TESTING": True, "SECRET_KEY": "test", "WTF_CSRF_ENABLED": True}, engine=engine)


def csrf(client, path="/login") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def login(client, username, password="demo-password"):
    return client.post("/login", data={"username": username, "password": password, "csrf_token": csrf(client)})


def test_login_sets_a_safe_cookie_and_is_audited(app):
    client = app.test_client()
    response = login(client, "secretary")
    assert response.status_code == 302 and response.headers["Location"].endswith("/inbox")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert client.get("/inbox").status_code == 200
    events = app.extensions["kurator"].audit.events()
    assert events[0]["action"] == "login" and events[0]["actor"] == "secretary"


def test_wrong_password_is_refused_audited_and_rate_limited(app):
    client = app.test_client()
    for _ in range(5):
        response = login(client, "school", "wrong")
        assert response.status_code == 401 and "Неверное имя пользователя или пароль" in response.get_data(True)
    response = login(client, "school")  # even the right password is not checked while this client backs off
    assert response.status_code == 429 and "Слишком много неудачных попыток" in response.get_data(True)
    assert response.headers["Retry-After"] == "30"
    actions = [e["action"] for e in app.extensions["kurator"].audit.events()]
    assert actions.count("login_failed") == 5 and "login_blocked" in actions


def test_forms_need_the_csrf_token(app):
    client = app.test_client()
    response = client.post("/login", data={"username": "secretary", "password": "demo-password"})
    assert response.status_code == 400 and "Форма устарела" in response.get_data(True)


def test_pages_need_a_login(app):
    response = app.test_client().get("/inbox")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_password_change(app):
    client = app.test_client()
    login(client, "school")
    token = csrf(client, "/password")
    bad = client.post("/password", data={"current": "demo-password", "new": "short", "again": "short",
                                         "csrf_token": token})
    assert bad.status_code == 422 and "Пароль — не короче 10 символов" in bad.get_data(True)
    ok = client.post("/password", data={"current": "demo-password", "new": "a-much-longer-one",
                                        "again": "a-much-longer-one", "csrf_token": token})
    assert ok.status_code == 302
    engine = app.extensions["kurator"]
    with engine.db.session() as db:
        stored = db.query(User).filter_by(username="school").one().password_hash
    assert PasswordHasher().verify(stored, "a-much-longer-one")


def test_inbox_shows_only_tasks_in_scope_and_claiming_is_one_click(app):
    engine = app.extensions["kurator"]
    result = engine.sop.register_intake("school", SIGNAL)
    secretary, other_secretary = app.test_client(), app.test_client()
    login(secretary, "secretary")
    login(other_secretary, "vsecretary")
    page = secretary.get("/inbox").get_data(as_text=True)
    assert "Проверка информации" in page and "№ 1/2025" in page
    assert "№ 1/2025" not in other_secretary.get("/inbox").get_data(as_text=True)  # another municipality
    task_id = engine.tasks.query(instance_id=result.instance_ids[0])[0]["id"]
    response = other_secretary.post(f"/tasks/{task_id}/claim", data={"csrf_token": csrf(other_secretary, "/inbox")})
    assert response.status_code == 404  # not revealed
    response = secretary.post(f"/tasks/{task_id}/claim", data={"csrf_token": csrf(secretary, "/inbox")},
                              follow_redirects=True)
    assert "Задача закреплена за вами" in response.get_data(as_text=True)
    assert engine.tasks.get(task_id)["assignee"] == "secretary"


def test_api_token_and_tasks(app):
    client = app.test_client()
    assert client.get("/api/v1/tasks").status_code == 401
    bad = client.post("/api/v1/auth/token", json={"username": "secretary", "password": "nope"})
    assert bad.status_code == 401 and bad.get_json()["message"]
    token = client.post("/api/v1/auth/token", json={"username": "secretary", "password": "demo-password"})
    headers = {"Authorization": f"Bearer {token.get_json()['token']}"}
    engine = app.extensions["kurator"]
    engine.sop.register_intake("school", SIGNAL)
    tasks = client.get("/api/v1/tasks?scope=candidate", headers=headers).get_json()
    assert [t["name"] for t in tasks] == ["Проверка информации и заключение"]
    assert set(tasks[0]) >= {"id", "name", "process_key", "instance_id", "candidate_roles", "assignee", "due",
                             "follow_up", "form_key", "overdue"}
    invalid = client.get("/api/v1/tasks?scope=everything", headers=headers)
    assert invalid.status_code == 422 and "scope" in invalid.get_json()["errors"]
    assert client.get("/api/openapi.json").get_json()["info"]["title"] == "Kurator API"


@pytest.mark.parametrize("target", ["/%09/evil.example", "//evil.example", "/\\\\evil.example", "https://evil.example",
                                    "/%0d%0aSet-Cookie:x=1", "javascript:alert(1)", "/\\x7f/evil"])
def test_login_follows_only_paths_of_this_site(app, target):
    client = app.test_client()
    response = client.post(f"/login?next={target}", data={"username": "secretary", "password": "demo-password",
                                                            "csrf_token": csrf(client)})
    assert response.status_code == 302
    assert response.headers["Location"] in ("/inbox", "http://localhost/inbox"), response.headers["Location"]


def test_login_still_follows_a_path_of_this_site(app):
    client = app.test_client()
    response = client.post("/login?next=/cases?page=2", data={"username": "secretary", "password": "demo-password",
                                                               "csrf_token": csrf(client)})
    assert response.headers["Location"].endswith("/cases?page=2")


def test_an_unknown_user_costs_a_password_check_like_a_wrong_password(app, monkeypatch):
    from webapp import auth

    checked = []
    real = auth._hasher

    class Counting:
        def verify(self, stored, password):
            checked.append(stored)
            return real.verify(stored, password)

        def __getattr__(self, name):
            return getattr(real, name)

    monkeypatch.setattr(auth, "_hasher", Counting())
    for username in ("nobody-at-all", "secretary"):
        client = app.test_client()
        client.post("/login", data={"username": username, "password": "wrong", "csrf_token": csrf(client)})
    assert len(checked) == 2 and checked[0] == auth._DUMMY_HASH and checked[1] != auth._DUMMY_HASH


def test_every_page_names_its_icon_and_the_icon_is_served(app):
    """Browsers ask for an icon on every page; without one each page logs a failed request in the console."""
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    icon = re.search(r'<link rel="icon" href="([^"]+)"', page)
    assert icon, "no icon link on the login page"
    served = client.get(icon.group(1))
    assert served.status_code == 200 and served.mimetype == "image/svg+xml" and b"<svg" in served.data
    assert login(client, "secretary").status_code == 302
    assert f'<link rel="icon" href="{icon.group(1)}"' in client.get("/inbox").get_data(as_text=True)
