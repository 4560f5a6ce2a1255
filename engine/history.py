"""HistoryService: the append-only record of what happened to each instance."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
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


class HistoryService:
    """Writes and reads history events; writes happen inside the caller's transaction.

    Listeners subscribed to an event type run in the same transaction right after the event is written, so a
    domain layer can keep its records in step with the process (or refuse the change by raising).
    """

    def __init__(self, engine: ProcessEngine):
        self._engine = engine
        self._listeners: dict[str, list[Listener]] = {}

    def subscribe(self, event_type: str, listener: Listener) -> None:
        self._listeners.setdefault(event_type, []).append(listener)

    def record(self, session: Session, event_type: str, instance_id: int | None = None, *,
               task_id: str | None = None, actor: str | None = None, data: dict[str, Any] | None = None) -> None:
        event = HistoryEvent(instance_id=instance_id, task_id=task_id, event_type=event_type, actor=actor,
                             at=self._engine.clock.now(), data=data)
        session.add(event)
        for listener in self._listeners.get(event_type, ()):
            listener(session, event)

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
