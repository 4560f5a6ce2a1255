"""The timer sweep moves a batch of due instances together: a fixed number of statements per batch whatever its
size, each timer once, and an instance whose continuation fails becomes an incident without holding up the rest."""

from __future__ import annotations

import pytest
from sqlalchemy import event, select, update

from engine.errors import ExecutionError
from engine.history import TIMER_FIRED
from engine.models import HistoryEvent, HumanTask, ProcessInstance

from .test_concurrent_changes import concurrent_refusal

START = "2025-10-30T09:00:00+03:00"
LATER = "2025-10-30T11:00:00+03:00"

WAIT_THEN_TASK = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="sweep_defs"
                  targetNamespace="http://kurator.example/test">
  <bpmn:process id="wait_then_task" name="Wait, compute, follow up" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait" />
    <bpmn:intermediateCatchEvent id="wait" name="An hour">
      <bpmn:timerEventDefinition id="wait_timer"><bpmn:timeDuration>PT1H</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f2" sourceRef="wait" targetRef="compute" />
    <bpmn:scriptTask id="compute" name="Compute" scriptFormat="python">
      <bpmn:script>share = 100 / parts</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f3" sourceRef="compute" targetRef="follow_up" />
    <bpmn:userTask id="follow_up" name="Follow up" camunda:candidateGroups="commission_secretary"
                   camunda:dueDate="${due}" />
    <bpmn:sequenceFlow id="f4" sourceRef="follow_up" targetRef="end" />
    <bpmn:endEvent id="end" />
  </bpmn:process>
</bpmn:definitions>
"""
GOOD = {"parts": 4, "due": "2025-11-07T23:59:59+03:00"}


@pytest.fixture
def waiting(engine):
    engine.repository.deploy([("wait_then_task.bpmn", WAIT_THEN_TASK)], deployed_by="tester")
    engine.identity.add_agency("КДН г. Йошкар-Олы", "Йошкар-Ола", kind="commission")
    return engine


def start_many(engine, count: int, **variables) -> list[int]:
    engine.clock.set(START)
    return [engine.runtime.start("wait_then_task", {**GOOD, **variables}) for _ in range(count)]


def sweep_counting(engine, **kwargs):
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    engine.clock.set(LATER)
    event.listen(engine.db.engine, "before_cursor_execute", count)
    try:
        result = engine.management.fire_due_timers(**kwargs)
    finally:
        event.remove(engine.db.engine, "before_cursor_execute", count)
    return result, statements


def follow_ups(engine) -> dict[int, HumanTask]:
    with engine.db.session() as session:
        return {t.instance_id: t for t in session.scalars(select(HumanTask).where(HumanTask.element_id == "follow_up"))}


def fired_events(engine, instance_id: int) -> int:
    return [e["type"] for e in engine.history.for_instance(instance_id)].count(TIMER_FIRED)


def test_a_batch_of_due_instances_is_written_in_a_fixed_number_of_statements(waiting):
    engine = waiting
    few = start_many(engine, 3)
    _result, statements_few = sweep_counting(engine)
    many = start_many(engine, 30)
    municipality = engine.identity.municipality_id("Йошкар-Ола")
    with engine.db.session() as session:  # as the domain stamps the instances it scopes
        session.execute(update(ProcessInstance).where(ProcessInstance.id.in_(many[:10]))
                        .values(municipality_id=municipality))
    result, statements_many = sweep_counting(engine)
    assert (result.instances, result.timers_fired, result.incidents) == (30, 30, [])
    # no statement per instance: as many for 30 instances as for 3, but on PostgreSQL the few rows of 3 join the
    # batch's other writes in one statement, while the rows of 30 go out in an executemany of their own
    assert len(statements_few) <= len(statements_many) <= len(statements_few) + 1, statements_many
    tasks = follow_ups(engine)
    assert sorted(tasks) == sorted(few + many)
    assert all(t.status == "open" and t.due is not None for t in tasks.values())
    # the new rows carry their instance's municipality
    assert {i for i in many if tasks[i].municipality_id == municipality} == set(many[:10])
    assert all(fired_events(engine, i) == 1 for i in few + many)
    assert sweep_counting(engine)[0].timers_fired == 0


def test_a_listener_of_new_tasks_that_reads_nothing_adds_no_statement_per_instance(waiting):
    """A domain listening to `task_created` (as the emergency flag does) but reading only for some tasks: the
    batch's events still go out in one INSERT, with its other writes; the listener sees every event."""
    engine = waiting
    heard: list[str] = []
    engine.history.subscribe("task_created", lambda _session, event: heard.append(event.task_id))
    start_many(engine, 3)
    _result, statements_few = sweep_counting(engine)
    start_many(engine, 30)
    result, statements_many = sweep_counting(engine)
    assert (result.instances, result.timers_fired, result.incidents) == (30, 30, [])
    assert len(statements_few) <= len(statements_many) <= len(statements_few) + 1, statements_many
    assert sorted(heard) == sorted(task.id for task in follow_ups(engine).values())
    with engine.db.session() as session:
        created = session.scalars(select(HistoryEvent.task_id).where(HistoryEvent.event_type == "task_created")).all()
    assert sorted(created) == sorted(heard)


def test_an_instance_whose_continuation_fails_is_an_incident_and_its_batch_moves_on(waiting):
    engine = waiting
    first = start_many(engine, 2)
    script_fails = start_many(engine, 1, parts=0)[0]  # the script divides by zero after the timer
    due_fails = start_many(engine, 1, due="не дата")[0]  # the follow-up task's due date cannot be read
    last = start_many(engine, 2)
    result, _statements = sweep_counting(engine)
    assert result.instances == 4 and result.timers_fired == 4
    assert sorted(i["instance_id"] for i in result.incidents) == sorted([script_fails, due_fails])
    assert sorted(follow_ups(engine)) == sorted(first + last)
    with engine.db.session() as session:
        for instance_id in (script_fails, due_fails):
            row = session.get(ProcessInstance, instance_id)
            assert row.status == "running" and row.revision == 1 and row.error
            assert row.next_wakeup.isoformat() == "2025-10-30T09:00:00+00:00"  # retried in an hour
    assert fired_events(engine, script_fails) == 0
    assert "incident" in [e["type"] for e in engine.history.for_instance(due_fails)]
    assert all(fired_events(engine, i) == 1 for i in first + last)


def test_a_batch_refused_as_a_whole_is_moved_one_instance_at_a_time(waiting):
    """A history listener refusing one instance's timer: its batch is written again instance by instance, and
    only the refused one becomes an incident."""
    engine = waiting
    ids = start_many(engine, 5)
    refused = ids[2]

    def refuse(_session, event):
        if event.instance_id == refused:
            raise ExecutionError("refused by the listener")

    engine.history.subscribe(TIMER_FIRED, refuse)
    result, statements = sweep_counting(engine)
    assert result.instances == 4 and result.timers_fired == 4
    assert [i["instance_id"] for i in result.incidents] == [refused]
    assert sorted(follow_ups(engine)) == sorted(set(ids) - {refused})
    assert any(s.startswith("ROLLBACK TO SAVEPOINT") for s in statements)
    assert all(fired_events(engine, i) == 1 for i in ids if i != refused)
    assert fired_events(engine, refused) == 0


def test_an_instance_whose_writes_meet_a_deadlock_is_left_for_the_next_sweep(waiting):
    """The database stops a deadlock between this sweep and another change by refusing the sweep's writes of one
    instance: not an incident (nothing is wrong with it); the rest of its batch moves, and the next sweep moves it."""
    engine = waiting
    ids = start_many(engine, 4)
    unlucky = ids[1]
    refusing = [True]

    def deadlock(_session, event):
        if refusing[0] and event.instance_id == unlucky:
            raise concurrent_refusal()

    engine.history.subscribe(TIMER_FIRED, deadlock)
    result, _statements = sweep_counting(engine)
    assert result.instances == 3 and result.incidents == []
    assert sorted(follow_ups(engine)) == sorted(set(ids) - {unlucky})
    with engine.db.session() as session:
        row = session.get(ProcessInstance, unlucky)
        assert row.revision == 1 and row.error is None and row.next_wakeup.isoformat() == "2025-10-30T07:00:00+00:00"
    refusing[0] = False
    result, _statements = sweep_counting(engine)
    assert result.instances == 1 and sorted(follow_ups(engine)) == sorted(ids)
    assert all(fired_events(engine, i) == 1 for i in ids)


def test_a_batch_whose_commit_meets_a_deadlock_is_left_for_the_next_sweep_and_the_next_batch_moves(waiting):
    """The refusal can come at the batch's commit (the case rows the domain recomputes then): the whole batch is
    left for the next sweep, and this sweep goes on with the next batch. (PostgreSQL: on SQLite the driver's own
    transaction handling commits a batch already when its savepoint is released.)"""
    engine = waiting
    if not engine.db.is_postgresql:
        pytest.skip("the batch is committed with its savepoint on SQLite")
    ids = start_many(engine, 4)
    refusals = [1]

    def at_commit(session, recorded):
        if refusals[0] and recorded.instance_id == ids[0]:
            refusals[0] -= 1

            def refuse(committing):  # the batch's commit, not its savepoint's
                if not committing.in_nested_transaction():
                    raise concurrent_refusal()
            event.listen(session, "before_commit", refuse)

    engine.history.subscribe(TIMER_FIRED, at_commit)
    result, _statements = sweep_counting(engine, batch_size=2)
    assert result.instances == 2 and result.incidents == []
    assert sorted(follow_ups(engine)) == sorted(ids[2:])
    result, _statements = sweep_counting(engine, batch_size=2)
    assert result.instances == 2 and sorted(follow_ups(engine)) == sorted(ids)
    assert all(fired_events(engine, i) == 1 for i in ids)
