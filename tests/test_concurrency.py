"""Concurrency on PostgreSQL: one task completed by two processes at once, four schedulers over one set of timers."""

from __future__ import annotations

import multiprocessing as mp

import pytest
from sqlalchemy import func, select

from engine import Conflict, ProcessEngine
from engine.clock import FrozenClock
from engine.models import HistoryEvent, HumanTask

from .support import open_database, postgres_url

pytestmark = pytest.mark.skipif(not postgres_url(), reason="needs PostgreSQL (KURATOR_TEST_DATABASE_URL)")


def _engine(schema: str, at: str) -> ProcessEngine:
    return ProcessEngine(open_database(postgres_url(), schema), FrozenClock(at))


def _complete(schema, at, task_id, user, barrier, results):
    engine = _engine(schema, at)
    barrier.wait()
    try:
        engine.tasks.complete(task_id, user, {"sop_confirmed": False, "danger_level": "low"})
        results.put("ok")
    except Conflict as exc:
        results.put(f"conflict: {exc.message}")
    except Exception as exc:  # pragma: no cover - reported to the test
        results.put(f"error: {exc!r}")


def _sweep(schema, at, barrier, results):
    engine = _engine(schema, at)
    barrier.wait()
    try:
        outcome = engine.management.sweep(batch_size=5)
        results.put(("ok", outcome.timers_fired, len(outcome.incidents)))
    except Exception as exc:  # pragma: no cover
        results.put(("error", repr(exc), 0))


def _run(target, args_list):
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(args_list))
    results = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, barrier, results)) for args in args_list]
    for p in procs:
        p.start()
    out = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    return out


def test_two_processes_complete_the_same_task(deployed, database):
    engine = deployed
    at = engine.clock.now().isoformat()
    instance_id = engine.runtime.start("lifecycle", {"received": "2025-10-30"})
    task = engine.tasks.query(instance_id=instance_id)[0]
    results = _run(_complete, [(database.test_schema, at, task["id"], "secretary"),
                               (database.test_schema, at, task["id"], "secretary2")])
    assert sorted(r.split(":")[0] for r in results) == ["conflict", "ok"], results
    completed = engine.tasks.query(instance_id=instance_id, status="completed")
    assert len(completed) == 1
    assert [e["type"] for e in engine.history.for_instance(instance_id)].count("task_completed") == 1


def test_four_schedulers_fire_each_timer_once(deployed, database):
    engine = deployed
    count = 40
    ids = [engine.runtime.start("lifecycle", {"received": "2025-10-30"}) for _ in range(count)]
    after_deadline = "2025-11-08T12:00:00+03:00"
    results = _run(_sweep, [(database.test_schema, after_deadline)] * 4)
    assert all(r[0] == "ok" for r in results), results
    assert sum(r[1] for r in results) == count
    with engine.db.session() as session:
        fired = session.scalar(select(func.count()).select_from(HistoryEvent)
                               .where(HistoryEvent.event_type == "timer_fired"))
        escalations = session.scalars(select(HumanTask.instance_id)
                                      .where(HumanTask.element_id == "escalate")).all()
        overdue = session.scalar(select(func.count()).select_from(HistoryEvent)
                                 .where(HistoryEvent.event_type == "task_overdue"))
    assert fired == count
    assert sorted(escalations) == sorted(ids)
    assert overdue == count
