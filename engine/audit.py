"""AuditService: the access log required for personal data (152-ФЗ): every login, read and change of a case."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from .models import AuditEvent

if TYPE_CHECKING:
    from . import ProcessEngine


class AuditService:
    def __init__(self, engine: ProcessEngine):
        self._engine = engine

    def record(self, actor: str | None, action: str, object_type: str | None = None, object_id: Any = None,
               ip: str | None = None, details: dict[str, Any] | None = None, session=None) -> None:
        """Write an audit event (in the caller's transaction when `session` is given)."""
        with self._engine.db.session(join=session) as session:
            session.add(AuditEvent(at=self._engine.clock.now(), actor=actor, action=action, object_type=object_type,
                                   object_id=str(object_id) if object_id is not None else None, ip=ip,
                                   details=details))

    def count(self, action: str, actor: str | None = None, ip: str | None = None,
              within: timedelta = timedelta(minutes=15)) -> int:
        """How many events of a kind happened recently (e.g. failed logins, for rate limiting)."""
        since = self._engine.clock.now() - within
        query = select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action,
                                                                   AuditEvent.at >= since)
        if actor is not None:
            query = query.where(AuditEvent.actor == actor)
        if ip is not None:
            query = query.where(AuditEvent.ip == ip)
        with self._engine.db.session() as session:
            return session.scalar(query) or 0

    def events(self, object_type: str | None = None, object_id: Any = None, limit: int = 200) -> list[dict]:
        query = select(AuditEvent)
        if object_type is not None:
            query = query.where(AuditEvent.object_type == object_type)
        if object_id is not None:
            query = query.where(AuditEvent.object_id == str(object_id))
        with self._engine.db.session() as session:
            return [{"at": e.at.isoformat(), "actor": e.actor, "action": e.action, "object_type": e.object_type,
                     "object_id": e.object_id, "ip": e.ip, "details": e.details}
                    for e in session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit))]
