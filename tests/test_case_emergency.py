"""The open emergencies kept per case (`sop_case_emergency`, sop.emergencies): every change that opens or closes an
emergency leaves the case's row equal to what the instances and open tasks say, and the red flag reads only those
rows."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select, text, update

from engine.models import HumanTask, ProcessInstance
from sop import emergencies
from sop.models import Case, CaseEmergency

from .support import postgres_url
from .test_web_emergency import (
    DOER,
    EMERGENCY_DATA,
    Statements,
    _called_threat,
    _municipality,
    _threats,
    app,  # noqa: F401 (the fixture)
    emergency_instance,
    finish_emergency,
)


def stored(engine) -> list[tuple]:
    with engine.db.session() as db:
        return db.execute(select(CaseEmergency.case_id, CaseEmergency.municipality_id, CaseEmergency.since)
                          .order_by(CaseEmergency.case_id)).all()


def computed(engine) -> list[tuple]:
    """What the instances and open tasks say now, worked out afresh."""
    with engine.db.session() as db:
        since = emergencies._computed_since(db, None)
        return db.execute(select(since.c.case_id, Case.municipality_id, since.c.since)
                          .join(Case, Case.id == since.c.case_id).order_by(since.c.case_id)).all()


def test_the_rows_follow_every_emergency_as_it_opens_goes_on_and_ends(app):  # noqa: F811
    engine = app.extensions["kurator"]
    assert stored(engine) == computed(engine) == []
    [own_case] = _threats(engine, 1)  # an emergency instance of its own
    called_case, case_instance = _called_threat(engine, 1)  # an emergency called inside the case process
    rows = stored(engine)
    assert [row[0] for row in rows] == sorted([own_case, called_case]) and rows == computed(engine)
    engine.clock.advance(hours=2)
    first = [t for t in engine.tasks.query(instance_id=case_instance) if t["element_id"] in EMERGENCY_DATA][0]
    engine.tasks.complete(first["id"], DOER[first["candidate_roles"][0]], EMERGENCY_DATA[first["element_id"]])
    assert stored(engine) == rows  # one step of three done: the emergency goes on from the same start
    finish_emergency(engine, case_instance)
    assert [row[0] for row in stored(engine)] == [own_case] and stored(engine) == computed(engine)
    finish_emergency(engine, emergency_instance(engine))
    assert stored(engine) == computed(engine) == []


def test_a_case_whose_emergency_ended_outside_the_domain_is_put_right_by_its_next_change(app):  # noqa: F811
    """The rows are derived: a change noted for the case recomputes them from what is there, whatever wrote it."""
    engine = app.extensions["kurator"]
    [case_id] = _threats(engine, 1)
    instance_id = emergency_instance(engine)
    with engine.db.session() as db:
        db.execute(update(ProcessInstance).where(ProcessInstance.id == instance_id).values(status="completed"))
        db.execute(update(HumanTask).where(HumanTask.instance_id == instance_id).values(status="cancelled"))
    assert [row[0] for row in stored(engine)] == [case_id]
    with engine.db.session() as db:
        emergencies.touch(db, instance_id)
    assert stored(engine) == computed(engine) == []


def test_the_flag_reads_only_the_rows_of_the_municipality(app):  # noqa: F811
    engine = app.extensions["kurator"]
    case_ids = _threats(engine, 3)
    _called_threat(engine, 7)
    municipality = _municipality(engine)
    with engine.db.session() as db, Statements(engine) as sql:
        flag = emergencies.emergency_flag(db, municipality, shown=2, case_id=case_ids[1])
    assert flag.this.case_id == case_ids[1] and [e.case_id for e in flag.others] == [case_ids[0], case_ids[2]]
    assert flag.more == 1
    assert [statement for statement, _params in sql.seen
            if "human_task" in statement or "process_instance" in statement] == []
    assert len(sql.seen) == 2  # the rows with their count, then the numbers and families of the cases named


@pytest.mark.skipif(not postgres_url(), reason="needs PostgreSQL (KURATOR_TEST_DATABASE_URL)")
def test_two_changes_of_one_case_committing_at_once_leave_no_stale_row(app):  # noqa: F811
    """Two transactions each close some of the open steps of one emergency; together they end it. Without the
    lock on the case, each would recompute before the other's commit, see the other's steps still open, and the
    case would keep its row after both commit."""
    engine = app.extensions["kurator"]
    case_id, case_instance = _called_threat(engine)
    steps = sorted(t["id"] for t in engine.tasks.query(instance_id=case_instance)
                   if t["element_id"] in EMERGENCY_DATA)
    assert len(steps) == 3 and [row[0] for row in stored(engine)] == [case_id]
    locked, go, done = threading.Event(), threading.Event(), threading.Event()

    def close(task_ids: list[str], first: bool) -> None:
        with engine.db.session() as db:
            db.execute(update(HumanTask).where(HumanTask.id.in_(task_ids)).values(status="cancelled"))
            emergencies.touch(db, case_instance)
            if first:
                emergencies.refresh(db, [case_id])  # takes the case's lock, held until this commits
                locked.set()
                go.wait(30)
        if not first:
            done.set()

    earlier = threading.Thread(target=close, args=(steps[:1], True))
    earlier.start()
    assert locked.wait(30)
    later = threading.Thread(target=close, args=(steps[1:], False))
    later.start()
    deadline = time.monotonic() + 30
    while not _waiting_for_a_lock(engine) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not done.is_set()  # the later change waits for the earlier one's commit
    go.set()
    earlier.join(30)
    later.join(30)
    assert done.is_set()
    assert stored(engine) == computed(engine) == []


def _waiting_for_a_lock(engine) -> bool:
    with engine.db.engine.connect() as connection:
        return bool(connection.scalar(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                           "AND NOT granted")))
