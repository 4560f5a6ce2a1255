"""User administration in the identity service (issue 12): editing, (de)activating, setting a password and a
municipality's time zone are engine verbs used by the web administration and the command line alike, and every
password is hashed by one argon2 hasher."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

import engine.identity as identity_module
from engine.cli import main
from engine.errors import InvalidInput, NotFound
from engine.identity import PASSWORD_HASHER
from engine.models import Agency, ApiToken, AuditEvent, Municipality, User, UserSession

ROOT = Path(__file__).resolve().parent.parent
IDLE = timedelta(hours=8)


@pytest.fixture
def people(engine):
    identity = engine.identity
    identity.add_agency("КДНиЗП", "Йошкар-Ола", kind="commission", timezone="Europe/Moscow")
    identity.add_agency("Школа № 5", "Йошкар-Ола", kind="education")
    identity.add_agency("Школа в Екатеринбурге", "Екатеринбург", timezone="Asia/Yekaterinburg")
    identity.add_user("secretary", ["commission_secretary"], agency="КДНиЗП", full_name="Иванова И. И.",
                      password="first-password-1")
    return engine


def _row(engine, username: str) -> User:
    with engine.db.session() as db:
        user = db.scalar(select(User).where(User.username == username))
        db.expunge(user)
        return user


def test_update_user_changes_roles_agency_and_name_and_says_what_changed(people):
    identity = people.identity
    user_id = identity.user_id("secretary")
    school = identity.agency_id("Школа № 5")
    changes = identity.update_user(user_id, "Иванова Ирина Ивановна", ["curator", "education"], school)
    assert changes == {"full_name": ["Иванова И. И.", "Иванова Ирина Ивановна"],
                       "roles": [["commission_secretary"], ["curator", "education"]],
                       "agency_id": [identity.agency_id("КДНиЗП"), school]}
    assert identity.user_record(user_id) == {"id": user_id, "username": "secretary",
                                             "full_name": "Иванова Ирина Ивановна",
                                             "roles": ["curator", "education"], "agency_id": school, "active": True}
    assert identity.update_user(user_id, "Иванова Ирина Ивановна", ["education", "curator"], school) == {}


def test_update_user_refuses_unknown_roles_and_agencies_and_changes_nothing(people):
    identity = people.identity
    user_id = identity.user_id("secretary")
    before = identity.user_record(user_id)
    with pytest.raises(InvalidInput) as failed:
        identity.update_user(user_id, "Другое имя", ["wizard"], None)
    assert failed.value.errors == {"roles": "unknown role"} and "wizard" in failed.value.message
    with pytest.raises(InvalidInput) as failed:
        identity.update_user(user_id, "Другое имя", ["curator"], 99999)
    assert failed.value.errors == {"agency": "not found"}
    with pytest.raises(InvalidInput) as failed:
        identity.update_user(user_id, "Другое имя", [], None)
    assert failed.value.errors == {"roles": "required"}
    with pytest.raises(NotFound):
        identity.update_user(99999, "x", ["curator"], None)
    assert identity.user_record(user_id) == before


def test_set_password_hashes_with_the_one_hasher_and_ends_other_sessions_and_tokens(people):
    identity = people.identity
    user_id = identity.user_id("secretary")
    kept = identity.open_session(user_id, "10.0.0.1", IDLE)
    other = identity.open_session(user_id, "10.0.0.2", IDLE)
    token = identity.issue_token(user_id, "10.0.0.3", timedelta(hours=1))["token"]
    assert identity.set_password(user_id, "second-password-2", keep_secret=kept) == {"sessions": 1, "tokens": 1}
    assert PASSWORD_HASHER.verify(_row(people, "secretary").password_hash, "second-password-2")
    assert identity.session_user_id(kept, IDLE) == user_id
    assert identity.session_user_id(other, IDLE) is None and identity.token_user(token) is None


def test_a_bad_password_is_refused_and_changes_nothing(people):
    identity = people.identity
    user_id = identity.user_id("secretary")
    session_secret = identity.open_session(user_id, None, IDLE)
    before = _row(people, "secretary").password_hash
    for bad in ("short", "x" * 201):
        with pytest.raises(InvalidInput) as failed:
            identity.set_password(user_id, bad)
        assert failed.value.errors == {"password": "length"}
    with pytest.raises(InvalidInput):
        identity.add_user("newcomer", ["curator"], password="short")
    assert _row(people, "secretary").password_hash == before
    assert identity.session_user_id(session_secret, IDLE) == user_id
    with pytest.raises(NotFound):
        identity.set_password(99999, "long-enough-password")


def test_deactivation_ends_sessions_and_tokens_and_activation_brings_the_login_back(people):
    identity = people.identity
    user_id = identity.user_id("secretary")
    secret = identity.open_session(user_id, None, IDLE)
    identity.issue_token(user_id, None, timedelta(hours=1))
    assert identity.set_active(user_id, False) is True
    assert identity.set_active(user_id, False) is False
    with people.db.session() as db:
        assert db.scalars(select(UserSession).where(UserSession.user_id == user_id)).all() == []
        assert db.scalars(select(ApiToken).where(ApiToken.user_id == user_id)).all() == []
    assert identity.session_user_id(secret, IDLE) is None
    with pytest.raises(NotFound):
        identity.get_user("secretary")
    assert identity.set_active(user_id, True) is True
    assert identity.get_user("secretary").username == "secretary"


def test_municipality_time_zone_with_and_without_its_agencies(people):
    identity = people.identity
    city = identity.municipality_id("Йошкар-Ола")
    assert identity.set_municipality_timezone(city, "Europe/Samara") == ("Europe/Moscow", 0)
    assert identity.set_municipality_timezone(city, "Asia/Omsk", with_agencies=True) == ("Europe/Samara", 0)
    assert identity.set_municipality_timezone(city, "Europe/Moscow", with_agencies=True) == ("Asia/Omsk", 0)
    with people.db.session() as db:
        db.execute(Agency.__table__.update().values(timezone="Europe/Moscow"))
    assert identity.set_municipality_timezone(city, "Europe/Samara", with_agencies=True) == ("Europe/Moscow", 2)
    with pytest.raises(InvalidInput) as failed:
        identity.set_municipality_timezone(city, "Mars/Olympus", with_agencies=True)
    assert failed.value.errors == {"timezone": "unknown time zone"}
    with people.db.session() as db:
        assert db.get(Municipality, city).timezone == "Europe/Samara"
        zones = dict(db.execute(select(Agency.name, Agency.timezone)).all())
    assert zones == {"КДНиЗП": "Europe/Samara", "Школа № 5": "Europe/Samara",
                     "Школа в Екатеринбурге": "Europe/Moscow"}
    with pytest.raises(NotFound):
        identity.set_municipality_timezone(99999, "Europe/Moscow")


def test_one_password_hasher_in_the_code():
    builders = [path.relative_to(ROOT).as_posix()
                for folder in ("engine", "webapp", "sop")
                for path in (ROOT / folder).rglob("*.py")
                if re.search(r"PasswordHasher\(", path.read_text(encoding="utf-8"))]
    assert builders == ["engine/identity.py"]
    from webapp import auth

    assert auth._hasher is identity_module.PASSWORD_HASHER


@pytest.fixture
def cli(people):
    runner = CliRunner()
    url = people.db.engine.url
    schema = getattr(people.db, "test_schema", None)
    if schema:  # on PostgreSQL the command works in the test's private schema, as the engine fixture does
        url = url.update_query_dict({"options": f"-csearch_path={schema}"})
    url = url.render_as_string(hide_password=False)

    def run(*args, input=None, ok=True):
        result = runner.invoke(main, ["--database-url", url, *args], input=input, catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return run


def test_the_command_line_administers_users_through_the_same_service(people, cli):
    identity = people.identity
    user_id = identity.user_id("secretary")
    other = identity.open_session(user_id, None, IDLE)
    out = cli("users", "password", "secretary", input="third-password-3\nthird-password-3\n").output
    assert "sessions ended: 1, tokens revoked: 0" in out
    assert PASSWORD_HASHER.verify(_row(people, "secretary").password_hash, "third-password-3")
    assert identity.session_user_id(other, IDLE) is None
    failed = cli("users", "password", "secretary", input="short\nshort\n", ok=False)
    assert failed.exit_code == 1 and "10 to 200 characters" in failed.output and "Traceback" not in failed.output

    assert "deactivated" in cli("users", "deactivate", "secretary").output
    assert _row(people, "secretary").is_active is False
    assert "already inactive" in cli("users", "deactivate", "secretary").output
    cli("users", "activate", "secretary")
    assert _row(people, "secretary").is_active is True

    out = cli("users", "update", "secretary", "--role", "curator", "--agency", "none").output
    assert "agency_id, roles changed" in out
    assert identity.user_record(user_id)["roles"] == ["curator"] and identity.user_record(user_id)["agency_id"] is None
    assert identity.user_record(user_id)["full_name"] == "Иванова И. И."
    failed = cli("users", "update", "secretary", "--role", "wizard", ok=False)
    assert "Unknown role(s) wizard" in failed.output and identity.user_record(user_id)["roles"] == ["curator"]
    assert "No user 'ghost'" in cli("users", "deactivate", "ghost", ok=False).output

    cli("users", "add", "newcomer", "--role", "curator", "--password", input="fourth-password\nfourth-password\n")
    assert PASSWORD_HASHER.verify(_row(people, "newcomer").password_hash, "fourth-password")

    out = cli("municipalities", "timezone", "Йошкар-Ола", "Europe/Samara", "--with-agencies").output
    assert "Europe/Moscow -> Europe/Samara (agencies moved: 2)" in out
    with people.db.session() as db:
        actions = db.scalars(select(AuditEvent.action).where(AuditEvent.actor == "cli").order_by(AuditEvent.id)).all()
    assert actions == ["password_reset", "user_deactivated", "user_activated", "user_updated", "user_created",
                       "municipality_timezone_changed"]
