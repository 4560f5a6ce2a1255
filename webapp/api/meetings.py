"""The commission's meetings over the API (`sop.meetings`): the list and the next meeting, one meeting with its
agenda, attendance and quorum, free items, decisions and postponements per item, closing with the minutes, the
agenda and minutes PDFs, and the commission with its members and schedule (`GET /api/v1/commission`).

The meeting service enforces who may do what: the municipality's commission (secretary, chair, managers), its
members and the regional secretary read; only the municipality's commission secretary writes. A meeting of another
municipality, or an item of another meeting, does not exist for the user (404). Reads are audited here; the service
audits every change and every PDF it gives out.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from flask import g, make_response
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema
from sqlalchemy import select

from engine.errors import InvalidInput, NotFound, PermissionDenied
from sop.meetings.models import MeetingItem
from sop.meetings.service import MEETING_FIELDS

from ..auth import kurator
from .common import MAX_ID, CleanInputSchema, IsoDate, IsoDateTime, audit, documented_errors, protect, roles_allowed
from .documents import attachment

blp = Blueprint("api_meetings", __name__, url_prefix="/api/v1", description="Commission meetings")
protect(blp)

SECRETARY = "commission_secretary"
REGIONAL = "regional_secretary"
MEETING_PATH = f"/meetings/<int(min=1, max={MAX_ID}):meeting_id>"
ITEM_PATH = f"{MEETING_PATH}/items/<int(min=1, max={MAX_ID}):item_id>"
TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2100, 12, 31)
PDF = {"type": "string", "format": "binary"}
# the service names a few fields as its own records do; the API's request names them like this
FIELD_NAMES = {"present": "present_member_ids", "schedule_time": "starts_at"}


# -- responses ------------------------------------------------------------------------------------------------


class CommissionMemberSchema(Schema):
    id = fields.Integer(required=True)
    full_name = fields.String(required=True)
    position = fields.String(required=True, metadata={"description": "chair, deputy_chair, secretary or member"})
    position_label = fields.String(allow_none=True)
    job_title = fields.String(allow_none=True)
    agency = fields.String(allow_none=True, metadata={"description": "The agency the member represents"})
    username = fields.String(allow_none=True)
    active = fields.Boolean(required=True)


class CommissionSchema(Schema):
    id = fields.Integer(required=True)
    municipality_id = fields.Integer(required=True)
    full_name = fields.String(required=True)
    place = fields.String(allow_none=True)
    schedule = fields.String(required=True, metadata={"description": "The schedule in words, in Russian"})
    schedule_weekday = fields.Integer(allow_none=True, metadata={"description": "0 (Monday) … 6 (Sunday)"})
    schedule_weeks = fields.List(fields.Integer(), allow_none=True,
                                 metadata={"description": "Weeks of the month: 1…5, -1 for the last"})
    schedule_time = fields.String(allow_none=True, metadata={"description": "HH:MM, local time"})
    members = fields.List(fields.Nested(CommissionMemberSchema), required=True)


class MeetingSummarySchema(Schema):
    id = fields.Integer(required=True)
    held_on = IsoDate(required=True)
    starts_at = fields.String(allow_none=True)
    place = fields.String(allow_none=True)
    kind = fields.String(required=True, metadata={"description": "regular or extraordinary"})
    status = fields.String(required=True, metadata={"description": "planned, open, closed or cancelled"})
    number = fields.Integer(allow_none=True, metadata={"description": "The meeting's number in the commission's "
                                                                      "year, given when it opens"})
    year = fields.Integer(required=True)
    items_count = fields.Integer(required=True)
    decided_count = fields.Integer(required=True)
    minutes_document_id = fields.Integer(allow_none=True)
    municipality_id = fields.Integer(required=True)


class PostponedFromSchema(Schema):
    held_on = IsoDate(allow_none=True)
    reason = fields.String(allow_none=True)


class ReportRowSchema(Schema):
    label = fields.String(required=True, metadata={"description": "The field's label on the reporting form"})
    value = fields.String(required=True, metadata={"description": "What was entered, as the page shows it"})


class ReportSchema(Schema):
    rows = fields.List(fields.Nested(ReportRowSchema), required=True)
    author = fields.String(allow_none=True, metadata={"description": "Who completed the reporting step"})
    agency = fields.String(allow_none=True)
    at = IsoDateTime(allow_none=True)


class ItemSchema(Schema):
    id = fields.Integer(required=True)
    position = fields.Integer(required=True)
    kind = fields.String(required=True, metadata={"description": "decision (a case's task), report or free"})
    title = fields.String(required=True)
    speaker = fields.String(allow_none=True)
    status = fields.String(required=True, metadata={"description": "planned, decided or postponed"})
    task_id = fields.String(allow_none=True, metadata={"description": "The case's task the decision completes"})
    task_status = fields.String(allow_none=True)
    form_key = fields.String(allow_none=True, metadata={
        "description": "The task's form: `data` of a decision are its fields except those the meeting fills"})
    case_id = fields.Integer(allow_none=True)
    case_number = fields.String(allow_none=True)
    due = IsoDateTime(allow_none=True)
    late = fields.Boolean(metadata={"description": "The case's task is open and past its due date"})
    postponed_reason = fields.String(allow_none=True)
    postponed_from = fields.Nested(PostponedFromSchema, allow_none=True,
                                   metadata={"description": "The earlier meeting that postponed the question"})
    decision_text = fields.String(allow_none=True)
    data = fields.Dict(allow_none=True, metadata={"description": "The data the case's task was completed with"})
    votes_for = fields.Integer(allow_none=True)
    votes_against = fields.Integer(allow_none=True)
    votes_abstained = fields.Integer(allow_none=True)
    family_appeared = fields.Boolean(allow_none=True)
    resolution_number = fields.String(allow_none=True, metadata={"description": "«meeting/item», e.g. 12/3"})
    resolution_id = fields.Integer(allow_none=True)
    report = fields.Nested(ReportSchema, allow_none=True, metadata={
        "description": "A report item's content (an emergency's information to the commission), as its form labels it"})


class GuestSchema(Schema):
    name = fields.String(required=True)
    position = fields.String(allow_none=True)


class QuorumSchema(Schema):
    members = fields.Integer(required=True, metadata={"description": "Active members of the commission"})
    present = fields.Integer(required=True)
    needed = fields.Integer(required=True)
    reached = fields.Boolean(required=True)


class MeetingSchema(MeetingSummarySchema):
    commission = fields.Nested(CommissionSchema, required=True)
    present_member_ids = fields.List(fields.Integer(), required=True)
    invited = fields.List(fields.Nested(GuestSchema), required=True)
    quorum = fields.Nested(QuorumSchema, required=True)
    agenda_notified_at = IsoDateTime(allow_none=True)
    items = fields.List(fields.Nested(ItemSchema), required=True)


# -- requests -------------------------------------------------------------------------------------------------


class MunicipalityQuerySchema(Schema):
    municipality_id = fields.Integer(validate=validate.Range(min=1, max=MAX_ID), metadata={
        "description": "The regional secretary's choice of municipality; others see their own"})


class MeetingQuerySchema(MunicipalityQuerySchema):
    year = fields.Integer(validate=validate.Range(min=FIRST_DAY.year, max=LAST_DAY.year),
                          metadata={"description": "Only the meetings of this year"})


class CreateMeetingSchema(CleanInputSchema):
    next = fields.Boolean(load_default=False, metadata={
        "description": "Give the next meeting from today on, planned from the schedule if need be; no other field"})
    held_on = fields.Date(validate=validate.Range(min=FIRST_DAY, max=LAST_DAY),
                          metadata={"description": "The day of a meeting planned by hand (today or later)"})
    kind = fields.String(load_default="extraordinary", validate=validate.OneOf(["regular", "extraordinary"]))
    starts_at = fields.String(allow_none=True, validate=validate.Regexp(TIME, error="время в формате ЧЧ:ММ"),
                              metadata={"description": "HH:MM; the schedule's time by default"})
    place = fields.String(allow_none=True, validate=validate.Length(max=500),
                          metadata={"description": "The commission's place by default"})

    @validates_schema
    def _one_way(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data.get("next"):
            extra = [k for k in ("held_on", "starts_at", "place") if data.get(k) is not None]
            if extra:
                raise ValidationError({k: ["не указывается вместе с next"] for k in extra})
        elif data.get("held_on") is None:
            raise ValidationError({"held_on": ["укажите дату заседания или next: true"]})


class InviteeSchema(CleanInputSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    position = fields.String(load_default="", allow_none=True, validate=validate.Length(max=300),
                             metadata={"description": "Who the person is, e.g. «мать» or «инспектор ПДН»"})


class AttendanceSchema(CleanInputSchema):
    present_member_ids = fields.List(fields.Integer(validate=validate.Range(min=1, max=MAX_ID)), required=True,
                                     validate=validate.Length(max=200),
                                     metadata={"description": "The commission members present (their ids)"})
    invited = fields.List(fields.Nested(InviteeSchema), load_default=list, validate=validate.Length(max=200),
                          metadata={"description": "Invited persons (the family, specialists)"})


class FreeItemSchema(CleanInputSchema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=500))
    speaker = fields.String(allow_none=True, validate=validate.Length(max=300))


VOTES = validate.Range(min=0, max=1000)


class DecisionSchema(CleanInputSchema):
    data = fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True), load_default=dict, metadata={
        "description": "For a case's question: the fields of the task's form (`form_key`) except those the meeting "
                       f"fills itself ({', '.join(MEETING_FIELDS)})"})
    votes_for = fields.Integer(load_default=None, allow_none=True, validate=VOTES)
    votes_against = fields.Integer(load_default=None, allow_none=True, validate=VOTES)
    votes_abstained = fields.Integer(load_default=None, allow_none=True, validate=VOTES)
    family_appeared = fields.Boolean(load_default=None, allow_none=True)
    decision_text = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=5000),
                                  metadata={"description": "«Решили»: required for free items and reports"})
    casting_vote = fields.Boolean(load_default=False, metadata={
        "description": "The votes «за» and «против» are equal and the presiding member voted «за»: their vote "
                       "decides"})
    dissent = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=5000),
                            metadata={"description": "A member's dissenting opinion (особое мнение), for the minutes"})

    @validates("data")
    def _not_the_meetings_fields(self, value: dict[str, Any], **_kwargs: Any) -> None:
        filled = sorted(set(value) & set(MEETING_FIELDS))
        if filled:
            raise ValidationError(f"поля {', '.join(filled)} заполняет заседание (дата, номер, голоса); "
                                  "уберите их из data")


class PostponeSchema(CleanInputSchema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=1000))


# -- endpoints ------------------------------------------------------------------------------------------------


@blp.route("/meetings")
class Meetings(MethodView):
    @blp.arguments(MeetingQuerySchema, location="query")
    @blp.response(200, MeetingSummarySchema(many=True))
    @documented_errors(blp, 401, 403, 404)
    def get(self, query):
        """The meetings of the user's municipality (the regional secretary: of `municipality_id`), newest first."""
        municipality_id = _municipality(query.get("municipality_id"))
        meetings = _service().meetings(municipality_id, query.get("year"))
        audit("meetings_listed", "municipality", municipality_id, year=query.get("year"), total=len(meetings))
        return meetings

    @roles_allowed(SECRETARY)
    @blp.arguments(CreateMeetingSchema)
    @blp.response(201, MeetingSchema)
    @blp.alt_response(200, schema=MeetingSchema, description="`next`: the meeting that was already planned")
    @documented_errors(blp, 400, 401, 403, 404, 409)
    def post(self, body):
        """Plan a meeting on `held_on` (extraordinary by default), or `{"next": true}`: the next meeting from today
        on, planned from the schedule when none is on record (200 when it was). The agenda of a planned meeting is
        built at once."""
        municipality_id = _municipality(None)
        service = _service()
        user = g.user.username
        with _field_names():
            if body["next"]:
                known = {m["id"] for m in service.meetings(municipality_id)}
                meeting_id = service.upcoming(municipality_id, user)
            else:
                known = set()
                meeting_id = service.create(municipality_id, body["held_on"], body["kind"], body.get("starts_at"),
                                            body.get("place"), by=user)
        service.refresh_agenda(meeting_id, user)
        return service.get(meeting_id, user), 200 if meeting_id in known else 201


@blp.route(MEETING_PATH)
class MeetingDetail(MethodView):
    @blp.response(200, MeetingSchema)
    @documented_errors(blp, 401, 404)
    def get(self, meeting_id: int):
        """The meeting: its commission, attendance, quorum and agenda items with their decisions."""
        meeting = _service().get(meeting_id, g.user.username)
        audit("meeting_viewed", "meeting", meeting_id)
        return meeting


@blp.route(f"{MEETING_PATH}/attendance")
class Attendance(MethodView):
    @roles_allowed(SECRETARY)
    @blp.arguments(AttendanceSchema)
    @blp.response(200, MeetingSchema)
    @documented_errors(blp, 400, 401, 403, 404, 409)
    def post(self, body, meeting_id: int):
        """Mark the members present and the invited persons, on the meeting's day or later: this opens the meeting
        and gives it its number. The answer's `quorum` tells whether decisions can be taken."""
        user = g.user.username
        with _field_names():
            _service().set_attendance(meeting_id, body["present_member_ids"], body["invited"], user)
        return _service().get(meeting_id, user)


@blp.route(f"{MEETING_PATH}/items")
class Items(MethodView):
    @roles_allowed(SECRETARY)
    @blp.arguments(FreeItemSchema)
    @blp.response(201, ItemSchema)
    @documented_errors(blp, 400, 401, 403, 404, 409)
    def post(self, body, meeting_id: int):
        """Add a free item (administrative cases, prevention questions…) at the end of the agenda."""
        user = g.user.username
        item_id = _service().add_item(meeting_id, body["title"], body.get("speaker"), user)
        return _item(meeting_id, item_id)


@blp.route(f"{ITEM_PATH}/decision")
class Decision(MethodView):
    @roles_allowed(SECRETARY)
    @blp.arguments(DecisionSchema)
    @blp.response(200, ItemSchema)
    @documented_errors(blp, 400, 401, 403, 404, 409)
    def post(self, body, meeting_id: int, item_id: int):
        """Record the decision with its votes. A case's question completes the case's task in the same transaction
        (`data`: the form's decision fields); free items and reports take `decision_text`. Refused, with nothing
        saved, without a quorum or a majority of the members present."""
        _item_of_meeting(meeting_id, item_id)
        _service().decide(item_id, g.user.username, data=body["data"], votes_for=body["votes_for"],
                          votes_against=body["votes_against"], votes_abstained=body["votes_abstained"],
                          family_appeared=body["family_appeared"], decision_text=body["decision_text"],
                          casting_vote=body["casting_vote"], dissent=body["dissent"])
        return _item(meeting_id, item_id)


@blp.route(f"{ITEM_PATH}/postpone")
class Postpone(MethodView):
    @roles_allowed(SECRETARY)
    @blp.arguments(PostponeSchema)
    @blp.response(200, ItemSchema)
    @documented_errors(blp, 400, 401, 403, 404, 409)
    def post(self, body, meeting_id: int, item_id: int):
        """Move the question to the next meeting with a reason; a case's task stays open for the next agenda."""
        _item_of_meeting(meeting_id, item_id)
        _service().postpone(item_id, body["reason"], g.user.username)
        return _item(meeting_id, item_id)


@blp.route(f"{MEETING_PATH}/close")
class Close(MethodView):
    @roles_allowed(SECRETARY)
    @blp.response(200, MeetingSchema)
    @documented_errors(blp, 401, 403, 404, 409)
    def post(self, meeting_id: int):
        """Close the meeting once every question is decided or postponed; the minutes are written and stored
        (`minutes_document_id`, `GET …/minutes.pdf`)."""
        user = g.user.username
        _service().close(meeting_id, user)
        return _service().get(meeting_id, user)


@blp.route(f"{MEETING_PATH}/minutes.pdf")
class Minutes(MethodView):
    @blp.response(200, PDF, content_type="application/pdf", description="The PDF (as an attachment)")
    @documented_errors(blp, 401, 404)
    def get(self, meeting_id: int):
        """The minutes (протокол) of a closed meeting; 404 before it is closed."""
        return _pdf(*_service().minutes_pdf(meeting_id, g.user.username))


@blp.route(f"{MEETING_PATH}/agenda.pdf")
class Agenda(MethodView):
    @blp.response(200, PDF, content_type="application/pdf", description="The PDF (as an attachment)")
    @documented_errors(blp, 401, 404)
    def get(self, meeting_id: int):
        """The meeting's agenda (повестка) for printing."""
        return _pdf(*_service().agenda_pdf(meeting_id, g.user.username))


@blp.route("/commission")
class CommissionDetail(MethodView):
    @blp.arguments(MunicipalityQuerySchema, location="query")
    @blp.response(200, CommissionSchema)
    @documented_errors(blp, 401, 403, 404)
    def get(self, query):
        """The commission of the user's municipality (the regional secretary: of `municipality_id`): its full
        name, place, members and meeting schedule."""
        municipality_id = _municipality(query.get("municipality_id"))
        commission = _service().commission(municipality_id)
        if commission is None:
            raise NotFound("Комиссия муниципалитета еще не создана: администратор задает ее состав и график")
        audit("commission_viewed", "commission", commission["id"])
        return commission


# -- helpers --------------------------------------------------------------------------------------------------


def _service():
    return kurator().sop.meetings


def _municipality(requested: int | None) -> int:
    """The municipality whose meetings the user asks about, if they may see them: their own, or for the regional
    secretary the one requested. Another municipality does not exist for the others (404)."""
    user = g.user
    if requested is not None and requested != user.municipality_id and not user.has(REGIONAL):
        raise NotFound("Муниципалитет не найден")
    municipality_id = requested if requested is not None else user.municipality_id
    if municipality_id is None:
        raise InvalidInput("municipality_id is required", {"municipality_id": "укажите муниципалитет"})
    if not _service().may_view(user.username, municipality_id):
        raise PermissionDenied("Заседания видят комиссия муниципалитета, ее члены и региональный секретарь")
    return municipality_id


def _item_of_meeting(meeting_id: int, item_id: int) -> None:
    """404 for an item of another meeting, or one that does not exist."""
    with kurator().db.session() as db:
        owner = db.scalar(select(MeetingItem.meeting_id).where(MeetingItem.id == item_id))
    if owner != meeting_id:
        raise NotFound("Вопрос повестки не найден на этом заседании")


def _item(meeting_id: int, item_id: int) -> dict[str, Any]:
    meeting = _service().get(meeting_id, g.user.username)
    found = next((item for item in meeting["items"] if item["id"] == item_id), None)
    if found is None:
        raise NotFound("Вопрос повестки не найден на этом заседании")
    return found


class _field_names:
    """Give the service's field names in errors as the request names them (`present` → `present_member_ids`)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, _traceback) -> bool:
        if isinstance(error, InvalidInput) and getattr(error, "errors", None):
            error.errors = {FIELD_NAMES.get(k, k): v for k, v in error.errors.items()}
        return False


def _pdf(filename: str, content: bytes):
    response = make_response(bytes(content))
    response.headers["Content-Type"] = "application/pdf"
    response.headers["Content-Disposition"] = attachment(filename)
    response.headers["Cache-Control"] = "private, no-store"
    return response
