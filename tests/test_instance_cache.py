"""The live workflows the executor keeps between changes (`engine.instance_cache`), the queue that sends a change's
writes together (`Database.queue`), and the pool's ping of idle connections."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text, update

from engine.errors import Conflict, ExecutionError
from engine.instance_cache import InstanceCache, Stamp
from engine.models import HistoryEvent, HumanTask, Municipality, ProcessInstance

from .support import new_engine, statements_sent
from .test_lifecycle import only_task, start_case
from .test_repository import diagram

CHECK = {"sop_confirmed": True, "danger_level": "high"}


def reads_state(statement: str) -> bool:
    """A statement that reads an instance's stored state."""
    head = statement.split(" FROM ", 1)[0]
    return statement.lstrip().upper().startswith("SELECT") and "process_instance.state" in head


def test_the_next_change_continues_the_kept_workflow_without_reading_the_state(deployed, monkeypatch):
    engine = deployed
    monkeypatch.setattr("engine.executor.CHECK_KEPT_WORKFLOWS", False)  # the check would read the state
    instance_id = start_case(engine)
    with statements_sent(engine, reads_state) as reads:
        engine.tasks.complete(only_task(engine, instance_id=instance_id)["id"], "secretary", CHECK)
        engine.tasks.complete(only_task(engine, instance_id=instance_id)["id"], "curator", {})
    assert reads == []
    assert engine.executor.instances.hits == 2 and engine.executor.instances.misses == 0
    engine.executor.instances.clear()  # a new process: the state is read and restored
    with statements_sent(engine, reads_state) as reads:
        engine.tasks.complete(only_task(engine, instance_id=instance_id)["id"], "chair", {})
    assert len(reads) == 1
    assert engine.runtime.instance(instance_id)["status"] == "completed"


def test_a_change_made_by_another_process_is_never_overlooked(deployed, database):
    """Two engines on one database stand for two web workers: each keeps its own live workflows, and a change by
    the other one (a new revision) makes the kept one useless - the state is restored instead."""
    one, other = deployed, new_engine(database)
    instance_id = start_case(one)
    one.tasks.complete(only_task(one, instance_id=instance_id)["id"], "secretary", CHECK)
    assert len(one.executor.instances) == 1
    other.tasks.complete(only_task(other, instance_id=instance_id)["id"], "curator", {})
    review = only_task(one, instance_id=instance_id)
    assert review["name"] == "Approve the programme"  # the step `other` took, seen by `one`
    misses = one.executor.instances.misses
    one.tasks.complete(review["id"], "chair", {})
    assert one.executor.instances.misses == misses + 1  # its kept workflow was stale: restored from the state
    info = one.runtime.instance(instance_id)
    assert info["status"] == "completed" and info["variables"]["plan_done"] is True


def test_a_change_rolled_back_leaves_nothing_kept(deployed):
    """A completion refused after its workflow was moved (a history listener refusing it) keeps nothing: the next
    attempt starts again from the stored state, not from the half-moved workflow."""
    engine = deployed
    instance_id = start_case(engine)
    check = only_task(engine, instance_id=instance_id)
    refuse = [True]

    def listener(_session, _event):
        if refuse[0]:
            raise ExecutionError("refused by the listener")

    engine.history.subscribe("task_completed", listener)
    with pytest.raises(ExecutionError):
        engine.tasks.complete(check["id"], "secretary", CHECK)
    assert len(engine.executor.instances) == 0
    assert only_task(engine, instance_id=instance_id)["id"] == check["id"]
    refuse[0] = False
    engine.tasks.complete(check["id"], "secretary", CHECK)  # the kept-workflow check compares with the state
    assert only_task(engine, instance_id=instance_id)["name"] == "Draft the programme"


def test_a_kept_workflow_that_differs_from_the_stored_state_is_caught(deployed):
    """The tests' guard (`KURATOR_INSTANCE_CACHE_CHECK`): a state written behind the executor's back, keeping the
    revision, is found before the kept workflow is used."""
    engine = deployed
    instance_id = start_case(engine)
    with engine.db.session() as session:
        session.execute(update(ProcessInstance).where(ProcessInstance.id == instance_id)
                        .values(state=text("state || ' '")))
    with pytest.raises(AssertionError, match="differs from the stored state"):
        engine.tasks.complete(only_task(engine, instance_id=instance_id)["id"], "secretary", CHECK)


def test_the_cache_is_bounded_and_takes_only_a_matching_stamp():
    cache = InstanceCache(size=2)
    for n in range(3):
        cache.keep(n, Stamp(1, 1, "Europe/Moscow"), f"workflow {n}")
    assert len(cache) == 2 and cache.take(0, Stamp(1, 1, "Europe/Moscow")) is None  # the oldest went first
    assert cache.take(1, Stamp(2, 1, "Europe/Moscow")) is None  # another revision: dropped, not returned
    assert cache.take(1, Stamp(1, 1, "Europe/Moscow")) is None
    assert cache.take(2, Stamp(1, 1, "Europe/Samara")) is None  # the time zone changed
    cache.keep(5, Stamp(3, 2, "Europe/Moscow"), "five")
    assert cache.take(5, Stamp(3, 2, "Europe/Moscow")) == "five"
    assert cache.take(5, Stamp(3, 2, "Europe/Moscow")) is None  # taken out: never shared by two changes
    off = InstanceCache(size=0)
    off.keep(1, Stamp(1, 1, "Europe/Moscow"), "x")
    assert len(off) == 0


def test_queued_writes_go_out_together_and_their_checks_refuse_the_transaction(engine):
    db = engine.db
    with db.session() as session:
        session.add(Municipality(name="Волжск"))
    table = Municipality.__table__
    with statements_sent(engine) as counted:
        with pytest.raises(Conflict, match="nobody"), db.session() as session, db.write_queue(session):
            db.queue(session, update(table).where(table.c.name == "Волжск").values(name="Волжск-2"))

            def exactly_one(rows: int) -> None:
                if rows != 1:
                    raise Conflict(f"nobody to update ({rows} rows)")

            db.queue(session, update(table).where(table.c.name == "Козьмодемьянск").values(name="x"),
                     check=exactly_one)
            assert counted == []  # nothing sent yet
    assert len(counted) == (1 if db.is_postgresql else 2)  # one round trip on PostgreSQL
    with db.session() as session:  # the whole transaction was refused: the first write is undone as well
        assert session.scalars(select(Municipality.name)).all() == ["Волжск"]


def test_queued_writes_go_out_before_anything_reads_in_the_session(engine):
    db = engine.db
    with db.session() as session, db.write_queue(session):
        db.queue(session, *db.insert_rows(Municipality.__table__, [{"name": "Звенигово"}, {"name": "Медведево"}]))
        assert sorted(session.scalars(select(Municipality.name)).all()) == ["Звенигово", "Медведево"]
        db.queue(session, *db.insert_rows(Municipality.__table__, [{"name": "Звенигово"}], key=("name",)))
    with db.session() as session:
        assert session.scalar(select(Municipality.id).where(Municipality.name == "Звенигово")) is not None


def test_writes_to_the_same_row_are_not_sent_as_one_statement(deployed):
    """The parts of one PostgreSQL statement see the database as it was before it: two writes of one row are
    sent one after the other, and the later one wins, as if sent alone."""
    engine = deployed
    instance_id = start_case(engine)
    task_id = only_task(engine, instance_id=instance_id)["id"]
    table = HumanTask.__table__
    with engine.db.session() as session, engine.db.write_queue(session):
        for name in ("first", "second"):
            engine.db.queue(session, update(table).where(table.c.id == task_id).values(name=name),
                            touches=[("human_task", task_id)])
    assert only_task(engine, instance_id=instance_id)["name"] == "second"


def test_a_completion_sends_its_writes_in_one_round_trip_on_postgresql(deployed, monkeypatch):
    engine = deployed
    monkeypatch.setattr("engine.executor.CHECK_KEPT_WORKFLOWS", False)
    instance_id = start_case(engine)
    check = only_task(engine, instance_id=instance_id)
    with statements_sent(engine) as statements:
        engine.tasks.complete(check["id"], "secretary", CHECK)
    statements = [s for s in statements if "form_version" not in s and "form_definition" not in s]  # read once
    writes = [s for s in statements if not s.lstrip().upper().startswith("SELECT")]
    if engine.db.is_postgresql:
        assert len(statements) == 2 and statements[1].lstrip().startswith("WITH"), [s[:80] for s in statements]
    else:
        assert len(writes) == 4  # the task, the instance, the new task row, the events
    with engine.db.session() as session:
        events = session.scalars(select(HistoryEvent.event_type).where(HistoryEvent.instance_id == instance_id)
                                 .order_by(HistoryEvent.id)).all()
    assert events[-2:] == ["task_completed", "task_created"]


ADDRESSED = diagram(
    '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="check"/>'
    '<bpmn:userTask id="check" name="Проверка" camunda:candidateGroups="commission_secretary"/>'
    '<bpmn:sequenceFlow id="f2" sourceRef="check" targetRef="visit"/>'
    '<bpmn:userTask id="visit" name="Обследование" camunda:candidateGroups="guardianship">'
    '<bpmn:extensionElements><camunda:properties>'
    '<camunda:property name="agency" value="${agency_of_kind(\'guardianship\', municipality)}"/>'
    '</camunda:properties></bpmn:extensionElements></bpmn:userTask>'
    '<bpmn:sequenceFlow id="f3" sourceRef="visit" targetRef="e"/><bpmn:endEvent id="e"/>', key="addressed")


def test_finding_the_next_tasks_agency_does_not_send_the_writes_ahead(deployed, monkeypatch):
    """The agency a diagram function looks up and the `agency` property's row are read while the change's writes
    wait in the queue: agencies are not among the tables those writes touch, so the writes still go out as one
    statement on PostgreSQL (before, the completed task's UPDATE went out alone ahead of the look-up)."""
    engine = deployed
    monkeypatch.setattr("engine.executor.CHECK_KEPT_WORKFLOWS", False)
    engine.identity.add_agency("Опека г. Йошкар-Олы", "Йошкар-Ола", kind="guardianship")
    engine.repository.deploy([ADDRESSED])
    instance_id = engine.runtime.start("addressed", {"municipality": "Йошкар-Ола"})
    check = only_task(engine, instance_id=instance_id)
    with statements_sent(engine) as statements:
        engine.tasks.complete(check["id"], "secretary", {})
    visit = only_task(engine, instance_id=instance_id)
    assert visit["element_id"] == "visit" and visit["agency_name"] == "Опека г. Йошкар-Олы"
    writes = [s for s in statements if not s.lstrip().upper().startswith("SELECT")]
    if engine.db.is_postgresql:
        assert len(writes) == 1 and writes[0].lstrip().startswith("WITH"), [s[:80] for s in statements]
        assert statements[-1] == writes[0]  # after every read
    else:
        assert len(writes) == 4  # the task, the instance, the new task row, the events


def test_an_idle_pooled_connection_that_died_is_replaced_before_use(database, monkeypatch):
    if not database.is_postgresql:
        pytest.skip("SQLite has no server connection to lose")
    monkeypatch.setattr("engine.db.PING_AFTER_IDLE_SECONDS", 0.0)
    with database.engine.connect() as connection:
        pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    with database.engine.connect() as killer:
        # the pool may hold other connections: end only the one just checked in
        killer.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
        killer.commit()
    for _ in range(3):  # every pooled connection is checked before use; the dead one is replaced
        with database.engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT 1").scalar() == 1
