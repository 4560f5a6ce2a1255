"""What one user may see of one case file: documents, agencies' reports and proposals, the history's data.

The rules of data minimisation, shared by the case page and the REST API (neither decides on its own):

- **Full view** — the commission (municipality-wide staff: secretary, chair, members, managers at the
  commission) and the case's curator: every document, every agency's report and proposal, all history data.
- **Participant view** — the staff of another agency of the working group: the documents every agency receives
  (`SHARED_DOCUMENTS`), the documents their own agency made (its proposals), and the documents their kind of
  agency draws up (`AGENCY_DOCUMENTS`: the removal act for guardianship); the reports and proposals of their own
  agency only; in the history, the data of their own agency's entries only — the others keep their type, time,
  step and name (`event_outline`) but not what was entered or sent.

Whether the user may open the case at all (the data scope) is decided before, by the caller; this module only
says what of an open case they see. It takes a plain description of the user (`AccessUser`), not a web session.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Select, or_, select
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from engine import history
from engine.models import HistoryEvent, HumanTask, User

from .models import Case, CaseAgency, Document, InstanceReader, Proposal, agency_reader, user_reader

# Documents every agency of the working group receives: the conclusion, the programme and the resolutions.
SHARED_DOCUMENTS = frozenset({"conclusion", "programme", "resolution_recognition", "resolution_approval",
                              "resolution_closure"})
# Documents an agency of that kind draws up, so its staff see them in every case they take part in.
AGENCY_DOCUMENTS = {"removal_act": frozenset({"guardianship"})}
# Roles that may regenerate a document from today's records (besides the case's curator).
REGENERATING_ROLES = frozenset({"commission_secretary"})

# What names a history event without carrying what was entered or sent, per event type; other types keep
# the element and the name only, and a completed task (its form data) or an incident keeps nothing.
_OUTLINE_KEYS: dict[str, tuple[str, ...]] = {
    history.INSTANCE_STARTED: ("key", "version"),
    history.TASK_COMPLETED: (),
    history.INCIDENT: (),
    history.CONFLICT_REJECTED: (),
    history.INSTANCE_MIGRATED: ("from", "to"),
    history.MIGRATION_REVERTED: ("from", "to"),
}
_DEFAULT_OUTLINE = ("element", "name")
_VERSION_KEYS = ("key", "version")


class AccessUser(Protocol):
    """The user as the rules need them (e.g. `webapp.access.CurrentUser`)."""

    @property
    def username(self) -> str: ...

    @property
    def roles(self) -> Set[str]: ...

    @property
    def agency_id(self) -> int | None: ...

    @property
    def agency_kind(self) -> str | None: ...

    @property
    def municipality_wide(self) -> bool: ...


def readers_of(username: str, agency_id: int | None) -> list[str]:
    """The readers of `sop_instance_reader` that stand for a user: their agency's staff, and themselves."""
    return ([agency_reader(agency_id)] if agency_id is not None else []) + [user_reader(username)]


def cases_taken_part_in(query: Select, username: str, agency_id: int | None) -> Select:
    """`query` (of `Case` rows or ids) narrowed to the cases an agency's staff member may open: those of an instance
    their agency or they read (`InstanceReader`: the working group, the curator, and the scope that follows the
    work: a task the agency or the user holds or held, or the user completed), and a case without instances whose
    working group or curator names them."""
    read = select(InstanceReader.case_id).where(InstanceReader.reader.in_(readers_of(username, agency_id)))
    participating = select(CaseAgency.case_id).where(CaseAgency.agency_id == agency_id)
    return query.where(or_(Case.id.in_(read), Case.id.in_(participating), Case.curator == username))


@dataclass(frozen=True)
class CaseAccess:
    """What one user may see of one case (that they may open)."""

    user: AccessUser
    curator: bool
    in_working_group: bool = False  # the user's agency takes part in the case (not only through a task)

    @classmethod
    def of(cls, user: AccessUser, case: Case) -> CaseAccess:
        """The access of `user` to `case`."""
        return cls(user, case.curator is not None and case.curator == user.username,
                   user.agency_id is not None and any(p.agency_id == user.agency_id for p in case.participants))

    @property
    def full(self) -> bool:
        """Sees everything: municipality-wide commission staff and the case's curator."""
        return self.user.municipality_wide or self.curator

    def _own(self, agency_id: int | None) -> bool:
        return agency_id is not None and agency_id == self.user.agency_id

    def sees_report(self, agency_id: int | None) -> bool:
        """May read an execution report made by `agency_id`."""
        return self.full or self._own(agency_id)

    def sees_proposal(self, agency_id: int | None) -> bool:
        """May read the proposals to the programme made by `agency_id`."""
        return self.full or self._own(agency_id)

    def sees_document(self, kind: str, owner_agency_id: int | None) -> bool:
        """May see (and download) a document of this kind made by `owner_agency_id` (see `document_owner`)."""
        if self.full or kind in SHARED_DOCUMENTS or self._own(owner_agency_id):
            return True
        return self.user.agency_kind in AGENCY_DOCUMENTS.get(kind, ())

    @property
    def may_regenerate(self) -> bool:
        """May render a document again from today's records: the commission secretary and the curator."""
        return bool(REGENERATING_ROLES & set(self.user.roles)) or self.curator

    def sees_history_data(self, owner_agency_id: int | None) -> bool:
        """May read the data of a history entry that is `owner_agency_id`'s (see `history_owners`)."""
        return self.full or self._own(owner_agency_id)

    def history_data(self, event_type: str, data: Mapping[str, Any] | None,
                     owner_agency_id: int | None) -> Mapping[str, Any] | None:
        """A history entry's data as this user may read it: all of it, or only its outline."""
        if self.sees_history_data(owner_agency_id):
            return data
        return event_outline(event_type, data)


def event_outline(event_type: str, data: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What names a history event — the step (`element`), the task's, message's or signal's `name`, the
    process versions of a migration — without what was entered or sent; None when nothing is left.

    The case page's timeline is built from this only (it never shows form data), and so are the API's history
    entries of other agencies."""
    if not isinstance(data, Mapping):
        return None
    outline: dict[str, Any] = {}
    for key in _OUTLINE_KEYS.get(event_type, _DEFAULT_OUTLINE):
        value = data.get(key)
        if key in ("from", "to"):
            if isinstance(value, Mapping):
                outline[key] = {k: value[k] for k in _VERSION_KEYS if k in value}
        elif key in data and not isinstance(value, (Mapping, list)):
            outline[key] = value
    return outline or None


def history_owners(session: Session, events: Iterable[HistoryEvent]) -> dict[int, int | None]:
    """Event id -> the agency whose entry it is (None: the system's, or nobody's agency).

    An event about a task is the agency's that completed the task (its completion: whoever completed it); while
    the task is not completed, the agency's of whoever holds it, or else the agency it is addressed to. Any other
    event is the agency's of whoever caused it."""
    events = list(events)
    doers: dict[str, str | None] = {}
    for event in events:  # the history knows best who completed a task (a task may run more than once)
        if event.task_id and event.event_type == history.TASK_COMPLETED:
            doers[event.task_id] = event.actor
    addressed: dict[str, int | None] = {}
    undone = {e.task_id for e in events if e.task_id and e.task_id not in doers}
    if undone:
        for task_id, completed_by, assignee, agency_id in session.execute(
                select(HumanTask.id, HumanTask.completed_by, HumanTask.assignee, HumanTask.agency_id)
                .where(HumanTask.id.in_(undone))):
            doers[task_id] = completed_by or assignee
            addressed[task_id] = agency_id

    def who(event: HistoryEvent) -> str | None:
        if event.task_id and event.event_type != history.TASK_COMPLETED:
            return doers.get(event.task_id)
        return event.actor

    usernames = {who(e) for e in events} - {None}
    agencies = dict(session.execute(select(User.username, User.agency_id)
                                    .where(User.username.in_(usernames))).all()) if usernames else {}

    def owner(event: HistoryEvent) -> int | None:
        doer = who(event)
        if doer is None and event.task_id:
            return addressed.get(event.task_id)
        return agencies.get(doer) if doer is not None else None

    return {e.id: owner(e) for e in events}


# -- documents ----------------------------------------------------------------------------------------------------

_DOCUMENT_COLUMNS = (Document.id, Document.case_id, Document.kind, Document.title, Document.filename,
                     Document.size, Document.source_ref, Document.agency_id, Document.created_at,
                     Document.created_by, Document.pdf_state)


def proposal_owners(session: Session, case_id: int) -> dict[int, int | None]:
    """Proposal id -> the agency that made it, for the proposals of a case."""
    return dict(session.execute(select(Proposal.id, Proposal.agency_id).where(Proposal.case_id == case_id)).all())


def document_owner(agency_id: int | None, source_ref: str | None,
                   proposals: Mapping[int, int | None]) -> int | None:
    """The agency a document belongs to: its own `agency_id`, or the agency of the proposal it renders."""
    if agency_id is None and source_ref and source_ref.startswith("proposal-") and source_ref[9:].isdigit():
        return proposals.get(int(source_ref[9:]))
    return agency_id


def visible_documents(session: Session, access: CaseAccess, case_id: int) -> list[Row]:
    """Every version of the case's documents the user may see, newest first, without their content (rows of
    id, case_id, kind, title, filename, size, source_ref, agency_id, created_at, created_by, pdf_state)."""
    owners = proposal_owners(session, case_id)
    rows = session.execute(select(*_DOCUMENT_COLUMNS).where(Document.case_id == case_id)
                           .order_by(Document.id.desc())).all()
    return [row for row in rows
            if access.sees_document(row.kind, document_owner(row.agency_id, row.source_ref, owners))]


def may_open_document(session: Session, access: CaseAccess, document: Document | Row) -> bool:
    """May the user open this document of the case `access` is for (its case checked by the caller)."""
    if document.case_id is None:
        return False
    owner = document_owner(document.agency_id, document.source_ref, proposal_owners(session, document.case_id))
    return access.sees_document(document.kind, owner)
