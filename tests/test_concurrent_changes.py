"""A change that met another one in the database (PostgreSQL's deadlock or serialization failure, SQLite's lock held
past its busy timeout) is a `Conflict` to try again: never a 500, never an incident."""

from __future__ import annotations

import sqlite3
import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from engine.db import CONCURRENT_CHANGE, is_concurrent_change
from engine.errors import Conflict

from .support import clear
from .test_web_tasks import app, signed_in  # noqa: F401 - the fixture


class Refusal(Exception):
    """A driver error as psycopg raises it: the SQLSTATE in `sqlstate`."""

    def __init__(self, sqlstate: str):
        super().__init__(f"refused ({sqlstate})")
        self.sqlstate = sqlstate


def concurrent_refusal() -> OperationalError:
    return OperationalError("UPDATE process_instance …", {}, Refusal("40P01"))


def test_the_errors_of_a_change_that_met_another_are_told_apart():
    assert is_concurrent_change(OperationalError("UPDATE", {}, Refusal("40P01")))  # deadlock_detected
    assert is_concurrent_change(OperationalError("UPDATE", {}, Refusal("40001")))  # serialization_failure
    assert is_concurrent_change(OperationalError("UPDATE", {}, sqlite3.OperationalError("database is locked")))
    assert not is_concurrent_change(OperationalError("UPDATE", {}, Refusal("57014")))  # query_canceled
    assert not is_concurrent_change(OperationalError("UPDATE", {}, sqlite3.OperationalError("disk I/O error")))
    assert not is_concurrent_change(IntegrityError("INSERT", {}, Refusal("23505")))


def test_two_transactions_waiting_for_each_other_end_in_one_conflict_and_one_commit(database):
    """PostgreSQL stops a deadlock by refusing one of the two transactions: that one is a Conflict with a message
    for the user, and nothing of it is saved; the other commits."""
    if not database.is_postgresql:
        pytest.skip("SQLite has one writer at a time: no deadlock")
    clear(database)
    with database.engine.begin() as connection:
        connection.execute(text("INSERT INTO municipality (id, name, timezone) VALUES (1, 'A', 'Europe/Moscow'), "
                                "(2, 'B', 'Europe/Moscow')"))
    both_hold_one = threading.Barrier(2, timeout=20)
    outcome: dict[str, object] = {}

    def change(name: str, first: int, second: int) -> None:
        try:
            with database.session() as session:
                session.execute(text("UPDATE municipality SET name = :name || id WHERE id = :id"),
                                {"name": name, "id": first})
                both_hold_one.wait()
                session.execute(text("UPDATE municipality SET name = :name || id WHERE id = :id"),
                                {"name": name, "id": second})
            outcome[name] = "committed"
        except Exception as exc:  # noqa: BLE001 - looked at below
            outcome[name] = exc

    threads = [threading.Thread(target=change, args=("x", 1, 2)), threading.Thread(target=change, args=("y", 2, 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcome) == ["x", "y"]
    refused = [value for value in outcome.values() if value != "committed"]
    assert len(refused) == 1 and isinstance(refused[0], Conflict)
    assert refused[0].message == CONCURRENT_CHANGE
    winner = next(name for name, value in outcome.items() if value == "committed")
    with database.engine.connect() as connection:
        assert connection.execute(text("SELECT name FROM municipality ORDER BY id")).scalars().all() == \
            [f"{winner}1", f"{winner}2"]


def test_a_page_or_api_call_that_met_another_change_answers_409_and_says_to_try_again(app, monkeypatch):  # noqa: F811
    client = signed_in(app, "secretary")
    engine = app.extensions["kurator"]
    token = app.test_client().post("/api/v1/auth/token",
                                   json={"username": "secretary", "password": "demo-password"}).get_json()["token"]

    def refused(*_args, **_kwargs):
        raise concurrent_refusal()

    monkeypatch.setattr(engine.identity, "session_user", refused)
    monkeypatch.setattr(engine.identity, "token_holder", refused)
    page = client.get("/inbox")
    assert page.status_code == 409 and "обновите страницу и повторите" in page.get_data(as_text=True)
    api = app.test_client().get("/api/v1/tasks", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 409 and api.get_json()["message"] == CONCURRENT_CHANGE
