"""«Администрирование»: users, roles, agencies, municipalities and calendar overrides — for administrators only, every
form validated (422, input kept, nothing saved), every change audited without passwords."""

from __future__ import annotations

import json
import re
from datetime import date

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from engine.models import Agency, Municipality, Role, User
from webapp import create_app

from .test_web_auth import HASH, csrf, login


@pytest.fixture
def app(engine):
    engine.identity.add_agency("КДНиЗП", "Йошкар-Ола", kind="commission")
    engine.identity.add_agency("Школа № 5", "Йошкар-Ола", kind="education")
    for username, roles, agency in (("admin", ["admin"], "КДНиЗП"), ("secretary", ["commission_secretary"], "КДНиЗП"),
                                    ("manager", ["manager"], "КДНиЗП"),
                                    ("school", ["education", "agency_specialist"], "Школа № 5")):
        engine.identity.add_user(username, roles, agency=agency, password_hash=HASH, full_name=username.title())
    return create_app({"TESTING": True, "SECRET_KEY": "test", "WTF_CSRF_ENABLED": True}, engine=engine)


@pytest.fixture
def admin(app):
    client = app.test_client()
    assert login(client, "admin").status_code == 302
    return client


def post(client, path, data, form_page=None):
    return client.post(path, data={**data, "csrf_token": csrf(client, form_page or path)})


def field_errors(response) -> list[str]:
    return re.findall(r'class="field-error"[^>]*>([^<]+)<', response.get_data(as_text=True))


def actions(app) -> list[str]:
    return [e["action"] for e in app.extensions["kurator"].audit.events()]


def user_row(app, username):
    with app.extensions["kurator"].db.session() as db:
        return db.scalar(select(User).where(User.username == username))


def agency_id(app, name):
    with app.extensions["kurator"].db.session() as db:
        return db.scalar(select(Agency.id).where(Agency.name == name))


PAGES = ["/admin", "/admin/users", "/admin/users/new", "/admin/users/1", "/admin/roles", "/admin/agencies",
         "/admin/municipalities", "/admin/calendar"]


@pytest.mark.parametrize("username", ["secretary", "manager", "school"])
def test_administration_is_for_administrators_only(app, username):
    client = app.test_client()
    login(client, username)
    for path in PAGES:
        assert client.get(path).status_code == 403, path
    token = csrf(client, "/password")
    assert client.post("/admin/roles", data={"code": "x_role", "title": "Икс", "csrf_token": token}).status_code == 403
    assert client.post("/admin/users/1/active", data={"active": "0", "csrf_token": token}).status_code == 403
    with app.extensions["kurator"].db.session() as db:
        assert db.get(Role, "x_role") is None and db.get(User, 1).is_active


def test_every_page_opens_for_the_administrator_and_anonymous_users_are_sent_to_login(app, admin):
    for path in PAGES:
        assert admin.get(path).status_code == 200, path
    response = app.test_client().get("/admin/users")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_the_list_shows_roles_and_agency(admin):
    page = admin.get("/admin/users").get_data(as_text=True)
    assert "Образование" in page and "Школа № 5" in page and "Ответственный секретарь КДНиЗП" in page


NEW_USER = {"username": "petrov", "full_name": "Петров Петр Петрович", "roles": ["police", "agency_specialist"],
            "password": "secret-password-1", "password2": "secret-password-1"}


def test_create_a_user_then_log_in_as_them(app, admin):
    response = post(admin, "/admin/users/new", {**NEW_USER, "agency": agency_id(app, "Школа № 5")})
    assert response.status_code == 302
    row = user_row(app, "petrov")
    assert row.full_name == "Петров Петр Петрович" and row.roles == ["agency_specialist", "police"]
    assert row.agency.name == "Школа № 5" and PasswordHasher().verify(row.password_hash, "secret-password-1")
    newcomer = app.test_client()
    assert login(newcomer, "petrov", "secret-password-1").status_code == 302
    assert newcomer.get("/inbox").status_code == 200
    event = next(e for e in app.extensions["kurator"].audit.events() if e["action"] == "user_created")
    assert event["actor"] == "admin" and event["details"]["username"] == "petrov"
    assert "secret-password-1" not in json.dumps(app.extensions["kurator"].audit.events(), ensure_ascii=False)


def test_a_validation_error_keeps_the_input_and_saves_nothing(app, admin):
    response = post(admin, "/admin/users/new", {**NEW_USER, "password": "short", "password2": "short",
                                                "agency": "999"}, "/admin/users/new")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'value="petrov"' in page and 'value="Петров Петр Петрович"' in page
    assert re.search(r'value="police"\s+checked', page) and not re.search(r'value="curator"\s+checked', page)
    assert field_errors(response) == ["Такого органа нет", "Пароль — не короче 10 символов"]
    assert "short" not in page  # passwords are never echoed back
    assert user_row(app, "petrov") is None and "user_created" not in actions(app)

    response = post(admin, "/admin/users/new", {**NEW_USER, "username": "school", "roles": []}, "/admin/users/new")
    assert response.status_code == 422
    assert field_errors(response) == ["Такое имя пользователя уже занято", "Выберите хотя бы одну роль"]
    response = post(admin, "/admin/users/new", {**NEW_USER, "password2": "another-password"}, "/admin/users/new")
    assert response.status_code == 422 and field_errors(response) == ["Пароли не совпадают"]
    assert user_row(app, "petrov") is None


def test_edit_a_user(app, admin):
    school = user_row(app, "school")
    commission = agency_id(app, "КДНиЗП")
    response = post(admin, f"/admin/users/{school.id}", {"full_name": "Лебедева Ирина", "roles": ["curator"],
                                                         "agency": commission})
    assert response.status_code == 302
    row = user_row(app, "school")
    assert (row.full_name, row.roles, row.agency_id) == ("Лебедева Ирина", ["curator"], commission)
    event = next(e for e in app.extensions["kurator"].audit.events() if e["action"] == "user_updated")
    assert event["details"]["changes"]["roles"] == [["agency_specialist", "education"], ["curator"]]

    bad = post(admin, f"/admin/users/{school.id}", {"full_name": "", "roles": ["curator"], "agency": ""})
    assert bad.status_code == 422 and field_errors(bad) == ["Укажите фамилию, имя и отчество"]
    assert user_row(app, "school").full_name == "Лебедева Ирина"
    me = user_row(app, "admin")
    bad = post(admin, f"/admin/users/{me.id}", {"full_name": "Админ", "roles": ["manager"], "agency": ""})
    assert bad.status_code == 422 and "Нельзя снять роль администратора с самого себя" in field_errors(bad)
    assert user_row(app, "admin").roles == ["admin"]


def test_deactivation_blocks_login_and_ends_the_session(app, admin):
    school = app.test_client()
    login(school, "school")
    assert school.get("/inbox").status_code == 200
    user_id = user_row(app, "school").id
    assert post(admin, f"/admin/users/{user_id}/active", {"active": "0"}, f"/admin/users/{user_id}").status_code == 302
    assert not user_row(app, "school").is_active
    assert school.get("/inbox").status_code == 302  # the open session no longer works
    assert login(app.test_client(), "school").status_code == 401
    assert post(admin, f"/admin/users/{user_id}/active", {"active": "1"}, f"/admin/users/{user_id}").status_code == 302
    assert login(app.test_client(), "school").status_code == 302
    assert actions(app)[:4] == ["login", "user_activated", "login_failed", "user_deactivated"]
    me = user_row(app, "admin").id
    response = post(admin, f"/admin/users/{me}/active", {"active": "0"}, f"/admin/users/{me}")
    assert response.status_code == 422 and user_row(app, "admin").is_active


def test_reset_password(app, admin):
    user_id = user_row(app, "school").id
    short = post(admin, f"/admin/users/{user_id}/password", {"password": "123", "password2": "123"},
                 f"/admin/users/{user_id}")
    assert short.status_code == 422 and field_errors(short) == ["Пароль — не короче 10 символов"]
    assert login(app.test_client(), "school").status_code == 302  # unchanged
    ok = post(admin, f"/admin/users/{user_id}/password", {"password": "brand-new-pass", "password2": "brand-new-pass"},
              f"/admin/users/{user_id}")
    assert ok.status_code == 302
    assert login(app.test_client(), "school", "brand-new-pass").status_code == 302
    events = app.extensions["kurator"].audit.events()
    assert any(e["action"] == "password_reset" for e in events)
    assert "brand-new-pass" not in json.dumps(events, ensure_ascii=False)


def test_add_a_role(app, admin):
    bad = post(admin, "/admin/roles", {"code": "Bad Code", "title": ""})
    assert bad.status_code == 422 and len(field_errors(bad)) == 2 and 'value="Bad Code"' in bad.get_data(True)
    duplicate = post(admin, "/admin/roles", {"code": "youth", "title": "Образование"})
    assert duplicate.status_code == 422 and field_errors(duplicate) == ["Роль с таким названием уже есть"]
    assert post(admin, "/admin/roles", {"code": "youth", "title": "Молодежная политика"}).status_code == 302
    engine = app.extensions["kurator"]
    assert engine.identity.roles()["youth"] == "Молодежная политика"
    assert engine.role_titles()["youth"] == "Молодежная политика"  # known to diagrams without a restart
    assert "role_created" in actions(app)


def test_add_an_agency_with_a_new_municipality_and_validate_the_time_zone(app, admin):
    form = {"name": "ОМВД Волжска", "kind": "police", "municipality": "new", "new_municipality": "Волжск",
            "timezone": "Europe/Mars"}
    bad = post(admin, "/admin/agencies", form)
    assert bad.status_code == 422 and field_errors(bad)[0].startswith("Неизвестный часовой пояс")
    assert 'value="ОМВД Волжска"' in bad.get_data(True) and 'value="Europe/Mars"' in bad.get_data(True)
    assert agency_id(app, "ОМВД Волжска") is None
    assert post(admin, "/admin/agencies", {**form, "timezone": "Europe/Samara"}).status_code == 302
    agencies = {a["name"]: a for a in app.extensions["kurator"].identity.agencies()}
    assert agencies["ОМВД Волжска"]["municipality"] == "Волжск"
    assert agencies["ОМВД Волжска"]["timezone"] == "Europe/Samara" and agencies["ОМВД Волжска"]["kind"] == "police"
    with app.extensions["kurator"].db.session() as db:
        muni = db.scalar(select(Municipality).where(Municipality.name == "Йошкар-Ола"))
    again = post(admin, "/admin/agencies", {"name": "Школа № 5", "kind": "education", "municipality": str(muni.id),
                                            "timezone": ""})
    assert again.status_code == 422 and field_errors(again) == ["Такой орган в этом муниципальном образовании уже есть"]
    assert "agency_created" in actions(app)


def test_change_a_municipality_time_zone(app, admin):
    with app.extensions["kurator"].db.session() as db:
        muni = db.scalar(select(Municipality).where(Municipality.name == "Йошкар-Ола"))
    path = f"/admin/municipalities/{muni.id}/timezone"
    bad = post(admin, path, {"timezone": "Moscow", "agencies": "1"}, "/admin/municipalities")
    assert bad.status_code == 422 and 'value="Moscow"' in bad.get_data(True)
    assert post(admin, path, {"timezone": "Asia/Yekaterinburg", "agencies": "1"},
                "/admin/municipalities").status_code == 302
    zones = {a["name"]: a["timezone"] for a in app.extensions["kurator"].identity.agencies()}
    assert zones == {"КДНиЗП": "Asia/Yekaterinburg", "Школа № 5": "Asia/Yekaterinburg"}
    event = next(e for e in app.extensions["kurator"].audit.events() if e["action"] == "municipality_timezone_changed")
    assert event["details"] == {"municipality": "Йошкар-Ола", "old": "Europe/Moscow", "new": "Asia/Yekaterinburg",
                                "agencies_updated": 2}


def test_a_calendar_override_changes_a_computed_due_date(app, admin):
    engine = app.extensions["kurator"]

    def due():  # five working days after 29.10.2025 (1.11.2025 is a working Saturday, 3-4.11 are days off)
        return engine.calendar.functions("Europe/Moscow")["working_days"](5, "2025-10-29").date()

    assert due() == date(2025, 11, 6)
    bad = post(admin, "/admin/calendar/overrides", {"day": "2025-02-30", "kind": "", "comment": "Указ"},
               "/admin/calendar")
    assert bad.status_code == 422 and field_errors(bad) == ["Дата в виде ГГГГ-ММ-ДД",
                                                            "Выберите: рабочий день или выходной"]
    assert 'value="Указ"' in bad.get_data(True) and engine.calendar.overrides() == []
    ok = post(admin, "/admin/calendar/overrides",
              {"day": "2025-11-05", "kind": "off", "comment": "Региональный праздник"}, "/admin/calendar")
    assert ok.status_code == 302 and due() == date(2025, 11, 7)
    assert "05.11.2025" in admin.get("/admin/calendar").get_data(as_text=True)
    assert post(admin, "/admin/calendar/overrides/2025-11-05/remove", {}, "/admin/calendar").status_code == 302
    assert due() == date(2025, 11, 6)

    assert not engine.calendar.calendar.covered(2031)
    assert post(admin, "/admin/calendar/years", {"year": "2031", "year_comment": "Постановление"},
                "/admin/calendar").status_code == 302
    assert engine.calendar.calendar.covered(2031)
    again = post(admin, "/admin/calendar/years", {"year": "2031"}, "/admin/calendar")
    assert again.status_code == 422 and field_errors(again) == ["Этот год уже объявлен заполненным"]
    assert {"calendar_override_set", "calendar_override_removed", "calendar_year_declared"} <= set(actions(app))
    overview = admin.get("/admin").get_data(as_text=True)
    assert "Год календаря объявлен заполненным" in overview and "Удалено исключение календаря" in overview
