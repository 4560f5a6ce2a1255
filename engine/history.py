"""HistoryService: the append-only record of what happened to each instance."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from .models import HistoryEvent

if TYPE_CHECKING:
    from . import ProcessEngine

# Event types written by the engine.
DEPLOYED = "deployed"
INSTANCE_STARTED = "instance_started"
INSTANCE_COMPLETED = "instance_completed"
TASK_CREATED = "task_created"
TASK_CLAIMED = "task_claimed"
TASK_UNCLAIMED = "task_unclaimed"
TASK_COMPLETED = "task_completed"
TASK_CANCELLED = "task_cancelled"
TASK_OVERDUE = "task_overdue"
TASK_ADDRESSED = "task_addressed"
TIMER_FIRED = "timer_fired"
MESSAGE_RECEIVED = "message_received"
SIGNAL_RECEIVED = "signal_received"
CONFLICT_REJECTED = "conflict_rejected"
INCIDENT = "incident"
INSTANCE_MIGRATED = "instance_migrated"
MIGRATION_REVERTED = "migration_reverted"


Listener = Callable[[Session, HistoryEvent], None]
_KEPT = "kurator_history_kept"  # Session.info key of the events `deferred` keeps
_QUEUED = "kurator_history_queued"  # Session.info key of the events waiting in the session's write queue


class HistoryService:
    """Writes and reads history events; writes happen inside the caller's transaction.

    Listeners subscribed to an event type run in the same transaction right after the event is recorded, so a
    domain layer can keep its records in step with the process (or refuse the change by raising). Whatever they
    read through the session sees the event and everything the change wrote before it.
    """

    def __init__(self, engine: ProcessEngine):
        self._engine = engine
        self._listeners: dict[str, list[Listener]] = {}

    def subscribe(self, event_type: str, listener: Listener) -> None:
        self._listeners.setdefault(event_type, []).append(listener)

    def has_listeners(self, event_type: str) -> bool:
        """Whether anything listens to events of this type (work done only for listeners can be skipped)."""
        return bool(self._listeners.get(event_type))

    def record(self, session: Session, event_type: str, instance_id: int | None = None, *,
               task_id: str | None = None, actor: str | None = None, data: dict[str, Any] | None = None) -> None:
        values = {"instance_id": instance_id, "task_id": task_id, "event_type": event_type, "actor": actor,
                  "at": self._engine.clock.now(), "data": data}
        listeners = self._listeners.get(event_type, ())
        kept = session.info.get(_KEPT)
        if kept is None:
            event = HistoryEvent(**values)
            session.add(event)
        else:  # inside `deferred`
            kept.append(values)
            if not listeners:
                return
            # the listeners may read what was recorded so far: inside a change the events join its queued writes,
            # which go out before the listener's first statement (`Database.send_queued`), so a listener that
            # reads nothing costs no round trip
            self._write(session, kept)
            event = HistoryEvent(**values)  # not in the session: the row is written
        for listener in listeners:
            listener(session, event)

    @contextmanager
    def deferred(self, session: Session) -> Iterator[None]:
        """Within: the events recorded in `session` are written together when the block ends, in one INSERT
        (executemany) without ORM objects; an event with listeners is written at once, with those before it,
        and its listeners get an event object that is not in the session. Nothing is written on an error."""
        previous = session.info.get(_KEPT)
        if previous:  # an enclosing block's events come first
            self._write(session, previous)
        kept: list[dict[str, Any]] = []
        session.info[_KEPT] = kept
        try:
            yield
            self._write(session, kept)
        finally:
            if previous is None:
                session.info.pop(_KEPT, None)
            else:
                session.info[_KEPT] = previous

    def _write(self, session: Session, kept: list[dict[str, Any]]) -> None:
        """The kept events in one INSERT; inside `Database.write_queue` they join the change's other writes, all
        the events written until the queue goes out in that one INSERT."""
        if not kept:
            return
        db = self._engine.db
        queue = db.queueing(session)
        if queue is None:
            session.execute(insert(HistoryEvent.__table__), list(kept))
        else:
            pending = session.info.get(_QUEUED)
            if pending is None or pending.sent or pending.queue is not queue:
                pending = session.info[_QUEUED] = _QueuedEvents(queue)
                db.queue(session, lambda events=pending: events.insert(db))
            pending.rows.extend(kept)
        kept.clear()

    def record_now(self, event_type: str, instance_id: int | None = None, **kwargs: Any) -> None:
        """Record in a transaction of its own (for events about attempts that were rolled back)."""
        with self._engine.db.session() as session:
            self.record(session, event_type, instance_id, **kwargs)

    def for_instance(self, instance_id: int) -> list[dict[str, Any]]:
        with self._engine.db.session() as session:
            rows = session.scalars(
                select(HistoryEvent).where(HistoryEvent.instance_id == instance_id).order_by(HistoryEvent.id)
            ).all()
            return [event_to_dict(row) for row in rows]


class _QueuedEvents:
    """Events waiting in a session's queue of writes, inserted together when it goes out."""

    def __init__(self, queue: list):
        self.queue = queue  # the queue (of one `write_queue` block) they wait in
        self.rows: list[dict[str, Any]] = []
        self.sent = False

    def insert(self, db) -> tuple[Any, dict[str, Any]]:
        self.sent = True
        return db.insert_rows(HistoryEvent.__table__, self.rows, prefix="h")


def event_to_dict(row: HistoryEvent) -> dict[str, Any]:
    return {
        "id": row.id,
        "instance_id": row.instance_id,
        "task_id": row.task_id,
        "type": row.event_type,
        "actor": row.actor,
        "at": row.at.isoformat(),
        "data": row.data,
    }
