"""DraftService: methodologists' unfinished diagrams and forms, saved between sessions of the modeler.

A draft is not a deployment: nothing runs on it and the engine never reads it. It is shared by the methodologists
of the installation (one of them may finish what another started), so a save names the revision it was made on and
is refused when someone else saved the same draft in between, instead of silently overwriting their work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from .errors import Conflict, InvalidInput, NotFound
from .models import ModelerDraft

if TYPE_CHECKING:
    from . import ProcessEngine

KINDS = ("diagram", "form")
MAX_CONTENT = 5 * 1024 * 1024


def draft_to_dict(row: ModelerDraft, with_content: bool = True) -> dict[str, Any]:
    data = {"id": row.id, "kind": row.kind, "key": row.key, "name": row.name, "base_version": row.base_version,
            "note": row.note, "revision": row.revision, "created_by": row.created_by,
            "created_at": row.created_at.isoformat(), "saved_by": row.saved_by, "saved_at": row.saved_at.isoformat()}
    if with_content:
        data["content"] = row.content
    return data


class DraftService:
    def __init__(self, engine: ProcessEngine):
        self._engine = engine

    def save(self, kind: str, content: str, actor: str, *, key: str | None = None, name: str | None = None,
             base_version: int | None = None, note: str | None = None, draft_id: int | None = None,
             revision: int | None = None) -> dict[str, Any]:
        """Create a draft, or update draft `draft_id` made on `revision`; returns it with its new revision."""
        if kind not in KINDS:
            raise InvalidInput(f"kind: must be one of {', '.join(KINDS)}")
        if not isinstance(content, str) or not content.strip():
            raise InvalidInput("content: the draft is empty")
        if len(content) > MAX_CONTENT:
            raise InvalidInput(f"content: a draft may not exceed {MAX_CONTENT // (1024 * 1024)} MB")
        now = self._engine.clock.now()
        fields = {"key": (key or None) and key[:200], "name": (name or None) and name[:300],
                  "base_version": base_version, "note": (note or None) and note[:2000], "content": content,
                  "saved_by": actor, "saved_at": now}
        with self._engine.db.session() as session:
            if draft_id is None:
                row = ModelerDraft(kind=kind, revision=1, created_by=actor, created_at=now, **fields)
                session.add(row)
                session.flush()
                return draft_to_dict(row)
            row = session.get(ModelerDraft, draft_id)
            if row is None or row.kind != kind:
                raise NotFound(f"No {kind} draft {draft_id}; it may have been deployed or deleted")
            if revision is None:
                raise InvalidInput("revision: give the revision of the draft you changed")
            result = session.execute(update(ModelerDraft)
                                     .where(ModelerDraft.id == draft_id, ModelerDraft.revision == revision)
                                     .values(revision=revision + 1, **fields)
                                     .execution_options(synchronize_session=False))
            if result.rowcount != 1:
                raise Conflict(f"Draft {draft_id} was saved by {row.saved_by} at {row.saved_at.isoformat()} "
                               f"after you opened it; reload it, or save yours as a new draft")
            session.refresh(row)
            return draft_to_dict(row)

    def get(self, draft_id: int, kind: str | None = None) -> dict[str, Any]:
        with self._engine.db.session() as session:
            row = session.get(ModelerDraft, draft_id)
            if row is None or (kind is not None and row.kind != kind):
                raise NotFound(f"No draft {draft_id}; it may have been deployed or deleted")
            return draft_to_dict(row)

    def list(self, kind: str | None = None) -> list[dict[str, Any]]:
        query = select(ModelerDraft).order_by(ModelerDraft.saved_at.desc(), ModelerDraft.id.desc())
        if kind is not None:
            query = query.where(ModelerDraft.kind == kind)
        with self._engine.db.session() as session:
            return [draft_to_dict(row, with_content=False) for row in session.scalars(query)]

    def delete(self, draft_id: int) -> dict[str, Any]:
        """Remove a draft; returns what it was (for the audit log)."""
        with self._engine.db.session() as session:
            row = session.get(ModelerDraft, draft_id)
            if row is None:
                raise NotFound(f"No draft {draft_id}; it may have been deployed or deleted already")
            data = draft_to_dict(row, with_content=False)
            session.delete(row)
            return data
