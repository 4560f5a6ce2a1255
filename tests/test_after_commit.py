"""`Database.after_commit`: what a transaction asks to run once it has committed runs then, once, and only for the
parts of it that stand: a savepoint released is not the commit, and a savepoint rolled back takes back only what
was asked for inside it."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from engine.models import Municipality


@pytest.fixture
def db(engine):
    engine.identity.add_agency("КДН", "Йошкар-Ола", kind="commission")  # a municipality row to write
    return engine.db


def _write(session, name: str) -> None:
    session.execute(update(Municipality).where(Municipality.name == "Йошкар-Ола").values(timezone=name))


def test_callbacks_run_once_after_the_commit_and_never_after_a_rollback(db):
    ran = []
    with db.session() as session:
        _write(session, "Europe/Moscow")
        db.after_commit(session, lambda: ran.append("committed"))
        assert ran == []
    assert ran == ["committed"]
    try:
        with db.session() as session:
            _write(session, "Europe/Moscow")
            db.after_commit(session, lambda: ran.append("rolled back"))
            raise RuntimeError("refused")
    except RuntimeError:
        pass
    assert ran == ["committed"]


def test_a_savepoint_released_waits_for_the_commit_and_one_rolled_back_takes_back_only_its_own(db):
    ran = []
    with db.session() as session:
        _write(session, "Europe/Moscow")
        db.after_commit(session, lambda: ran.append("before the savepoints"))
        kept = session.begin_nested()
        _write(session, "Europe/Moscow")
        db.after_commit(session, lambda: ran.append("in the savepoint released"))
        kept.commit()
        assert ran == []  # released, not committed
        dropped = session.begin_nested()
        _write(session, "Europe/Moscow")
        db.after_commit(session, lambda: ran.append("in the savepoint rolled back"))
        dropped.rollback()
        db.after_commit(session, lambda: ran.append("after the savepoints"))
        assert ran == []
    assert ran == ["before the savepoints", "in the savepoint released", "after the savepoints"]
