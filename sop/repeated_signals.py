"""Repeated signals: a signal about a family whose case the commission already works with (004 §4.4–4.5).

An agency that registers such a signal attaches it to the open case (`SopService.register_intake`). The signal is
written in the agency's journal and in the commission's, both linked to the case; it does not open the case file to
an agency outside the case's working group. The commission's entry then waits for the commission to consider it:
until the secretary of the municipality (or the case's curator) records what was done with it, it is listed in
their inbox, and the record goes into the «Результат» column of the commission's journal (Appendix 1).

A case's first entry in the commission's journal is the signal that opened it; every later one is a repeated
signal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from engine.errors import InvalidInput, NotFound, PermissionDenied
from engine.models import Agency, User

from .models import Case, IntakeEntry
from .service import OPEN_STATUSES  # the statuses of a case the commission still works on, kept there once

if TYPE_CHECKING:
    from engine import ProcessEngine

SECRETARY_ROLE = "commission_secretary"
RESULT_MAX = 2000


def pending(engine: ProcessEngine, username: str) -> list[dict[str, Any]]:
    """The repeated signals not yet considered that the user considers: every open case's of the municipality for
    its commission's secretary, their own cases' for a curator; none for anyone else."""
    with engine.db.session() as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is None or not user.is_active or user.agency is None:
            return []
        query = _pending_query(user.agency.municipality_id)
        if SECRETARY_ROLE not in user.roles:
            if "curator" not in user.roles:
                return []
            query = query.where(Case.curator == username)
        origin = aliased(IntakeEntry)
        rows = session.execute(query.add_columns(origin.agency_id).outerjoin(
            origin, origin.id == IntakeEntry.forwarded_from_id).order_by(IntakeEntry.received_on, IntakeEntry.id)
        ).all()
        agencies = {a.id: a.name for a in session.scalars(select(Agency).where(
            Agency.id.in_({agency_id for *_rest, agency_id in rows if agency_id is not None}))).unique()}
        return [{"id": entry.id, "received_on": entry.received_on, "source": entry.source,
                 "agency": agencies.get(agency_id) or entry.agency.name, "problem": entry.problem,
                 "children": entry.children_text, "parents": entry.parents_text, "address": entry.address,
                 "threat_to_life": entry.threat_to_life, "registered_by": entry.registered_by,
                 "case_id": case.id, "case_number": case.number}
                for entry, case, agency_id in rows]


def consider(engine: ProcessEngine, entry_id: int, username: str, result: str) -> None:
    """Record what the commission did with a repeated signal: the commission journal's «Результат»."""
    text = (result or "").strip()
    if not text:
        raise InvalidInput("result: say what was done with the signal",
                           {"result": "запишите результат рассмотрения сообщения"})
    if len(text) > RESULT_MAX:
        raise InvalidInput(f"result: at most {RESULT_MAX} characters",
                           {"result": f"не более {RESULT_MAX} символов"})
    with engine.db.session() as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is None or not user.is_active or user.agency is None:
            raise PermissionDenied(f"{username} may not consider signals")
        row = session.execute(_pending_query(user.agency.municipality_id).where(IntakeEntry.id == entry_id)).first()
        if row is None:
            raise NotFound(f"No repeated signal {entry_id} waiting to be considered")
        entry, case = row
        if SECRETARY_ROLE not in user.roles and case.curator != username:
            raise PermissionDenied(f"{username} may not consider the signals of case {case.id}")
        entry.result = text


def _pending_query(municipality_id: int):
    """The commission journal's entries of the municipality's open cases after each case's first, not considered."""
    commission = select(Agency.id).where(Agency.municipality_id == municipality_id, Agency.kind == "commission")
    first = (select(IntakeEntry.case_id, func.min(IntakeEntry.id).label("first_id"))
             .where(IntakeEntry.agency_id.in_(commission), IntakeEntry.case_id.is_not(None))
             .group_by(IntakeEntry.case_id).subquery())
    return (select(IntakeEntry, Case)
            .join(first, first.c.case_id == IntakeEntry.case_id)
            .join(Case, Case.id == IntakeEntry.case_id)
            .where(IntakeEntry.agency_id.in_(commission), IntakeEntry.id > first.c.first_id,
                   IntakeEntry.result.is_(None), Case.municipality_id == municipality_id,
                   Case.status.in_(OPEN_STATUSES)))
