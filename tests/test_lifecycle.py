"""A diagram with lanes, a gateway, a boundary timer, an event subprocess and a call activity, run end to end.

Between every step the instance is saved and restored from the database (each engine call loads it anew).
"""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from engine import Conflict, InvalidInput, PermissionDenied
from engine import tasks as tasks_module
from engine.models import ProcessInstance

from .support import another_transaction_waits_for_a_lock, in_another_thread

MSK = ZoneInfo("Europe/Moscow")


def only_task(engine, **query):
    tasks = engine.tasks.query(**query)
    assert len(tasks) == 1, tasks
    return tasks[0]


def start_case(engine, **variables):
    values = {"received": "2025-10-30", "curator": "curator", "plan_items": [1, 2, 3]}
    values.update(variables)
    return engine.runtime.start("lifecycle", values, business_key="case-1", started_by="secretary")


def test_happy_path_through_call_activity(deployed):
    engine = deployed
    instance_id = start_case(engine)
    check = only_task(engine, instance_id=instance_id)
    assert check["name"] == "Check and conclusion"
    assert check["candidate_roles"] == ["commission_secretary"]  # from the lane name
    assert check["form_key"] == "check_form"
    # 5 working days from 30.10.2025 (1.11 is a working Saturday, 3-4.11 are days off) end on 7.11.2025
    assert datetime.fromisoformat(check["due"]) == datetime(2025, 11, 7, 23, 59, 59, tzinfo=MSK)
    assert datetime.fromisoformat(check["follow_up"]) == datetime(2025, 11, 5, 23, 59, 59, tzinfo=MSK)
    assert [t["id"] for t in engine.tasks.query(user="secretary")] == [check["id"]]
    assert engine.tasks.query(user="school") == []

    engine.tasks.complete(check["id"], "secretary", {"sop_confirmed": True, "danger_level": "high"})
    draft = only_task(engine, instance_id=instance_id)
    assert draft["name"] == "Draft the programme" and draft["assignee"] == "curator"
    # 14 calendar days from 30.10.2025 09:00 -> 13.11.2025 (a working Thursday)
    assert datetime.fromisoformat(draft["due"]) == datetime(2025, 11, 13, 23, 59, 59, tzinfo=MSK)
    with pytest.raises(PermissionDenied):
        engine.tasks.complete(draft["id"], "secretary", {})
    engine.tasks.complete(draft["id"], "curator", {})

    review = only_task(engine, instance_id=instance_id)
    assert review["candidate_roles"] == ["commission"]  # lane "КДНиЗП" is the role's title
    engine.tasks.complete(review["id"], "chair", {})

    info = engine.runtime.instance(instance_id)
    assert info["status"] == "completed"
    assert info["variables"]["plan_done"] is True and info["variables"]["activities"] == 3
    types = [e["type"] for e in engine.history.for_instance(instance_id)]
    assert types[0] == "instance_started"
    assert types.count("task_created") == 3 and types.count("task_completed") == 3
    assert types[-1] == "instance_completed"


def test_gateway_default_flow_rejects(deployed):
    engine = deployed
    instance_id = start_case(engine)
    check = only_task(engine, instance_id=instance_id)
    engine.tasks.complete(check["id"], "secretary", {"sop_confirmed": False, "danger_level": "low"})
    assert engine.runtime.instance(instance_id)["status"] == "completed"
    assert engine.tasks.query(instance_id=instance_id) == []


def test_form_validation_rejects_and_changes_nothing(deployed):
    engine = deployed
    instance_id = start_case(engine)
    check = only_task(engine, instance_id=instance_id)
    before = engine.runtime.instance(instance_id)
    with pytest.raises(InvalidInput) as err:
        engine.tasks.complete(check["id"], "secretary", {"sop_confirmed": True, "danger_level": "extreme"})
    assert "danger_level" in err.value.errors
    with pytest.raises(InvalidInput) as err:
        engine.tasks.complete(check["id"], "secretary", {"sop_confirmed": True})
    assert err.value.errors == {"danger_level": "обязательное поле"}
    after = engine.runtime.instance(instance_id)
    assert after["revision"] == before["revision"]
    assert only_task(engine, instance_id=instance_id)["id"] == check["id"]


def test_boundary_timer_escalates_after_deadline(deployed):
    engine = deployed
    instance_id = start_case(engine)
    check = only_task(engine, instance_id=instance_id)
    engine.clock.set("2025-11-07T20:00:00+00:00")  # 7.11 23:00 Moscow: not yet past the due day
    result = engine.management.sweep()
    assert result.timers_fired == 0 and result.overdue_marked == 0
    engine.clock.set("2025-11-07T21:00:01+00:00")  # 8.11 00:00:01 Moscow
    result = engine.management.sweep()
    assert result.timers_fired == 1 and result.overdue_marked == 1
    tasks = {t["name"]: t for t in engine.tasks.query(instance_id=instance_id)}
    assert set(tasks) == {"Check and conclusion", "Check is overdue: take measures"}
    assert tasks["Check and conclusion"]["overdue"] is True
    assert tasks["Check is overdue: take measures"]["candidate_roles"] == ["manager", "commission_secretary"]
    assert [t["id"] for t in engine.tasks.query(overdue=True)] == [check["id"]]
    # a second sweep fires nothing again
    again = engine.management.sweep()
    assert again.timers_fired == 0 and again.overdue_marked == 0
    types = [e["type"] for e in engine.history.for_instance(instance_id)]
    assert types.count("timer_fired") == 1 and types.count("task_overdue") == 1


def test_signal_interrupts_the_case(deployed):
    engine = deployed
    instance_id = start_case(engine)
    only_task(engine, instance_id=instance_id)
    receivers = engine.runtime.send_signal("threat_to_life", {"reported_by": "police"}, business_key="case-1",
                                           actor="police")
    assert receivers == [instance_id]
    visit = only_task(engine, instance_id=instance_id)
    assert visit["name"] == "Visit the child immediately"
    assert visit["candidate_roles"] == ["guardianship"]
    assert datetime.fromisoformat(visit["due"]) == datetime(2025, 10, 30, 13, 0, tzinfo=MSK)  # now + 4 h
    engine.tasks.complete(visit["id"], "guardian", {})
    assert engine.runtime.instance(instance_id)["status"] == "completed"
    types = [e["type"] for e in engine.history.for_instance(instance_id)]
    assert "signal_received" in types and "task_cancelled" in types


def test_claim_unclaim_and_permissions(deployed):
    engine = deployed
    instance_id = start_case(engine)
    check = only_task(engine, instance_id=instance_id)
    with pytest.raises(PermissionDenied):
        engine.tasks.claim(check["id"], "school")
    assert engine.tasks.claim(check["id"], "secretary")["assignee"] == "secretary"
    with pytest.raises(Conflict, match="already claimed by secretary"):
        engine.tasks.claim(check["id"], "secretary2")
    with pytest.raises(PermissionDenied):
        engine.tasks.complete(check["id"], "secretary2", {"danger_level": "low"})
    with pytest.raises(PermissionDenied):
        engine.tasks.unclaim(check["id"], "secretary2")
    assert engine.tasks.unclaim(check["id"], "secretary")["assignee"] is None
    engine.tasks.complete(check["id"], "secretary2", {"danger_level": "low"})
    with pytest.raises(Conflict, match="already completed by secretary2"):
        engine.tasks.complete(check["id"], "secretary", {"danger_level": "low"})
    types = [e["type"] for e in engine.history.for_instance(instance_id)]
    assert ["task_claimed", "task_unclaimed"] == [t for t in types if t in ("task_claimed", "task_unclaimed")]


def test_stale_revision_is_a_conflict_and_saves_nothing(deployed):
    """On SQLite another change of the instance can commit while a change is under way (nothing is locked before
    the write): the later save is refused as a conflict and saves nothing. PostgreSQL locks the instance for the
    change instead (see the next test)."""
    engine = deployed
    if engine.db.is_postgresql:
        pytest.skip("PostgreSQL locks the instance for a change: test_a_change_waits_for_another_change_...")
    instance_id = start_case(engine)
    check = only_task(engine, instance_id=instance_id)
    executor = engine.executor
    with pytest.raises(Conflict):
        with executor.operation(instance_id, "secretary", what="test") as loaded:
            # someone else saves the same instance in between
            engine.runtime.send_signal("threat_to_life", {}, instance_id=instance_id)
            task = [t for t in loaded.workflow.get_tasks() if str(t.id) == check["id"]][0]
            task.run()
    info = engine.runtime.instance(instance_id)
    assert [t["name"] for t in engine.tasks.query(instance_id=instance_id)] == ["Visit the child immediately"]
    assert info["revision"] == 2
    assert "conflict_rejected" in [e["type"] for e in engine.history.for_instance(instance_id)]


def test_a_change_waits_for_another_change_of_the_instance_and_goes_on_from_it(deployed):
    """PostgreSQL: a change locks its instance, so a second change of it (a signal, the scheduler, a person's
    completion) waits until the first commits and then goes on from what it left: neither is refused."""
    engine = deployed
    if not engine.db.is_postgresql:
        pytest.skip("SQLite has no row locks: test_stale_revision_is_a_conflict_and_saves_nothing")
    instance_id = start_case(engine)
    check = only_task(engine, instance_id=instance_id)
    with engine.executor.operation(instance_id, "secretary", what="test") as loaded:
        task = [t for t in loaded.workflow.get_tasks() if str(t.id) == check["id"]][0]
        task.set_data(sop_confirmed=True, danger_level="high")
        task.run()
        engine.executor.advance(loaded)
        signal, outcome = in_another_thread(
            lambda: engine.runtime.send_signal("threat_to_life", {}, instance_id=instance_id))
        assert another_transaction_waits_for_a_lock(engine)
    signal.join(30)
    assert not signal.is_alive() and outcome == {"result": [instance_id]}
    assert engine.runtime.instance(instance_id)["revision"] == 3  # the signal came after the step, not instead
    types = [e["type"] for e in engine.history.for_instance(instance_id)]
    assert "signal_received" in types and "conflict_rejected" not in types
    assert [t["name"] for t in engine.tasks.query(instance_id=instance_id)] == ["Visit the child immediately"]


def test_a_completion_racing_another_change_is_a_recorded_conflict_and_saves_nothing(deployed, monkeypatch):
    """SQLite: the completion reads the task, its instance and the form in its one transaction; when another change
    of the instance commits before it saves, it is refused as a conflict, recorded, and the task stays open."""
    engine = deployed
    if engine.db.is_postgresql:
        pytest.skip("PostgreSQL locks the instance for a completion: test_a_completion_waits_for_...")
    instance_id = start_case(engine)
    check = only_task(engine, instance_id=instance_id)
    executor = engine.executor
    load = executor.load

    def load_after_someone_else(session, row, actor=None, **options):
        monkeypatch.setattr(executor, "load", load)  # once
        with engine.db.session() as other:  # someone else's change of the same instance, committed meanwhile
            other.execute(update(ProcessInstance).where(ProcessInstance.id == instance_id)
                          .values(revision=ProcessInstance.revision + 1))
        return load(session, row, actor, **options)

    monkeypatch.setattr(executor, "load", load_after_someone_else)
    with pytest.raises(Conflict, match="changed by someone else"):
        engine.tasks.complete(check["id"], "secretary", {"sop_confirmed": True, "danger_level": "high"})
    assert only_task(engine, instance_id=instance_id)["status"] == "open"
    types = [e["type"] for e in engine.history.for_instance(instance_id)]
    assert "conflict_rejected" in types and "task_completed" not in types
    engine.tasks.complete(check["id"], "secretary", {"sop_confirmed": True, "danger_level": "high"})
    assert only_task(engine, instance_id=instance_id)["name"] == "Draft the programme"


def test_a_completion_waits_for_another_change_of_the_instance_and_reads_what_it_left(deployed):
    """PostgreSQL: a completion that starts while another change holds the instance (here the scheduler's sweep,
    which a completion used to deadlock with) waits for it, then reads the instance and its tasks as that change
    left them."""
    engine = deployed
    if not engine.db.is_postgresql:
        pytest.skip("SQLite has no row locks: test_a_completion_racing_another_change_...")
    instance_id = start_case(engine)
    check = only_task(engine, instance_id=instance_id)
    with engine.db.session() as holder:  # another change holds the instance, then cancels the check
        holder.execute(select(ProcessInstance.id).where(ProcessInstance.id == instance_id).with_for_update())
        completion, outcome = in_another_thread(
            lambda: engine.tasks.complete(check["id"], "secretary", {"sop_confirmed": True, "danger_level": "high"}))
        assert another_transaction_waits_for_a_lock(engine)
        assert "result" not in outcome and "error" not in outcome
        holder.execute(update(ProcessInstance).where(ProcessInstance.id == instance_id)
                       .values(revision=ProcessInstance.revision + 1))
    completion.join(30)
    assert not completion.is_alive()
    # it saw the new revision (no "changed by someone else"); its kept workflow was stale, so it was restored
    assert outcome.get("result", {}).get("status") == "completed", outcome
    assert only_task(engine, instance_id=instance_id)["name"] == "Draft the programme"
    assert "conflict_rejected" not in [e["type"] for e in engine.history.for_instance(instance_id)]


def test_a_change_that_commits_while_a_completion_reads_is_not_mixed_into_its_rows(deployed, monkeypatch):
    """PostgreSQL: a change that commits after a completion's read began but before the read locked the instance
    (here the sweep opening the check's escalation) gives that read the instance as the change left it and the task
    rows as they were before. The completion sees it by the revision and reads again: the escalation, open already,
    is not taken for a new task."""
    engine = deployed
    if not engine.db.is_postgresql:
        pytest.skip("SQLite reads without locking: test_a_completion_racing_another_change_...")
    instance_id = start_case(engine)
    check = only_task(engine, instance_id=instance_id)
    params = {"task_id": check["id"], "username": "secretary"}
    with engine.db.session() as early:  # the read's snapshot, taken before the sweep
        as_read = [SimpleNamespace(**row._mapping)
                   for row in early.connection().execute(tasks_module._completion_read(True), params)]
    engine.clock.set("2025-11-07T21:00:01+00:00")
    assert engine.management.sweep().timers_fired == 1
    escalation = [t for t in engine.tasks.query(instance_id=instance_id) if t["id"] != check["id"]][0]
    for row in as_read:  # PostgreSQL locks the instance's row as the sweep left it
        row.revision = engine.runtime.instance(instance_id)["revision"]
    assert as_read[0].snapshot_revision == as_read[0].revision - 1
    reads, read = [], tasks_module._rows

    def racing(connection, statement, values):
        reads.append(statement)
        return as_read if len(reads) == 1 else read(connection, statement, values)

    monkeypatch.setattr(tasks_module, "_rows", racing)
    engine.tasks.complete(check["id"], "secretary", {"sop_confirmed": True, "danger_level": "high"})
    assert len(reads) == 2
    created = [e for e in engine.history.for_instance(instance_id)
               if e["type"] == "task_created" and e["task_id"] == escalation["id"]]
    assert len(created) == 1
    assert {t["name"] for t in engine.tasks.query(instance_id=instance_id)} == {
        "Check is overdue: take measures", "Draft the programme"}


def test_a_completion_in_a_transaction_that_read_the_instance_before_another_change_goes_on_from_it(deployed):
    """A caller's transaction read the instance (a page checking the user's scope), then another change of it
    committed, then the caller completes a task in that transaction: the completion reads the instance again
    rather than saving over the other change or refusing itself as a conflict."""
    engine = deployed
    instance_id = start_case(engine)
    check = only_task(engine, instance_id=instance_id)
    with engine.db.session() as caller:
        seen = caller.get(ProcessInstance, instance_id)  # kept: the session holds it as long as the caller does
        assert seen.revision == 1
        with engine.db.engine.begin() as other:  # another connection: another web worker, the scheduler
            other.execute(update(ProcessInstance.__table__).where(ProcessInstance.id == instance_id)
                          .values(revision=ProcessInstance.revision + 1))
        result = engine.tasks.complete(check["id"], "secretary", {"sop_confirmed": True, "danger_level": "high"},
                                       session=caller)
        assert result["status"] == "completed" and seen.revision == 3
    assert engine.runtime.instance(instance_id)["revision"] == 3
    assert only_task(engine, instance_id=instance_id)["name"] == "Draft the programme"


def test_a_pinned_form_is_read_once_and_every_caller_gets_its_own_copy(deployed):
    engine = deployed
    check = only_task(engine, instance_id=start_case(engine))
    schema = engine.tasks.form(check["id"])
    schema["components"].clear()
    assert engine.tasks.form(check["id"])["components"]
    with pytest.raises(InvalidInput) as err:  # the completion validates against the whole form
        engine.tasks.complete(check["id"], "secretary", {"sop_confirmed": True})
    assert err.value.errors == {"danger_level": "обязательное поле"}


def test_draft_is_kept_until_completion(deployed):
    engine = deployed
    instance_id = start_case(engine)
    check = only_task(engine, instance_id=instance_id)
    with pytest.raises(PermissionDenied):
        engine.tasks.save_draft(check["id"], "school", {"danger_level": "low"})
    engine.tasks.save_draft(check["id"], "secretary", {"danger_level": "hi"})  # drafts are not validated
    assert engine.tasks.draft(check["id"]) == {"danger_level": "hi"}
    engine.tasks.complete(check["id"], "secretary", {"sop_confirmed": False, "danger_level": "low"})
    assert engine.tasks.draft(check["id"]) == {}
    assert engine.tasks.get(check["id"])["status"] == "completed"
