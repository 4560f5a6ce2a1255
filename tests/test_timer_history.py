"""Every timer that fires is in history once, whatever change fired it: the scheduler's sweep, a user's completion
whose engine steps reach (or refresh) a timer already due, or the start itself."""

from __future__ import annotations

import pytest

from .support import DIAGRAMS

START = "2025-10-30T09:00:00+03:00"
DEADLINE = "2025-10-31T09:00:00+03:00"
LATE = "2025-11-20T09:00:00+03:00"


@pytest.fixture
def timers(engine):
    engine.repository.deploy([DIAGRAMS / "due_timers.bpmn"], deployed_by="tester")
    engine.identity.add_user("secretary", ["commission_secretary"])
    return engine


def fired(engine, instance_id: int) -> list[tuple[str, str | None]]:
    return sorted((e["data"]["element"], e["actor"]) for e in engine.history.for_instance(instance_id)
                  if e["type"] == "timer_fired")


def open_elements(engine, instance_id: int) -> set[str]:
    return {t["element_id"] for t in engine.tasks.query(instance_id=instance_id)}


def test_timers_fired_by_a_completion_are_in_history_once(timers):
    engine = timers
    instance_id = engine.runtime.start("due_timers", {"deadline": DEADLINE, "late": LATE})
    assert open_elements(engine, instance_id) == {"first"}
    engine.clock.set("2025-11-02T09:00:00+03:00")  # both timers are due; no sweep ran since
    [first] = engine.tasks.query(instance_id=instance_id)
    engine.tasks.complete(first["id"], "secretary")
    # `after_first` was reached already due; `waiting` (the other branch) came due while nobody swept;
    # the boundary timer `too_late` was cancelled with its task, so it did not fire
    assert open_elements(engine, instance_id) == {"second", "third"}
    assert fired(engine, instance_id) == [("after_first", "secretary"), ("waiting", "secretary")]
    engine.clock.set("2025-12-01T09:00:00+03:00")
    assert engine.management.sweep().timers_fired == 0
    assert fired(engine, instance_id) == [("after_first", "secretary"), ("waiting", "secretary")]


def test_the_sweep_and_a_later_completion_record_each_timer_once(timers):
    engine = timers
    instance_id = engine.runtime.start("due_timers", {"deadline": DEADLINE, "late": LATE})
    engine.clock.set("2025-11-02T09:00:00+03:00")
    result = engine.management.sweep()  # fires `waiting` only: `after_first` is not reached yet
    assert result.timers_fired == 1
    assert fired(engine, instance_id) == [("waiting", "scheduler")]
    first = next(t for t in engine.tasks.query(instance_id=instance_id) if t["element_id"] == "first")
    engine.tasks.complete(first["id"], "secretary")
    assert fired(engine, instance_id) == [("after_first", "secretary"), ("waiting", "scheduler")]


def test_a_timer_due_at_the_start_is_in_history(timers):
    engine = timers
    instance_id = engine.runtime.start("due_timers", {"deadline": "2025-10-01T09:00:00+03:00", "late": LATE},
                                       started_by="secretary")
    assert open_elements(engine, instance_id) == {"first", "third"}
    assert fired(engine, instance_id) == [("waiting", "secretary")]


def test_a_boundary_timer_that_fires_is_in_history_and_the_cancelled_ones_are_not(timers):
    engine = timers
    instance_id = engine.runtime.start("due_timers", {"deadline": LATE, "late": DEADLINE})
    engine.clock.set("2025-11-02T09:00:00+03:00")
    assert engine.management.sweep().timers_fired == 1
    assert open_elements(engine, instance_id) == set()  # `first` was interrupted; `waiting` still waits
    assert fired(engine, instance_id) == [("too_late", "scheduler")]
