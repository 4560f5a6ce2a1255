"""The password policy (`engine.identity.password_problem`): one rule for every path that sets a password — the
administrator's new user and reset, the user's own change, the identity service and so the command line — and the
demo's shared short password set around it on purpose."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from engine.errors import InvalidInput
from engine.identity import COMMON_PASSWORDS, PASSWORD_RULES, password_error, password_problem
from engine.models import User

from .test_identity_admin import cli, people  # noqa: F401 - the fixtures
from .test_web_admin import admin, app, field_errors, post, user_row  # noqa: F401 - the fixtures
from .test_web_auth import HASH, csrf, login


@pytest.mark.parametrize("password,username,problem", [
    ("short", None, "short"),
    ("x" * 201, None, "long"),
    ("teacher2teacher2", "teacher2", "login"),
    ("My-Teacher2-pass", "TEACHER2", "login"),  # case-insensitive
    ("1111111111", None, "repeated"),
    ("1212121212", None, "repeated"),
    ("abcabcabcabc", None, "repeated"),
    ("qwertyuiop", None, "sequence"),
    ("QWERTYUIOP", None, "sequence"),
    ("1234567890", None, "sequence"),
    ("0987654321", None, "sequence"),
    ("йцукенгшщз", None, "sequence"),
    ("qwerty123456", None, "sequence"),  # runs one after another
    ("1q2w3e4r5t6y", None, "sequence"),  # the keyboard's columns
    ("asdfasdfasdf", None, "sequence"),
    ("abcdefghijk", None, "sequence"),
    ("password2024", None, "common"),  # a common password with digits added
    ("Password!!!", None, "common"),
    ("пароль12345", None, "common"),
    ("administrator", None, "common"),
    ("Kurator2026!", None, "common"),
])
def test_a_weak_password_is_refused_with_its_rule(password, username, problem):
    assert password_problem(password, username) == problem
    assert password_error(password, username) == PASSWORD_RULES[problem][1]


@pytest.mark.parametrize("password,username", [
    ("brand-new-pass", "school"), ("a-much-longer-one", "school"), ("secret-password-1", "petrov"),
    ("Kx9#mQ2!vL", None), ("correct horse battery staple", "admin"), ("Ёлка-в-лесу-2026", "ab"),
    ("abcd1abcd2", "ab"),  # a login shorter than 3 characters is not looked for
])
def test_a_good_password_is_accepted(password, username):
    assert password_problem(password, username) is None


def test_the_built_in_list_is_short_and_in_lower_case():
    assert 50 <= len(COMMON_PASSWORDS) <= 100
    assert all(word == word.lower() for word in COMMON_PASSWORDS)
    assert {"password", "qwerty123", "123456789", "пароль"} <= COMMON_PASSWORDS


def test_the_identity_service_applies_the_policy(engine):
    identity = engine.identity
    identity.add_agency("КДНиЗП", "Йошкар-Ола", kind="commission")
    with pytest.raises(InvalidInput) as failed:
        identity.add_user("teacher2", ["manager"], password="teacher2teacher2")
    assert failed.value.errors == {"password": "login"}
    user_id = identity.add_user("teacher2", ["manager"], password="Kx9#mQ2!vL")
    for bad, code in (("1111111111", "repeated"), ("qwertyuiop", "sequence"), ("qwerty123!", "common"),
                      ("teacher2teacher2", "login"), ("short", "length")):
        with pytest.raises(InvalidInput) as failed:
            identity.set_password(user_id, bad)
        assert failed.value.errors == {"password": code}
    with engine.db.session() as db:
        stored = db.scalar(select(User.password_hash).where(User.id == user_id))
    assert PasswordHasher().verify(stored, "Kx9#mQ2!vL")


def test_the_command_line_refuses_a_weak_password(people, cli):  # noqa: F811
    failed = cli("users", "password", "secretary", input="qwertyuiop\nqwertyuiop\n", ok=False)
    assert failed.exit_code == 1 and "run of keys" in failed.output and "Traceback" not in failed.output
    failed = cli("users", "add", "newcomer", "--role", "curator", "--password", input="1111111111\n1111111111\n",
                 ok=False)
    assert failed.exit_code == 1 and "repeated" in failed.output
    with people.db.session() as db:
        assert db.scalar(select(User.id).where(User.username == "newcomer")) is None


# -- the web forms: the three paths of the brief, with Russian messages at the field ----------------------------------

NEW_USER = {"username": "petrov", "full_name": "Петров Петр Петрович", "roles": ["police"], "agency": ""}


def test_an_administrator_cannot_create_a_user_with_a_trivial_password(app, admin):  # noqa: F811
    response = post(admin, "/admin/users/new", {**NEW_USER, "password": "qwertyuiop", "password2": "qwertyuiop"},
                    "/admin/users/new")
    assert response.status_code == 422
    assert field_errors(response) == [PASSWORD_RULES["sequence"][1]]
    assert "рядом клавиш" in field_errors(response)[0]
    assert user_row(app, "petrov") is None
    response = post(admin, "/admin/users/new", {**NEW_USER, "password": "Petrov-2026", "password2": "Petrov-2026"},
                    "/admin/users/new")
    assert response.status_code == 422 and field_errors(response) == ["Пароль не должен содержать имя пользователя"]


def test_an_administrators_reset_cannot_contain_the_login(app, admin):  # noqa: F811
    engine = app.extensions["kurator"]
    engine.identity.add_user("teacher2", ["manager"], agency="Школа № 5", password_hash=HASH)
    user_id = user_row(app, "teacher2").id
    response = post(admin, f"/admin/users/{user_id}/password",
                    {"password": "teacher2teacher2", "password2": "teacher2teacher2"}, f"/admin/users/{user_id}")
    assert response.status_code == 422
    assert field_errors(response) == ["Пароль не должен содержать имя пользователя"]
    assert login(app.test_client(), "teacher2").status_code == 302  # the old password still works
    ok = post(admin, f"/admin/users/{user_id}/password", {"password": "Kx9#mQ2!vL", "password2": "Kx9#mQ2!vL"},
              f"/admin/users/{user_id}")
    assert ok.status_code == 302 and login(app.test_client(), "teacher2", "Kx9#mQ2!vL").status_code == 302


def test_a_user_cannot_change_their_password_to_a_trivial_one(app):  # noqa: F811
    client = app.test_client()
    assert login(client, "school").status_code == 302
    for weak, rule in (("1111111111", "repeated"), ("Пароль2026!", "common"), ("school-2026", "login")):
        response = client.post("/password", data={"current": "demo-password", "new": weak, "again": weak,
                                                  "csrf_token": csrf(client, "/password")})
        assert response.status_code == 422, weak
        assert PASSWORD_RULES[rule][1] in response.get_data(as_text=True), weak
    assert login(app.test_client(), "school").status_code == 302  # unchanged


def test_the_demo_keeps_its_short_shared_password(engine):
    """`kurator demo` stores the hash of «demo» itself: the policy is for passwords people choose, not the demo's."""
    from sop.demo import DEMO_PASSWORD, seed

    assert password_problem(DEMO_PASSWORD) == "short"
    seed(engine)
    with engine.db.session() as db:
        stored = db.scalar(select(User.password_hash).where(User.username == "manager"))
    assert PasswordHasher().verify(stored, DEMO_PASSWORD)
