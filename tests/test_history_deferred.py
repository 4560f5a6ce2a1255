"""`HistoryService.deferred`: a change's events go to the database together, in the order they were recorded, and
a listener still sees every event recorded before its own."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from engine.history import TASK_COMPLETED
from engine.models import HistoryEvent, HumanTask

from .support import statements_sent


def count(session, instance_id: int) -> int:
    return session.scalar(select(func.count()).select_from(HistoryEvent).where(HistoryEvent.instance_id == instance_id))


def test_events_are_written_together_in_order_and_a_listener_sees_those_before_it(engine):
    history = engine.history
    seen = []
    history.subscribe("b_listened", lambda session, event: seen.append((event.data, count(session, 7))))
    with engine.db.session() as session:
        with history.deferred(session):
            history.record(session, "a_kept", 7, data={"n": 1})
            assert count(session, 7) == 0  # kept, not written yet
            history.record(session, "b_listened", 7, data={"n": 2})
            history.record(session, "c_kept", 7, data={"n": 3})
            with history.deferred(session):  # a nested change (a listener's): its events after the enclosing ones
                history.record(session, "d_inner", 7, data={"n": 4})
            history.record(session, "e_kept", 7, data={"n": 5})
            assert count(session, 7) == 4
        assert count(session, 7) == 5
    assert seen == [({"n": 2}, 2)]  # the listener ran with the kept event and its own written
    events = history.for_instance(7)
    assert [(e["type"], e["data"]["n"]) for e in events] == [("a_kept", 1), ("b_listened", 2), ("c_kept", 3),
                                                             ("d_inner", 4), ("e_kept", 5)]
    assert all(e["at"] == events[0]["at"] for e in events)


def test_events_of_a_failed_block_are_not_written(engine):
    history = engine.history
    with engine.db.session() as session:
        with pytest.raises(RuntimeError):
            with history.deferred(session):
                history.record(session, "lost", 8)
                raise RuntimeError("the change failed")
        history.record(session, "after", 8)  # outside the block: as before, an ORM object of the session
    assert [e["type"] for e in history.for_instance(8)] == ["after"]


def test_a_completion_listener_reads_the_completed_task_from_the_session_without_a_select(deployed):
    """The task's row as the completion leaves it is in the session: the listener reads it with `session.get`,
    and no SELECT of it is sent (nor the change's queued writes before their time)."""
    engine = deployed
    instance = engine.runtime.start("lifecycle", {"received": "2025-10-30", "curator": "curator",
                                                  "plan_items": [1]}, started_by="secretary")
    task = engine.tasks.query(instance_id=instance)[0]
    seen = []

    def listener(session, event):
        row = session.get(HumanTask, event.task_id)
        seen.append((row.status, row.completed_by, row.assignee, row.data, row.element_id))

    engine.history.subscribe(TASK_COMPLETED, listener)
    with statements_sent(engine) as sent:
        engine.tasks.complete(task["id"], "secretary", {"sop_confirmed": True, "danger_level": "high"})
    assert seen == [("completed", "secretary", "secretary", {"sop_confirmed": True, "danger_level": "high"},
                     task["element_id"])]
    assert [s for s in sent[1:] if s.lstrip().startswith("SELECT") and "FROM human_task" in s] == []
