"""Requests for materials (004 §4.6, §5.1): the commission asks agencies of the system of prevention for what
they know of a family, each agency answering in a task of its own (process `sop_materials`); the answer is
kept in the case file as a document of that agency."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from engine.errors import InvalidInput, NotFound, PermissionDenied
from engine.models import Agency, HumanTask, User

from .checks import CHECK_FORM, SENDER_ROLE
from .models import Case, InstanceScope

if TYPE_CHECKING:
    from engine import ProcessEngine

MATERIALS_PROCESS = "sop_materials"
ANSWER_WORKING_DAYS = 3
MAX_QUESTION = 4000


def request_materials(engine: ProcessEngine, case_id: int, agency_ids: list[Any], question: str, by: str,
                      due_on: date | None = None) -> list[int]:
    """Ask each agency for materials; returns the started instances. The answer is due in 3 working days, and
    no later than the case's open check, unless `due_on` is given. All or nothing."""
    question = str(question or "").strip()
    if not question:
        raise InvalidInput("question: say what the commission asks for", {"question": "укажите, что запрашивается"})
    if len(question) > MAX_QUESTION:
        raise InvalidInput("question: too long", {"question": f"не более {MAX_QUESTION} символов"})
    try:
        wanted = sorted({int(a) for a in agency_ids or []})
    except (TypeError, ValueError):
        raise InvalidInput("agencies: choose agencies from the list", {"agencies": "выберите органы"}) from None
    if not wanted:
        raise InvalidInput("agencies: choose at least one agency", {"agencies": "выберите хотя бы один орган"})
    with engine.db.session() as session:
        case = session.get(Case, case_id)
        if case is None:
            raise NotFound(f"No case {case_id}")
        sender = session.scalar(select(User).where(User.username == by))
        if sender is None or SENDER_ROLE not in sender.roles or sender.agency is None \
                or sender.agency.municipality_id != case.municipality_id:
            raise PermissionDenied("Only the commission's secretary of the case's municipality requests materials")
        agencies = session.scalars(select(Agency).where(Agency.id.in_([a for a in wanted if 0 < a < 2**31]),
                                                        Agency.municipality_id == case.municipality_id,
                                                        Agency.kind != "commission")).unique().all()
        if len(agencies) != len(wanted):
            raise InvalidInput("agencies: an agency is not of the case's municipality",
                               {"agencies": "выберите органы своего муниципалитета"})
        tz = ZoneInfo(sender.agency.timezone)
        today = engine.clock.now().astimezone(tz).date()
        if due_on is None:
            due_on = engine.calendar.calendar.add_working_days(today, ANSWER_WORKING_DAYS)
            check_due = session.scalar(select(HumanTask.due).join(InstanceScope,
                                                                  InstanceScope.instance_id == HumanTask.instance_id)
                                       .where(InstanceScope.case_id == case.id, HumanTask.form_key == CHECK_FORM,
                                              HumanTask.status == "open"))
            if check_due is not None and today <= check_due.astimezone(tz).date() < due_on:
                due_on = check_due.astimezone(tz).date()
        due_at = datetime.combine(due_on, time(23, 59, 59), tzinfo=tz)
        started = []
        for agency in agencies:
            variables = {"case_id": case.id, "municipality": case.municipality.name,
                         "family_name": case.family.name if case.family else "", "agency_id": agency.id,
                         "agency_name": agency.name, "materials_question": question,
                         "requested_on": today.isoformat(), "due_on": due_at.isoformat()}
            instance_id = engine.runtime.start(MATERIALS_PROCESS, variables, business_key=f"case-{case.id}",
                                               started_by=by, timezone=agency.timezone, session=session)
            session.add(InstanceScope(instance_id=instance_id, case_id=case.id, municipality_id=case.municipality_id))
            started.append(instance_id)
        return started
