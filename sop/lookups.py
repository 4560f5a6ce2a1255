"""Reference rows a domain change reads several times in one transaction, read once per transaction.

A step's handler and the document it writes ask for the same few rows again and again: the recognition reads the
curator's account four times (to check the role, for the case block, the resolution and the working group) and the
commission's officials twice. Each of those was a statement of its own. Here they are kept in the session for the
rest of its transaction:

- `user_named`: a user account by login (the session's object);
- `officials`: the commission's full name, chair, secretary and meeting place (`sop.meetings.officials`);
- `latest_diagram`: the id and content hash of the file of a process's latest deployed version.

What is kept is forgotten when the transaction ends (commit or rollback), and whenever the session writes, or holds
unwritten, a change to a row of the tables the answers come from (users and their roles, agencies, municipalities,
the commission and its members, deployed versions): a change that edits the commission and then writes a document
in the same transaction prints the edit. (A change made with a Core statement instead of the session's objects is
not seen; the domain makes none to those tables.)
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from engine.models import Agency, Municipality, ProcessDefinition, Resource, User, UserRole

from .meetings.models import Commission, CommissionMember

_KEPT = "sop.lookups"
# the rows the kept answers are read from: a flush that writes any of them forgets everything kept
_SOURCES = (User, UserRole, Agency, Municipality, Commission, CommissionMember, ProcessDefinition, Resource)


def _kept(session: Session) -> dict[tuple, Any]:
    """What the session keeps; nothing while it holds unwritten changes to the source tables (the next read
    writes them first, as autoflush does, and reads what they make)."""
    if _KEPT in session.info and _touches_sources(session):
        forget(session)
    return session.info.setdefault(_KEPT, {})


def _touches_sources(session: Session) -> bool:
    # while a flush runs, or right after it, the session's new, dirty and deleted collections list what it writes
    return any(isinstance(row, _SOURCES) for rows in (session.new, session.dirty, session.deleted) for row in rows)


def user_named(session: Session, username: str | None) -> User | None:
    """The account with this login, or None; read once per transaction (kept, so that the session's identity map,
    which holds its objects weakly, keeps it too)."""
    if not username:
        return None
    kept = _kept(session)
    key = ("user", username)
    if key in kept:
        user = kept[key]
        if user is None or (user.username == username and user in session):
            return user
    user = session.scalar(select(User).where(User.username == username))
    kept[key] = user
    return user


def officials(session: Session, municipality_id: int) -> dict[str, Any]:
    """`sop.meetings.officials.officials`, read once per transaction (a copy: the caller may change it)."""
    from .meetings.officials import officials as read_officials

    kept = _kept(session)
    key = ("officials", municipality_id)
    if key not in kept:
        kept[key] = read_officials(session, municipality_id)
    return dict(kept[key])


def latest_diagram(session: Session, process_key: str) -> tuple[int, str] | None:
    """(resource id, content hash) of the file of the latest deployed version of `process_key`, or None; read once
    per transaction."""
    kept = _kept(session)
    key = ("diagram", process_key)
    if key not in kept:
        found = session.execute(select(Resource.id, Resource.content_hash)
                                .join(ProcessDefinition, ProcessDefinition.resource_id == Resource.id)
                                .where(ProcessDefinition.key == process_key)
                                .order_by(ProcessDefinition.version.desc()).limit(1)).first()
        kept[key] = (found.id, found.content_hash) if found is not None else None
    return kept[key]


def forget(session: Session) -> None:
    """Forget what this session keeps (done by itself at the end of a transaction and after a relevant write)."""
    session.info.pop(_KEPT, None)


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _context: Any) -> None:
    if _KEPT in session.info and _touches_sources(session):
        forget(session)


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_soft_rollback")
def _after_transaction(session: Session, *_args: Any) -> None:
    forget(session)
