"""Sessions and tokens on the server (issue 12): logout ends the session, a password change (and an administrator's
reset or deactivation) ends the other sessions and the API tokens, tokens are listed with their last use and
revoked, failed logins back off per (user name, client address) with a per-address limit, the password page
answers 429 without locking the login, and the client address comes from X-Forwarded-For only behind a
configured number of proxies."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

import engine.identity as identity_module
import sop
from engine.models import ApiToken, AuditEvent, User, UserSession
from webapp import auth, create_app
from webapp.access import CurrentUser

from .support import statements_sent

PASSWORD = "demo-password"
HASH = PasswordHasher().hash(PASSWORD)


def build(engine, **overrides):
    return create_app({"TESTING": True, "SECRET_KEY": "sessions-test", "WTF_CSRF_ENABLED": True, **overrides},
                      engine=engine)


@pytest.fixture
def users(engine):
    sop.install(engine)
    engine.identity.add_agency("КДНиЗП", "Йошкар-Ола", kind="commission")
    engine.identity.add_agency("Школа № 5", "Йошкар-Ола", kind="education")
    for username, roles, agency in (("secretary", ["commission_secretary"], "КДНиЗП"),
                                    ("school", ["education", "agency_specialist"], "Школа № 5"),
                                    ("admin", ["admin"], None)):
        engine.identity.add_user(username, roles, agency=agency, password_hash=HASH)
    return engine


@pytest.fixture
def app(users):
    return build(users)


def client_at(app, ip: str = "127.0.0.1", **headers):
    """A browser at a client address (REMOTE_ADDR), with extra headers on every request."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    for name, value in headers.items():
        client.environ_base["HTTP_" + name.upper().replace("-", "_")] = value
    return client


def csrf(client, path="/login") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def login(client, username, password=PASSWORD):
    return client.post("/login", data={"username": username, "password": password, "csrf_token": csrf(client)})


def logged_in(app, username, ip="127.0.0.1"):
    client = client_at(app, ip)
    assert login(client, username).status_code == 302
    return client


def token_of(client, username, password=PASSWORD) -> dict:
    response = client.post("/api/v1/auth/token", json={"username": username, "password": password})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def bearer(token: dict) -> dict:
    return {"Authorization": f"Bearer {token['token']}"}


def is_login_redirect(response) -> bool:
    return response.status_code == 302 and "/login" in response.headers["Location"]


def user_id(engine, username) -> int:
    with engine.db.session() as db:
        return db.scalar(select(User.id).where(User.username == username))


def audit(engine, action):
    return [e for e in engine.audit.events() if e["action"] == action]


# -- sessions ----------------------------------------------------------------------------------------------------

def test_a_cookie_saved_before_logout_stops_working(app):
    client = logged_in(app, "secretary")
    saved = client.get_cookie("session").value
    thief = app.test_client()
    thief.set_cookie("session", saved)
    assert thief.get("/inbox").status_code == 200  # the copied cookie works while the session lives
    assert client.post("/logout", data={"csrf_token": csrf(client, "/inbox")}).status_code == 302
    assert is_login_redirect(thief.get("/inbox"))
    assert is_login_redirect(client.get("/inbox"))
    with app.extensions["kurator"].db.session() as db:
        assert db.scalars(select(UserSession)).all() == []


def test_the_session_cookie_holds_a_random_secret_and_the_table_only_its_hash(app):
    client = logged_in(app, "secretary")
    from flask.sessions import SecureCookieSessionInterface

    serializer = SecureCookieSessionInterface().get_signing_serializer(app)
    data = serializer.loads(client.get_cookie("session").value)
    assert "sid" in data and "uid" not in data
    with app.extensions["kurator"].db.session() as db:
        row = db.scalars(select(UserSession)).one()
    assert row.secret_hash == identity_module.secret_hash(data["sid"]) and data["sid"] not in row.secret_hash


def test_a_session_idle_for_longer_than_its_lifetime_ends(app, monkeypatch):
    client = logged_in(app, "secretary")
    later = identity_module._utcnow() + app.permanent_session_lifetime + timedelta(minutes=1)
    monkeypatch.setattr(identity_module, "_utcnow", lambda: later)
    assert is_login_redirect(client.get("/inbox"))


def test_time_travel_on_the_engine_clock_keeps_the_session(app):
    client = logged_in(app, "secretary")
    app.extensions["kurator"].clock.advance(days=30)  # a demo's or a test's clock: not the session's
    assert client.get("/inbox").status_code == 200


def test_password_change_ends_the_other_sessions_and_every_token_but_keeps_this_one(app):
    engine = app.extensions["kurator"]
    mine, other = logged_in(app, "school"), logged_in(app, "school", "10.0.0.2")
    token = token_of(app.test_client(), "school")
    assert app.test_client().get("/api/v1/tasks", headers=bearer(token)).status_code == 200
    page = mine.get("/password").get_data(as_text=True)
    assert "Вы вошли еще на других устройствах или в других браузерах: 1" in page
    response = mine.post("/password", data={"current": PASSWORD, "new": "a-much-longer-one",
                                            "again": "a-much-longer-one", "csrf_token": csrf(mine, "/password")},
                         follow_redirects=True)
    assert "Другие сеансы и токены API завершены" in response.get_data(as_text=True)
    assert mine.get("/inbox").status_code == 200
    assert is_login_redirect(other.get("/inbox"))
    assert app.test_client().get("/api/v1/tasks", headers=bearer(token)).status_code == 401
    [event] = audit(engine, "password_changed")
    assert event["details"] == {"sessions_ended": 1, "tokens_revoked": 1}


def test_ending_the_other_sessions_from_the_password_page(app):
    mine, other = logged_in(app, "school"), logged_in(app, "school", "10.0.0.2")
    token = token_of(app.test_client(), "school")
    response = mine.post("/password/sessions/end", data={"csrf_token": csrf(mine, "/password")},
                         follow_redirects=True)
    assert "Другие сеансы завершены" in response.get_data(as_text=True)
    assert mine.get("/inbox").status_code == 200 and is_login_redirect(other.get("/inbox"))
    assert app.test_client().get("/api/v1/tasks", headers=bearer(token)).status_code == 200  # tokens stay


def test_admin_password_reset_ends_every_session_and_token(app):
    engine = app.extensions["kurator"]
    admin = logged_in(app, "admin")
    victim = logged_in(app, "school")
    token = token_of(app.test_client(), "school")
    school = user_id(engine, "school")
    response = admin.post(f"/admin/users/{school}/password",
                          data={"password": "reset-password-1", "password2": "reset-password-1",
                                "csrf_token": csrf(admin, "/admin")})
    assert response.status_code == 302
    assert is_login_redirect(victim.get("/inbox"))
    assert app.test_client().get("/api/v1/tasks", headers=bearer(token)).status_code == 401
    assert admin.get("/admin").status_code == 200
    [event] = audit(engine, "password_reset")
    assert event["details"]["sessions_ended"] == 1 and event["details"]["tokens_revoked"] == 1


def test_admin_resetting_their_own_password_keeps_their_session(app):
    engine = app.extensions["kurator"]
    admin, elsewhere = logged_in(app, "admin"), logged_in(app, "admin", "10.0.0.2")
    response = admin.post(f"/admin/users/{user_id(engine, 'admin')}/password",
                          data={"password": "reset-password-1", "password2": "reset-password-1",
                                "csrf_token": csrf(admin, "/admin")})
    assert response.status_code == 302
    assert admin.get("/admin").status_code == 200 and is_login_redirect(elsewhere.get("/admin"))


def test_admin_deactivation_ends_every_session_and_token_and_activation_does_not_bring_them_back(app):
    engine = app.extensions["kurator"]
    admin = logged_in(app, "admin")
    victim = logged_in(app, "school")
    token = token_of(app.test_client(), "school")
    school = user_id(engine, "school")
    for active in ("0", "1"):
        response = admin.post(f"/admin/users/{school}/active", data={"active": active,
                                                                     "csrf_token": csrf(admin, "/admin")})
        assert response.status_code == 302
    assert is_login_redirect(victim.get("/inbox"))
    assert app.test_client().get("/api/v1/tasks", headers=bearer(token)).status_code == 401
    with engine.db.session() as db:
        assert db.scalars(select(UserSession).where(UserSession.user_id == school)).all() == []
        assert db.scalars(select(ApiToken).where(ApiToken.user_id == school)).all() == []
    assert logged_in(app, "school").get("/inbox").status_code == 200  # a new login works again


def test_admin_ends_a_users_sessions_from_the_user_page(app):
    engine = app.extensions["kurator"]
    admin = logged_in(app, "admin")
    victim = logged_in(app, "school")
    token = token_of(app.test_client(), "school")
    school = user_id(engine, "school")
    assert "Открытых сеансов: 1" in admin.get(f"/admin/users/{school}").get_data(as_text=True)
    response = admin.post(f"/admin/users/{school}/sessions/end", data={"csrf_token": csrf(admin, "/admin")},
                          follow_redirects=True)
    assert "сеансов 1, токенов 1" in response.get_data(as_text=True)
    assert is_login_redirect(victim.get("/inbox"))
    assert app.test_client().get("/api/v1/tasks", headers=bearer(token)).status_code == 401


# -- tokens ------------------------------------------------------------------------------------------------------

def test_tokens_are_stored_hashed_and_bound_to_the_key(app, users):
    token = token_of(app.test_client(), "school")
    with users.db.session() as db:
        row = db.get(ApiToken, token["id"])
    assert token["token"] not in row.secret_hash and len(row.secret_hash) == 64
    assert set(token) == {"id", "token", "expires_at"}
    other = build(users, SECRET_KEY="another-key").test_client()
    assert other.get("/api/v1/tasks", headers=bearer(token)).status_code == 401


def test_token_list_shows_the_last_use_and_the_current_token(app):
    api = client_at(app, "10.0.0.5")
    used, unused = token_of(api, "school"), token_of(api, "school")
    listed = api.get("/api/v1/auth/tokens", headers=bearer(used)).get_json()
    assert [t["id"] for t in listed] == [unused["id"], used["id"]]
    by_id = {t["id"]: t for t in listed}
    assert by_id[used["id"]]["current"] is True and by_id[unused["id"]]["current"] is False
    assert by_id[used["id"]]["last_used_at"] and by_id[used["id"]]["last_ip"] == "10.0.0.5"
    assert by_id[unused["id"]]["last_used_at"] is None
    assert by_id[used["id"]]["expires_at"] == used["expires_at"]
    # the page of the user: both tokens, one never used
    page = logged_in(app, "school").get("/password").get_data(as_text=True)
    assert "Мои токены API" in page and "не использовался" in page and "10.0.0.5" in page
    assert f"/password/tokens/{used['id']}/revoke" in page


def test_tokens_expire_after_twelve_hours(app, monkeypatch):
    token = token_of(app.test_client(), "school")
    later = identity_module._utcnow() + timedelta(hours=12, minutes=1)
    monkeypatch.setattr(identity_module, "_utcnow", lambda: later)
    assert app.test_client().get("/api/v1/tasks", headers=bearer(token)).status_code == 401


def test_a_token_revoked_over_the_api_answers_401(app):
    api = app.test_client()
    token, other = token_of(api, "school"), token_of(api, "school")
    secretary = token_of(api, "secretary")
    # somebody else's token is not found
    assert api.delete(f"/api/v1/auth/tokens/{token['id']}", headers=bearer(secretary)).status_code == 404
    assert api.delete(f"/api/v1/auth/tokens/{token['id']}", headers=bearer(other)).status_code == 204
    assert api.get("/api/v1/tasks", headers=bearer(token)).status_code == 401
    assert api.get("/api/v1/tasks", headers=bearer(other)).status_code == 200
    assert api.delete(f"/api/v1/auth/tokens/{other['id']}", headers=bearer(other)).status_code == 204  # itself
    assert api.get("/api/v1/tasks", headers=bearer(other)).status_code == 401
    assert api.get("/api/v1/auth/tokens").status_code == 401
    assert api.delete("/api/v1/auth/tokens/1").status_code == 401
    assert [e["object_id"] for e in audit(app.extensions["kurator"], "token_revoked")] == \
        [str(other["id"]), str(token["id"])]


def test_a_token_revoked_on_the_password_page_answers_401(app):
    token = token_of(app.test_client(), "school")
    secretary_token = token_of(app.test_client(), "secretary")
    page = logged_in(app, "school")
    # another user's token: not found
    assert page.post(f"/password/tokens/{secretary_token['id']}/revoke",
                     data={"csrf_token": csrf(page, "/password")}).status_code == 404
    response = page.post(f"/password/tokens/{token['id']}/revoke", data={"csrf_token": csrf(page, "/password")},
                         follow_redirects=True)
    assert f"Токен № {token['id']} отозван" in response.get_data(as_text=True)
    assert app.test_client().get("/api/v1/tasks", headers=bearer(token)).status_code == 401
    assert app.test_client().get("/api/v1/tasks", headers=bearer(secretary_token)).status_code == 200


def test_the_administrator_lists_and_revokes_a_users_tokens(app):
    engine = app.extensions["kurator"]
    token = token_of(app.test_client(), "school")
    app.test_client().get("/api/v1/tasks", headers=bearer(token))
    admin = logged_in(app, "admin")
    school = user_id(engine, "school")
    page = admin.get(f"/admin/users/{school}").get_data(as_text=True)
    assert "Токены API" in page and f"/admin/users/{school}/tokens/{token['id']}/revoke" in page
    assert "не использовался" not in page  # it was used: the date and address show instead
    response = admin.post(f"/admin/users/{school}/tokens/{token['id']}/revoke",
                          data={"csrf_token": csrf(admin, "/admin")}, follow_redirects=True)
    assert "отозван" in response.get_data(as_text=True)
    assert app.test_client().get("/api/v1/tasks", headers=bearer(token)).status_code == 401
    # the admin over the API: another user's list and tokens
    admin_token, again = token_of(app.test_client(), "admin"), token_of(app.test_client(), "school")
    api = app.test_client()
    listed = api.get("/api/v1/auth/tokens?username=school", headers=bearer(admin_token)).get_json()
    assert [t["id"] for t in listed] == [again["id"]]
    assert api.get("/api/v1/auth/tokens?username=admin", headers=bearer(again)).status_code == 403
    assert api.get("/api/v1/auth/tokens?username=nobody", headers=bearer(admin_token)).status_code == 404
    assert api.delete(f"/api/v1/auth/tokens/{again['id']}", headers=bearer(admin_token)).status_code == 204
    assert api.get("/api/v1/tasks", headers=bearer(again)).status_code == 401


# -- failed logins: back-off, per-address limit, the password page -----------------------------------------------

def fail(client, username="school"):
    return login(client, username, "wrong-password")


def test_back_off_is_per_user_name_and_client_address(app):
    engine = app.extensions["kurator"]
    attacker = client_at(app, "10.0.0.66")
    for _ in range(5):
        assert fail(attacker).status_code == 401
    refused = login(attacker, "school")  # the right password is not even checked while backing off
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "30"
    assert "Слишком много неудачных попыток входа. Повторите через 30 с." in refused.get_data(as_text=True)
    # the same user from another address logs in; so does another user from the attacker's address
    assert login(client_at(app, "10.0.0.7"), "school").status_code == 302
    assert login(client_at(app, "10.0.0.66"), "secretary").status_code == 302
    # each further failure doubles the wait
    engine.clock.advance(seconds=30)
    assert fail(attacker).status_code == 401
    assert login(attacker, "school").headers["Retry-After"] == "60"
    engine.clock.advance(seconds=60)
    assert fail(attacker).status_code == 401
    assert login(attacker, "school").headers["Retry-After"] == "120"
    # a success from that address starts afresh
    engine.clock.advance(seconds=120)
    assert login(attacker, "school").status_code == 302
    assert fail(attacker).status_code == 401
    assert "login_blocked" in [e["action"] for e in engine.audit.events()]


def test_back_off_is_capped_at_fifteen_minutes(app):
    engine = app.extensions["kurator"]
    attacker = client_at(app, "10.0.0.66")
    for _ in range(5):
        fail(attacker)
    for _ in range(8):  # waits 30 s, 1, 2, 4, 8, 16 min → capped at 15
        wait = int(login(attacker, "school").headers["Retry-After"])
        engine.clock.advance(seconds=wait)
        assert fail(attacker).status_code == 401
    assert login(attacker, "school").headers["Retry-After"] == "900"


def test_the_api_token_endpoint_backs_off_with_429(app):
    api = client_at(app, "10.0.0.66")
    for _ in range(5):
        assert api.post("/api/v1/auth/token", json={"username": "school", "password": "x"}).status_code == 401
    refused = api.post("/api/v1/auth/token", json={"username": "school", "password": PASSWORD})
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "30"
    assert "Слишком много неудачных попыток" in refused.get_json()["message"]
    assert client_at(app, "10.0.0.8").post("/api/v1/auth/token",
                                           json={"username": "school", "password": PASSWORD}).status_code == 200


def test_the_per_address_limit_trips_with_many_user_names(users):
    app = build(users, LOGIN_IP_ATTEMPTS=10)
    sprayer = client_at(app, "10.0.0.99")
    for number in range(10):
        assert fail(sprayer, f"user{number}").status_code == 401
    refused = login(sprayer, "school")
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "900"
    assert login(client_at(app, "10.0.0.100"), "school").status_code == 302
    users.clock.advance(minutes=15)
    assert login(sprayer, "school").status_code == 302


def test_the_password_page_answers_429_and_does_not_lock_the_login(app):
    client = logged_in(app, "school")
    token = csrf(client, "/password")
    wrong = {"current": "not-my-password", "new": "a-much-longer-one", "again": "a-much-longer-one",
             "csrf_token": token}
    for _ in range(5):
        response = client.post("/password", data=wrong)
        assert response.status_code == 422 and "Текущий пароль неверен" in response.get_data(as_text=True)
    limited = client.post("/password", data={**wrong, "current": PASSWORD})
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "900"
    assert "Слишком много неудачных попыток ввода текущего пароля. Повторите через 15 мин." in \
        limited.get_data(as_text=True)
    # the login is not held up, from this address or any
    assert login(client_at(app), "school").status_code == 302
    assert login(client_at(app, "10.0.0.3"), "school").status_code == 302
    # after the window, the change goes through
    app.extensions["kurator"].clock.advance(minutes=15)
    assert client.post("/password", data={**wrong, "current": PASSWORD}).status_code == 302


def test_an_unknown_user_backs_off_like_a_known_one(app):
    client = client_at(app, "10.0.0.66")
    for _ in range(5):
        assert fail(client, "nobody").status_code == 401
    assert fail(client, "nobody").status_code == 429


# -- the client address behind a reverse proxy -------------------------------------------------------------------

def last_login_ip(engine) -> str:
    with engine.db.session() as db:
        return db.scalar(select(AuditEvent.ip).where(AuditEvent.action.in_(("login", "login_failed")))
                         .order_by(AuditEvent.id.desc()).limit(1))


def test_x_forwarded_for_is_ignored_without_a_configured_proxy(app):
    engine = app.extensions["kurator"]
    client = client_at(app, "192.0.2.1", **{"X-Forwarded-For": "203.0.113.7"})
    login(client, "school")
    assert last_login_ip(engine) == "192.0.2.1"
    # so a forged header does not get an attacker out of the back-off
    for number in range(6):
        fail(client_at(app, "192.0.2.1", **{"X-Forwarded-For": f"203.0.113.{number}"}))
    assert fail(client_at(app, "192.0.2.1", **{"X-Forwarded-For": "203.0.113.99"})).status_code == 429


def test_x_forwarded_for_gives_the_client_behind_the_configured_proxies(users):
    app = build(users, PROXY_COUNT=1)
    proxy = "192.0.2.1"
    login(client_at(app, proxy, **{"X-Forwarded-For": "203.0.113.7"}), "school")
    assert last_login_ip(users) == "203.0.113.7"
    # only the entry the trusted proxy added counts, not what the client put before it
    login(client_at(app, proxy, **{"X-Forwarded-For": "198.51.100.1, 203.0.113.8"}), "school")
    assert last_login_ip(users) == "203.0.113.8"
    # two clients behind the one proxy back off separately
    attacker = client_at(app, proxy, **{"X-Forwarded-For": "203.0.113.66"})
    for _ in range(5):
        fail(attacker)
    assert fail(attacker).status_code == 429
    assert login(client_at(app, proxy, **{"X-Forwarded-For": "203.0.113.9"}), "school").status_code == 302


def test_the_proxy_count_comes_from_the_environment(monkeypatch, tmp_path):
    from webapp import config

    monkeypatch.setenv("KURATOR_SECRET_KEY", "x")
    monkeypatch.delenv("KURATOR_PROXY_COUNT", raising=False)
    assert config.load(tmp_path)["PROXY_COUNT"] == 0
    monkeypatch.setenv("KURATOR_PROXY_COUNT", "2")
    assert config.load(tmp_path)["PROXY_COUNT"] == 2
    monkeypatch.setenv("KURATOR_PROXY_COUNT", "one")
    with pytest.raises(ValueError, match="KURATOR_PROXY_COUNT"):
        config.load(tmp_path)


# -- the request's user in one statement -------------------------------------------------------------------------

def test_a_requests_user_is_read_with_its_session_or_token_in_one_statement(app, users):
    """Every page and API call starts by finding its user: the credential, the user, the agency, its municipality
    and the roles are one SELECT (no per-request lazy loads), and the user is the same as read through the ORM."""
    kurator = app.extensions["kurator"]
    secret = kurator.identity.open_session(user_id(users, "school"), "127.0.0.1", timedelta(hours=8))
    token = token_of(app.test_client(), "school")
    with app.test_request_context("/inbox"):
        with kurator.db.session() as db:
            expected = CurrentUser.from_row(db.scalar(select(User).where(User.username == "school")))
        with statements_sent(users) as seen:
            by_session = auth.user_from_session(secret)
        assert by_session == expected
        assert len([s for s in seen if s.lstrip().upper().startswith("SELECT")]) == 1, seen
    with app.test_request_context("/api/v1/tasks", environ_base={"REMOTE_ADDR": "127.0.0.1"}):
        auth.user_from_token(token["token"])  # the first use is recorded (an UPDATE of the token row)
        with statements_sent(users) as seen:
            by_token = auth.user_from_token(token["token"])
        assert by_token == expected
        assert len(seen) == 1 and seen[0].lstrip().upper().startswith("SELECT"), seen
    assert expected.agency_kind == "education" and expected.municipality == "Йошкар-Ола"
    assert expected.roles == frozenset({"education", "agency_specialist"})


def test_an_inactive_users_session_and_token_are_refused(app, users):
    browser = logged_in(app, "school")
    token = token_of(app.test_client(), "school")
    with users.db.session() as db:
        db.scalar(select(User).where(User.username == "school")).is_active = False  # straight in the table
    assert is_login_redirect(browser.get("/inbox"))
    assert app.test_client().get("/api/v1/tasks", headers=bearer(token)).status_code == 401
