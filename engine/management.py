"""ManagementService: the timer sweep and the overdue marking that the scheduler runs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import lazyload, undefer

from . import history
from .db import is_concurrent_change
from .errors import Conflict, ExecutionError
from .models import HumanTask, ProcessInstance

if TYPE_CHECKING:
    from . import ProcessEngine

log = logging.getLogger(__name__)

INCIDENT_RETRY = timedelta(hours=1)


@dataclass
class SweepResult:
    instances: int = 0
    timers_fired: int = 0
    overdue_marked: int = 0
    incidents: list[dict] = field(default_factory=list)
    jobs: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return self.__dict__.copy()


class ManagementService:
    """Moves instances whose timers are due and marks tasks overdue; safe to run in many processes at once."""

    def __init__(self, engine: ProcessEngine):
        self._engine = engine
        self._jobs: list[tuple[str, Callable[[], object]]] = []

    def register_job(self, name: str, job: Callable[[], object]) -> None:
        """Run `job()` at the end of every sweep (periodic domain work: quarterly starts, age checks…).

        A job must be idempotent and safe to run in several scheduler processes at once.
        """
        self._jobs.append((name, job))

    def sweep(self, batch_size: int = 50) -> SweepResult:
        """One pass as of the engine clock: due timers, overdue tasks, then the registered jobs."""
        result = SweepResult()
        self.fire_due_timers(result, batch_size)
        result.overdue_marked = self.mark_overdue()
        for name, job in self._jobs:
            try:
                result.jobs[name] = job()
            except Exception as exc:  # one failing job must not stop the others or the scheduler
                log.exception("job %s failed", name)
                result.incidents.append({"job": name, "message": getattr(exc, "message", str(exc))})
        return result

    def fire_due_timers(self, result: SweepResult | None = None, batch_size: int = 50) -> SweepResult:
        """Move every instance whose wake-up is due, each at most once per sweep (keyset over ids)."""
        result = result or SweepResult()
        after_id = 0
        while True:
            last_id = self._fire_batch(result, batch_size, after_id)
            if last_id is None:
                return result
            after_id = last_id

    def _fire_batch(self, result: SweepResult, batch_size: int, after_id: int) -> int | None:
        """Lock a batch of due instances (SKIP LOCKED on PostgreSQL), move them and commit once; returns the last
        id taken, or None when nothing is left.

        The batch is written together (`_fire_together`): the states in one statement, the history events in one
        INSERT, the new inbox rows in another. When writing them together fails (an instance changed meanwhile,
        which on SQLite with several schedulers can happen, or a history listener refused one of them), the
        batch is moved again one instance at a time, each in a savepoint of its own, as before."""
        engine = self._engine
        now = engine.clock.now()
        batch, taken = SweepResult(), []  # `taken`: the last id locked, known even when the commit fails
        try:
            with engine.executor.clock_in_force(), engine.db.session() as session:
                query = (select(ProcessInstance)
                         .where(ProcessInstance.status == "running", ProcessInstance.next_wakeup <= now,
                                ProcessInstance.id > after_id)
                         .order_by(ProcessInstance.id).limit(batch_size)
                         .options(lazyload(ProcessInstance.definition), undefer(ProcessInstance.state)))
                if engine.db.is_postgresql:
                    query = query.with_for_update(skip_locked=True, of=ProcessInstance)
                rows = session.scalars(query).all()
                if not rows:
                    return None
                taken.append(rows[-1].id)
                savepoint = session.begin_nested()
                try:
                    self._fire_together(session, rows, batch, now)
                    savepoint.commit()
                except (Conflict, ExecutionError, SQLAlchemyError):  # e.g. a history listener refusing one of them
                    savepoint.rollback()
                    batch = SweepResult()
                    self._fire_one_by_one(session, rows, batch, now)
        except Conflict as exc:
            if not taken or not is_concurrent_change(exc.__cause__):  # e.g. a listener's refusal: not ours to hide
                raise
            # the commit met another change (a deadlock the database stopped): nothing of the batch is saved and
            # its instances are still due, for the next sweep; this one goes on with the next batch
            log.warning("due instances up to id %s left for the next sweep: %s", taken[0], exc.message)
            return taken[0]
        result.instances += batch.instances
        result.timers_fired += batch.timers_fired
        result.incidents.extend(batch.incidents)
        return taken[0]

    def _fire_together(self, session, rows: list[ProcessInstance], result: SweepResult, now: datetime) -> None:
        """Move every instance of a locked batch in memory, then write them all at once; an instance whose
        continuation fails is left as it was and becomes an incident."""
        # the batch's writes go out together at the end, its events in one INSERT (a listener that reads sends
        # what was written before it first)
        with self._engine.db.write_queue(session), self._engine.history.deferred(session):
            self._move_together(session, rows, result, now)

    def _move_together(self, session, rows: list[ProcessInstance], result: SweepResult, now: datetime) -> None:
        executor = self._engine.executor
        moved, failed = [], []
        for row in rows:
            try:
                loaded = executor.load(session, row, actor="scheduler", for_change=True)
                fired = executor.fire_due_timers(loaded)
                moved.append((loaded, fired, executor.ready_user_tasks(loaded.workflow)))
            except ExecutionError as exc:
                failed.append((row.id, exc))
        plans = []
        if moved:
            task_rows = executor.task_rows_of(session, [loaded.row.id for loaded, _, _ in moved])
            for loaded, fired, ready in moved:
                try:
                    # the rows were read (and on PostgreSQL locked) by this transaction: their municipality holds
                    plans.append((executor.plan_save(loaded, task_rows, municipality_known=True, ready=ready), fired))
                except ExecutionError as exc:
                    failed.append((loaded.row.id, exc))
        executor.save_many(session, [plan for plan, _ in plans])
        session.flush()
        for _plan, fired in plans:
            result.instances += 1
            result.timers_fired += len(fired)
        for instance_id, exc in failed:
            self._incident(session, instance_id, exc, now, result)

    def _fire_one_by_one(self, session, rows: list[ProcessInstance], result: SweepResult, now: datetime) -> None:
        executor = self._engine.executor
        for row in rows:
            savepoint = session.begin_nested()
            try:
                loaded = executor.load(session, row, actor="scheduler", for_change=True)
                fired = executor.fire_due_timers(loaded)
                executor.save(loaded)  # writes a `timer_fired` event per timer that fired
                savepoint.commit()
                result.instances += 1
                result.timers_fired += len(fired)
            except Conflict:
                # someone changed the instance meanwhile (a person, or another scheduler on SQLite, which
                # has no SKIP LOCKED), or the database stopped a deadlock with another change: not an incident;
                # the next sweep looks at it again
                savepoint.rollback()
            except OperationalError as exc:  # the same, met when the savepoint's writes went out
                if not is_concurrent_change(exc):
                    raise
                savepoint.rollback()
            except ExecutionError as exc:
                savepoint.rollback()
                self._incident(session, row.id, exc, now, result)

    def _incident(self, session, instance_id: int, exc: Exception, now: datetime, result: SweepResult) -> None:
        """A timer whose continuation fails: keep the instance as it was, record it, retry later."""
        message = getattr(exc, "message", str(exc))
        log.warning("instance %s: %s", instance_id, message)
        session.execute(update(ProcessInstance).where(ProcessInstance.id == instance_id)
                        .values(error=message, next_wakeup=now + INCIDENT_RETRY)
                        .execution_options(synchronize_session=False))
        self._engine.history.record(session, history.INCIDENT, instance_id, actor="scheduler",
                                    data={"message": message})
        result.incidents.append({"instance_id": instance_id, "message": message})

    def mark_overdue(self) -> int:
        """Mark open tasks past their due date as overdue, each exactly once, with a history event."""
        now = self._engine.clock.now()
        with self._engine.db.session() as session:
            rows = session.execute(
                update(HumanTask)
                .where(HumanTask.status == "open", HumanTask.overdue.is_(False), HumanTask.due.is_not(None),
                       HumanTask.due < now)
                .values(overdue=True)
                .returning(HumanTask.id, HumanTask.instance_id, HumanTask.due, HumanTask.element_id)
                .execution_options(synchronize_session=False)
            ).all()
            for task_id, instance_id, due, element in rows:
                self._engine.history.record(session, history.TASK_OVERDUE, instance_id, task_id=task_id,
                                            actor="scheduler", data={"element": element, "due": due.isoformat()})
            return len(rows)
