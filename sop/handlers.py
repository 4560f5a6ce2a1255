"""What completing a task of the SOP diagrams does to the case records, by form key.

Handlers run inside the transaction that completes the task: if one refuses (raises `InvalidInput`), the task
stays open and nothing of the attempt is saved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from engine.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from engine.models import Agency, HumanTask, ProcessInstance, User

from . import casefile, lookups, materials
from .meetings.models import Commission, Meeting, MeetingItem
from .models import Activity, Case, CaseAgency, ExecutionReport, Proposal, Reconciliation, Resolution

if TYPE_CHECKING:
    from .service import SopService


@dataclass
class Context:
    service: SopService
    session: Session
    case: Case | None
    task: HumanTask
    data: dict[str, Any]
    actor: str | None
    instance: ProcessInstance | None

    def run(self, handler: Callable[[Context], None]) -> None:
        handler(self)

    @property
    def today(self) -> date:
        return self.service.engine.clock.now().date()

    def date(self, name: str, default: date | None = None) -> date | None:
        value = self.data.get(name)
        if not value:
            return default
        try:
            return date.fromisoformat(str(value)[:10])
        except ValueError as exc:
            raise InvalidInput(f"{name}: '{value}' is not a date", {name: "дата ГГГГ-ММ-ДД"}) from exc

    def resolution(self, kind: str, decision: str, number_field: str, date_field: str, **extra: Any) -> Resolution:
        """The resolution the step records. Its number is the meeting's (`resolution_number`, e.g. «3/2») when
        the decision was taken at a meeting, else the form's `number_field`; the vote, when the data has one."""
        number = self.data.get("resolution_number") or self.data.get(number_field)
        for name in ("votes_for", "votes_against", "present"):
            if name not in extra and self.data.get(name) not in (None, ""):
                extra[name] = _int(self.data, name)
        resolution = Resolution(case_id=self.case.id, kind=kind, decision=decision,
                                number=str(number or "") or None,
                                adopted_on=self.date(date_field, self.today), data=dict(self.data),
                                meeting_id=_meeting_id(self.data), created_by=self.actor,
                                created_at=self.service.engine.clock.now(), **extra)
        self.session.add(resolution)
        self.session.flush()
        return resolution

    def document(self, kind: str, source_ref: str | None = None, agency_id: int | None = None,
                 title: str | None = None) -> None:
        casefile.generate(self.service.engine, self.session, self.case, kind, self.actor, source_ref, agency_id,
                          title)


def on_check(ctx: Context) -> None:
    case = ctx.case
    case.danger_level = ctx.data.get("danger_level")
    case.sop_confirmed = bool(ctx.data.get("sop_confirmed"))
    case.criteria = list(ctx.data.get("family_criteria") or [])
    case.conclusion = dict(ctx.data)
    if not case.sop_confirmed:
        case.status = "rejected"
    ctx.document("conclusion")


def on_recognition(ctx: Context) -> None:
    case, data = ctx.case, ctx.data
    _check_where_decided(ctx, "meeting_date")
    if data.get("decision") == "recognize":
        curator = str(data.get("curator") or "").strip()
        user = lookups.user_named(ctx.session, curator)
        if user is None or "curator" not in user.roles:
            raise InvalidInput(f"curator: '{curator}' is not a user with the curator role",
                               {"curator": "укажите пользователя с ролью куратора"})
        case.status, case.curator = "recognized", curator
        case.recognized_on = ctx.date("meeting_date", ctx.today)
        case.ipr_term_months = int(data.get("ipr_term_months") or 6)
        case.consent_obtained = bool(data.get("consent_obtained"))
        _join_working_group(ctx, data.get("working_group") or [], user)
        ctx.resolution("recognition", "recognize", "resolution_number", "meeting_date")
        ctx.document("resolution_recognition")
    else:
        case.status = "rejected"
        ctx.resolution("rejection", "reject", "resolution_number", "meeting_date")
        # «не признавать»: the same form, for the agencies that sent the information to be told
        ctx.document("resolution_recognition", title=REJECTION_TITLE)


REJECTION_TITLE = "Постановление об отказе в признании несовершеннолетнего и (или) семьи находящимися в социально " \
    "опасном положении"


def _join_working_group(ctx: Context, kinds: list[str], curator: User) -> None:
    case = ctx.case
    agencies = ctx.session.scalars(select(Agency).where(Agency.municipality_id == case.municipality_id,
                                                        Agency.kind.in_(list(kinds)))).unique().all()
    if curator.agency_id is not None:
        agencies = [*agencies, ctx.session.get(Agency, curator.agency_id)]
    present = {p.agency_id for p in case.participants}
    for agency in agencies:
        if agency.id not in present:
            case.participants.append(CaseAgency(agency_id=agency.id, role="member"))
            present.add(agency.id)


def on_registration_card(ctx: Context) -> None:
    ctx.case.card = dict(ctx.data)
    ctx.document("registration_card")


def on_proposals(ctx: Context) -> None:
    agency_id = ctx.task.agency_id or _actor_agency(ctx)
    proposal = Proposal(case_id=ctx.case.id, agency_id=agency_id, data=dict(ctx.data), author=ctx.actor,
                        created_at=ctx.service.engine.clock.now())
    ctx.session.add(proposal)
    ctx.session.flush()
    ctx.document("proposals", source_ref=f"proposal-{proposal.id}", agency_id=agency_id)


def on_programme_draft(ctx: Context) -> None:
    case = ctx.case
    case.programme = {**(case.programme or {}), **ctx.data, "status": "draft"}
    ctx.session.execute(delete(Activity).where(Activity.case_id == case.id, Activity.status == "planned"))
    for number, item in enumerate(casefile.activities_from_form(ctx.data), start=1):
        item["agency_kind"] = item["agency_kind"] or _kind_of_responsible(case, item.get("responsible"))
        ctx.session.add(Activity(case_id=case.id, number=number, **item))
    ctx.document("programme")


def _kind_of_responsible(case: Case, responsible: str | None) -> str | None:
    """The kind of the working-group agency an activity's executor names ("ОМВД" → the police), so that each
    agency reports on its own activities; None when no agency, or more than one kind, matches."""
    text = (responsible or "").strip().lower()
    if len(text) < 3:
        return None
    kinds = {p.agency.kind for p in case.participants
             if p.agency is not None and p.agency.kind and (text in p.agency.name.lower()
                                                            or p.agency.name.lower() in text)}
    return kinds.pop() if len(kinds) == 1 else None


def on_programme_approval(ctx: Context) -> None:
    _check_where_decided(ctx, "approval_date")
    if ctx.data.get("decision") != "approve":
        return
    case = ctx.case
    case.programme = {**(case.programme or {}), "status": "approved",
                      "approved_protocol": ctx.data.get("protocol_number"),
                      "approved_date": ctx.data.get("approval_date")}
    ctx.resolution("approval", "approve", "protocol_number", "approval_date")
    ctx.document("resolution_approval")
    ctx.document("programme")


def on_execution_report(ctx: Context) -> None:
    """An agency's report (004 §5.5): the report is kept, and each of its activities takes the status the agency
    marked (done, partly, not done) with its date."""
    text = "\n".join(str(ctx.data.get(k) or "").strip() for k in REPORT_TEXT if str(ctx.data.get(k) or "").strip())
    ctx.session.add(ExecutionReport(case_id=ctx.case.id, agency_id=ctx.task.agency_id or _actor_agency(ctx),
                                    text=text or "—", data=dict(ctx.data), reported_on=ctx.today, author=ctx.actor))
    marks = {int(number): ("done", None) for number in ctx.data.get("done_activities") or []}
    for row in ctx.data.get("activity_reports") or []:
        if row.get("number") is not None and row.get("status") in ACTIVITY_MARKS:
            marks[int(row["number"])] = (row["status"], row.get("status_date"))
    if not marks:
        return
    activities = ctx.session.scalars(select(Activity).where(Activity.case_id == ctx.case.id,
                                                            Activity.number.in_(list(marks)))).all()
    for activity in activities:
        if activity.status == "cancelled":
            continue
        status, on = marks[activity.number]
        activity.status = status
        activity.done_on = _day(on, ctx.today) if status != "not_done" else None


ACTIVITY_MARKS = ("done", "partly", "not_done")
# the text of a report in the case file: an agency's report, or the curator's analysis of the round
REPORT_TEXT = ("activities_done", "report_results", "summary", "execution_summary")


def _day(value: Any, default: date) -> date:
    try:
        return date.fromisoformat(str(value)[:10]) if value else default
    except ValueError as exc:
        raise InvalidInput(f"activity_reports: '{value}' is not a date", {"activity_reports": "дата ГГГГ-ММ-ДД"}) \
            from exc


def on_closure_decision(ctx: Context) -> None:
    data = ctx.data
    _check_where_decided(ctx, "closure_date")
    votes_for, against, present = (_int(data, "votes_for"), _int(data, "votes_against"), _int(data, "present"))
    if votes_for + against > present:
        raise InvalidInput("votes: more votes than members present",
                           {"votes_for": "голосов больше, чем присутствующих"})
    if data.get("decision") != "close":
        return
    if votes_for * 2 <= present:
        raise InvalidInput("The resolution to close needs a majority of the members present "
                           f"({votes_for} of {present})",
                           {"votes_for": "решение принимается большинством голосов присутствующих"})
    if not data.get("grounds"):
        raise InvalidInput("grounds: the ground of removal from the register is required",
                           {"grounds": "укажите основание"})
    case = ctx.case
    case.status = "closed"
    case.closed_on = ctx.date("closure_date", ctx.today)
    case.closure_grounds = data.get("grounds")
    case.closure_reason = data.get("reasons")
    case.programme_result = data.get("result")
    ctx.resolution("closure", "close", "resolution_number", "closure_date", votes_for=votes_for,
                   votes_against=against, present=present, grounds=data.get("grounds"))
    ctx.document("resolution_closure")


def on_emergency_step(ctx: Context) -> None:
    """The emergency path flows back into the case: guardianship (or police) joins the working group, a confirmed
    threat makes the danger level critical, and the removal act goes into the case file."""
    case = ctx.case
    agency_id = ctx.task.agency_id or _actor_agency(ctx)
    if agency_id is not None and not any(p.agency_id == agency_id for p in case.participants):
        case.participants.append(CaseAgency(agency_id=agency_id, role="member", responsible=ctx.actor))
    if ctx.data.get("threat_confirmed"):
        case.danger_level = "critical"
    if ctx.task.form_key == "em_removal_act":
        ctx.document("removal_act")


def on_escalation(ctx: Context) -> None:
    """The missed 4-hour visit (`em_escalation`): when the secretary names a guardianship specialist in
    `reassign_to`, the open visit of the same process is assigned to them (they must be offered it)."""
    username = str(ctx.data.get("reassign_to") or "").strip()
    if not username:
        return
    inspection = open_inspection(ctx.session, ctx.task)
    if inspection is None:
        raise InvalidInput("reassign_to: the visit (em_inspection) is no longer open",
                           {"reassign_to": "выезд уже выполнен или отменен: передавать некому"})
    try:
        ctx.service.engine.tasks.assign(inspection.id, username, ctx.actor, session=ctx.session)
    except (InvalidInput, NotFound) as exc:
        raise InvalidInput(f"reassign_to: {exc.message}",
                           {"reassign_to": "нет такого активного пользователя"}) from exc
    except PermissionDenied as exc:
        raise InvalidInput(f"reassign_to: {exc.message}",
                           {"reassign_to": "выезд можно передать только сотруднику органа опеки, которому он "
                                           "адресован"}) from exc
    except Conflict as exc:
        raise InvalidInput(f"reassign_to: {exc.message}",
                           {"reassign_to": "выезд изменился в это же время: обновите страницу"}) from exc


def open_inspection(session: Session, escalation: HumanTask) -> HumanTask | None:
    """The open visit (`em_inspection`) an escalation is about: of the same process instance, the one whose
    4-hour term ran out nearest to the moment the escalation opened (several threats may run at once)."""
    rows = session.scalars(select(HumanTask).where(HumanTask.instance_id == escalation.instance_id,
                                                   HumanTask.element_id == "em_inspection",
                                                   HumanTask.status == "open")).all()
    opened = escalation.created_at
    if len(rows) < 2 or opened is None:
        return rows[0] if rows else None
    return min(rows, key=lambda row: abs(((row.due or row.created_at) - opened).total_seconds()))


def on_reconciliation(ctx: Context) -> None:
    if ctx.instance is None:
        return
    row = ctx.session.scalar(select(Reconciliation).where(Reconciliation.process_instance_id == ctx.instance.id))
    if row is not None:
        # a new dict with a new list: the JSON column is saved only when its value compares unequal to the old one,
        # so appending to the stored list in place kept only the first agency's answer
        results = dict(row.results or {})
        results[ctx.task.form_key] = [*results.get(ctx.task.form_key, []),
                                      {"by": ctx.actor, "agency_id": ctx.task.agency_id, **ctx.data}]
        row.results = results


def _check_where_decided(ctx: Context, date_field: str) -> None:
    """A commission's decision is recorded by its meeting (`MeetingService.decide`), or after the fact from the task
    when the meeting was not held in the system. After the fact it is refused while the question is on the agenda of
    a planned or open meeting (it would be decided twice), and its date may not precede the day the question came
    to the commission; a closure's vote needs the quorum of the commission's members (004 §6; the commission's
    regulation: at least half of its members)."""
    task = ctx.task
    if task is None:  # a decision recorded outside any task (a test's or a repair's): nothing to check it against
        return
    meeting_id = _meeting_id(ctx.data)
    # the question's items on agendas, in one read: the open meeting deciding it now, or a meeting still to decide it
    on_agendas = ctx.session.execute(
        select(Meeting.id, Meeting.status, Meeting.held_on, MeetingItem.position, MeetingItem.status.label("item"))
        .join(MeetingItem, MeetingItem.meeting_id == Meeting.id).where(MeetingItem.task_id == task.id)).all()
    if meeting_id is not None and any(row.id == meeting_id and row.status == "open" for row in on_agendas):
        return
    waiting = next((row for row in on_agendas if row.item == "planned" and row.status in ("planned", "open")), None)
    if waiting is not None:
        raise InvalidInput(f"The question is item {waiting.position} of the meeting of {waiting.held_on:%d.%m.%Y}: "
                           "the decision is recorded at the meeting",
                           {date_field: f"вопрос включен в повестку заседания {waiting.held_on:%d.%m.%Y} "
                                        f"(№ {waiting.position}): решение записывается на странице заседания"})
    decided = ctx.date(date_field)
    arose = task.created_at
    if decided is not None and arose is not None:
        zone = ZoneInfo(ctx.instance.timezone) if ctx.instance is not None and ctx.instance.timezone else None
        arose_on = arose.astimezone(zone).date() if zone is not None else arose.date()
        if decided < arose_on:
            raise InvalidInput(f"{date_field}: {decided} is before the question came to the commission",
                               {date_field: "дата решения не может быть раньше, чем вопрос поступил в комиссию "
                                            f"({arose_on:%d.%m.%Y})"})
    if "present" in ctx.data and ctx.case is not None:
        commission = ctx.session.scalar(select(Commission).where(
            Commission.municipality_id == ctx.case.municipality_id))
        members = len(commission.active_members) if commission is not None else 0
        present = _int(ctx.data, "present")
        if members and present * 2 < members:
            raise InvalidInput(f"present: no quorum ({present} of {members} members)",
                               {"present": f"нет кворума: в комиссии {members} членов, на заседании должно "
                                           f"присутствовать не менее {(members + 1) // 2}"})


def _meeting_id(data: dict[str, Any]) -> int | None:
    """The meeting a decision was taken at (the meeting service puts its id into the completion data)."""
    value = data.get("meeting_id")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _int(data: dict[str, Any], name: str) -> int:
    try:
        value = int(data.get(name) or 0)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name} must be a whole number", {name: "целое число"}) from exc
    if value < 0:
        raise InvalidInput(f"{name} must not be negative", {name: "не меньше 0"})
    return value


def _actor_agency(ctx: Context) -> int | None:
    user = lookups.user_named(ctx.session, ctx.actor)
    return user.agency_id if user else None


def _case_required(handler: Callable[[Context], None]) -> Callable[[Context], None]:
    def run(ctx: Context) -> None:
        if ctx.case is not None:
            handler(ctx)

    return run


def on_materials(ctx: Context) -> None:
    """An agency's answer to a request for materials becomes a document of that agency in the case file, with
    the files it attached."""
    ctx.document("materials", source_ref=f"materials-{ctx.task.id}", agency_id=ctx.task.agency_id)
    materials.store_attachments(ctx.session, ctx.case, ctx.task, ctx.actor, ctx.service.engine.clock.now())


HANDLERS: dict[str, Callable[[Context], None]] = {
    "sop_check": _case_required(on_check),
    "sop_recognition": _case_required(on_recognition),
    "sop_registration_card": _case_required(on_registration_card),
    "sop_proposals": _case_required(on_proposals),
    "sop_programme_draft": _case_required(on_programme_draft),
    "sop_programme_approval": _case_required(on_programme_approval),
    "sop_execution_report": _case_required(on_execution_report),
    "sop_curator_summary": _case_required(on_execution_report),
    "sop_closure_decision": _case_required(on_closure_decision),
    "em_inspection": _case_required(on_emergency_step),
    "em_removal_act": _case_required(on_emergency_step),
    "em_police_report": _case_required(on_emergency_step),
    "em_escalation": on_escalation,
    "sop_materials": _case_required(on_materials),
    "rec_agency": on_reconciliation,
    "rec_resolve": on_reconciliation,
    "rec_send_databank": on_reconciliation,
}


from .kpi.campaign import HANDLERS as _KPI_HANDLERS  # noqa: E402 - the KPI campaign's tasks (sop/kpi)

HANDLERS.update(_KPI_HANDLERS)


def _campaign_handlers() -> dict[str, Callable[[Context], None]]:
    from . import podrostok  # the campaign's module reads the records these handlers keep

    return dict(podrostok.HANDLERS)


HANDLERS.update(_campaign_handlers())
