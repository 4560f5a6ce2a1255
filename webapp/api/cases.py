"""Case files over the API: the visible cases, one case, its timeline and its documents (listed, and all in one PDF
with a contents page: `GET /api/v1/cases/{id}/bundle.pdf`).

Every read goes to the audit log; a case outside the user's data scope does not exist for them (404). Within a
case the API shows what the case page shows (`sop.access`): the documents the user may see, and in the history
the data of their own agency's entries only (agency staff; the commission and the curator see all of it).
"""

from __future__ import annotations

from flask import g, make_response
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import func, select

from engine.errors import NotFound
from engine.models import HistoryEvent, HumanTask, ProcessInstance
from sop.access import CaseAccess, history_owners, visible_documents
from sop.bundle import case_bundle
from sop.models import Case, Family, InstanceScope

from ..access import can_view_case, visible_cases
from ..auth import kurator
from .common import MAX_ID, IsoDate, IsoDateTime, audit, documented_errors, protect
from .documents import attachment

blp = Blueprint("api_cases", __name__, url_prefix="/api/v1/cases", description="Case files")
protect(blp)

CASE_STATUSES = ("check", "recognized", "rejected", "closed")
CASE_PATH = f"/<int(min=1, max={MAX_ID}):case_id>"


class CaseQuerySchema(Schema):
    status = fields.String(validate=validate.OneOf(CASE_STATUSES), metadata={"description": "only cases in it"})
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class CaseListItemSchema(Schema):
    id = fields.Integer(required=True)
    number = fields.String(required=True)
    status = fields.String(required=True)
    danger_level = fields.String(allow_none=True)
    family = fields.String(required=True, metadata={"description": "The family's name"})
    curator = fields.String(allow_none=True)
    received_on = IsoDate(allow_none=True)
    recognized_on = IsoDate(allow_none=True)
    closed_on = IsoDate(allow_none=True)


class CasePageSchema(Schema):
    items = fields.List(fields.Nested(CaseListItemSchema), required=True)
    total = fields.Integer(required=True)
    page = fields.Integer(required=True)
    per_page = fields.Integer(required=True)
    pages = fields.Integer(required=True)


class MemberSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    birth_date = IsoDate(allow_none=True)


class CaseFamilySchema(Schema):
    id = fields.Integer()
    name = fields.String()
    address = fields.String(allow_none=True)
    children = fields.List(fields.Nested(MemberSchema))
    parents = fields.List(fields.Nested(MemberSchema))


class CaseAgencySchema(Schema):
    id = fields.Integer(metadata={"description": "The agency's id"})
    name = fields.String()
    role = fields.String(metadata={"description": "commission, intake or member"})


class CaseSchema(Schema):
    id = fields.Integer(required=True)
    number = fields.String(required=True)
    status = fields.String(required=True)
    danger_level = fields.String(allow_none=True)
    sop_confirmed = fields.Boolean(allow_none=True)
    curator = fields.String(allow_none=True)
    municipality = fields.String()
    family = fields.Nested(CaseFamilySchema)
    received_on = IsoDate(allow_none=True)
    recognized_on = IsoDate(allow_none=True)
    closed_on = IsoDate(allow_none=True)
    closure_grounds = fields.String(allow_none=True)
    programme_result = fields.String(allow_none=True)
    process_instance_id = fields.Integer(allow_none=True)
    agencies = fields.List(fields.Nested(CaseAgencySchema))


class HistoryEventSchema(Schema):
    id = fields.Integer(required=True)
    at = IsoDateTime(required=True)
    type = fields.String(required=True, metadata={"description": "e.g. task_created, task_completed, timer_fired"})
    instance_id = fields.Integer(allow_none=True)
    process_key = fields.String(allow_none=True)
    task_id = fields.String(allow_none=True)
    task_name = fields.String(allow_none=True)
    actor = fields.String(allow_none=True)
    data = fields.Raw(allow_none=True, metadata={
        "description": "What was submitted or changed (a JSON object); for agency staff, entries of other "
                       "agencies keep only what names them (element, name), or null"})


class DocumentSchema(Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True)
    title = fields.String(required=True)
    filename = fields.String(required=True)
    size = fields.Integer(required=True, metadata={"description": "Bytes of the PDF; 0 while it is pending"})
    pending = fields.Boolean(required=True, metadata={
        "description": "The PDF is still being laid out after the step that wrote the document (a moment); "
                       "downloading it lays it out at once"})
    pdf_state = fields.String(required=True, validate=validate.OneOf(("ready", "pending", "failed")), metadata={
        "description": "ready; pending (laid out in a moment, or by the download); failed (laying it out failed: "
                       "the download answers 422, regenerate the document)"})
    created_at = IsoDateTime(required=True)
    created_by = fields.String(allow_none=True)
    url = fields.String(required=True, metadata={"description": "Where to download the PDF"})


@blp.route("")
class Cases(MethodView):
    @blp.arguments(CaseQuerySchema, location="query")
    @blp.response(200, CasePageSchema)
    @documented_errors(blp, 401)
    def get(self, query):
        """The cases the user may open, newest first; `status` filters."""
        statement = (select(Case.id, Case.number, Case.status, Case.danger_level, Family.name.label("family"),
                            Case.curator, Case.received_on, Case.recognized_on, Case.closed_on)
                     .join(Family, Family.id == Case.family_id)
                     .where(Case.id.in_(visible_cases(g.user))))
        if "status" in query:
            statement = statement.where(Case.status == query["status"])
        page, per_page = query["page"], query["per_page"]
        with kurator().db.session() as db:
            total = db.scalar(select(func.count()).select_from(statement.subquery())) or 0
            rows = db.execute(statement.order_by(Case.id.desc()).limit(per_page)
                              .offset((page - 1) * per_page)).all()
        audit("cases_listed", None, None, status=query.get("status"), page=page, total=total)
        return {"items": [row._asdict() for row in rows], "total": total, "page": page, "per_page": per_page,
                "pages": max(1, -(-total // per_page))}


@blp.route(CASE_PATH)
class CaseFile(MethodView):
    @blp.response(200, CaseSchema)
    @documented_errors(blp, 401, 404)
    def get(self, case_id: int):
        """The case: status, danger level, curator, the family, the agencies taking part."""
        _visible_or_404(case_id)
        summary = kurator().sop.case(case_id)
        audit("case_viewed", "case", case_id)
        return summary


@blp.route(f"{CASE_PATH}/history")
class CaseHistory(MethodView):
    @blp.response(200, HistoryEventSchema(many=True))
    @documented_errors(blp, 401, 404)
    def get(self, case_id: int):
        """The timeline of all the case's processes (the case, emergencies, programmes), oldest first.

        Agency staff get the data of their own agency's entries only; the others name their task or step."""
        instances = select(InstanceScope.instance_id).where(InstanceScope.case_id == case_id)
        statement = (select(HistoryEvent, ProcessInstance.process_key, HumanTask.name)
                     .outerjoin(ProcessInstance, ProcessInstance.id == HistoryEvent.instance_id)
                     .outerjoin(HumanTask, HumanTask.id == HistoryEvent.task_id)
                     .where(HistoryEvent.instance_id.in_(instances))
                     .order_by(HistoryEvent.at, HistoryEvent.id))
        with kurator().db.session() as db:
            access = _access_or_404(db, case_id)
            rows = db.execute(statement).all()
            owners = {} if access.full else history_owners(db, [event for event, _key, _name in rows])
        audit("case_history_viewed", "case", case_id)
        return [{"id": event.id, "at": event.at, "type": event.event_type, "instance_id": event.instance_id,
                 "process_key": process_key, "task_id": event.task_id, "task_name": task_name,
                 "actor": event.actor, "data": access.history_data(event.event_type, event.data, owners.get(event.id))}
                for event, process_key, task_name in rows]


@blp.route(f"{CASE_PATH}/documents")
class CaseDocuments(MethodView):
    @blp.response(200, DocumentSchema(many=True))
    @documented_errors(blp, 401, 404)
    def get(self, case_id: int):
        """The documents of the case file (PDF) the user may see, newest first, without their content."""
        with kurator().db.session() as db:
            visible = {row.id for row in visible_documents(db, _access_or_404(db, case_id), case_id)}
        documents = [d for d in kurator().sop.documents(case_id) if d["id"] in visible]
        audit("case_documents_listed", "case", case_id)
        return [{**document, "url": f"/api/v1/documents/{document['id']}"} for document in documents]


@blp.route(f"{CASE_PATH}/bundle.pdf")
class CaseBundle(MethodView):
    @blp.response(200, {"type": "string", "format": "binary"}, content_type="application/pdf",
                  description="The PDF (as an attachment)")
    @documented_errors(blp, 401, 404)
    def get(self, case_id: int):
        """The case file in one PDF: a contents page, then every document the user may see, oldest first."""
        with kurator().db.session() as db:
            _access_or_404(db, case_id)
        result = case_bundle(kurator(), case_id, g.user)
        audit("case_bundle_downloaded", "case", case_id, documents=[e["id"] for e in result.entries],
              pages=result.pages)
        response = make_response(result.pdf)
        response.headers["Content-Type"] = "application/pdf"
        response.headers["Content-Disposition"] = attachment(result.filename)
        response.headers["Cache-Control"] = "private, no-store"
        return response


def _visible_or_404(case_id: int) -> None:
    with kurator().db.session() as db:
        _access_or_404(db, case_id)


def _access_or_404(db, case_id: int) -> CaseAccess:
    """The user's access to the case, if they may open it; otherwise the 404 of a case that does not exist."""
    if not can_view_case(db, g.user, case_id):
        raise NotFound("Дело не найдено")
    return CaseAccess.of(g.user, db.get(Case, case_id))
