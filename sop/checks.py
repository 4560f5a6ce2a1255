"""The check of a signal (004 §4.6, §5.1): the commission's secretary names the agency that checks it.

The `sop_check` task opens for the secretary; she may send it to an agency of the municipality, whose
specialists then write the conclusion (Appendix 2) within the same five working days, or call it back to the
commission. The task keeps its id, deadline and form; the move is in the case's history (`task_addressed`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from engine.errors import InvalidInput, NotFound, PermissionDenied
from engine.models import Agency, HumanTask, User

from .models import Case, InstanceScope

if TYPE_CHECKING:
    from engine import ProcessEngine

CHECK_FORM = "sop_check"
SENDER_ROLE = "commission_secretary"


def check_agencies(engine: ProcessEngine, case_id: int) -> list[dict[str, Any]]:
    """The agencies of the case's municipality that a check may be sent to, the commission first."""
    with engine.db.session() as session:
        case = session.get(Case, case_id)
        if case is None:
            raise NotFound(f"No case {case_id}")
        rows = session.scalars(select(Agency).where(Agency.municipality_id == case.municipality_id)
                               .order_by(Agency.kind != "commission", Agency.name)).unique()
        return [{"id": a.id, "name": a.name, "kind": a.kind} for a in rows]


def open_check(engine: ProcessEngine, case_id: int) -> dict[str, Any] | None:
    """The open check task of a case, with the agency it is addressed to (None when there is none)."""
    with engine.db.session() as session:
        row = session.scalar(select(HumanTask).join(InstanceScope, InstanceScope.instance_id == HumanTask.instance_id)
                             .where(InstanceScope.case_id == case_id, HumanTask.form_key == CHECK_FORM,
                                    HumanTask.status == "open").limit(1))
        if row is None:
            return None
        agency = session.get(Agency, row.agency_id) if row.agency_id is not None else None
        return {"task_id": row.id, "agency_id": row.agency_id, "agency_name": agency.name if agency else None,
                "due": row.due, "assignee": row.assignee}


def require_secretary(session, username: str, municipality_id: int | None, what: str) -> User:
    """The commission's secretary of that municipality, who alone sends checks and asks for materials;
    `PermissionDenied` for anyone else."""
    sender = session.scalar(select(User).where(User.username == username))
    if (sender is None or SENDER_ROLE not in sender.roles or sender.agency is None or municipality_id is None
            or sender.agency.municipality_id != municipality_id):
        raise PermissionDenied(f"Only the commission's secretary of the case's municipality {what}")
    return sender


def send_check(engine: ProcessEngine, task_id: str, agency_id: Any, by: str) -> dict[str, Any]:
    """Send an open check to an agency of the case's municipality (the commission itself calls it back)."""
    try:
        agency_id = int(agency_id)
    except (TypeError, ValueError):
        raise InvalidInput("agency: choose an agency from the list", {"agency": "выберите орган"}) from None
    with engine.db.session() as session:
        row = session.get(HumanTask, str(task_id))
        if row is None or row.form_key != CHECK_FORM:
            raise NotFound(f"No check task {task_id}")
        scope = session.scalar(select(InstanceScope).where(InstanceScope.instance_id == row.instance_id))
        require_secretary(session, by, scope.municipality_id if scope else None, "sends a check")
        agency = session.get(Agency, agency_id) if 0 < agency_id < 2**31 else None
        if agency is None or agency.municipality_id != scope.municipality_id:
            raise InvalidInput("agency: the agency is not of the case's municipality",
                               {"agency": "выберите орган своего муниципалитета"})
        roles = [SENDER_ROLE] if agency.kind == "commission" else ["agency_specialist"]
        return engine.tasks.address(row.id, agency.id, roles, by, session=session)
