"""Human tasks over the API: the inbox, one task with its form, claim / unclaim / complete, overdue tasks.

A task outside the user's data scope does not exist for them (404). Task ids are the engine's UUIDs.
"""

from __future__ import annotations

from uuid import UUID

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from engine import task_query
from engine.errors import Conflict, NotFound, PermissionDenied
from engine.models import Agency, HumanTask
from sop.models import Case, InstanceScope

from ..access import inbox_query, task_scope
from ..auth import kurator
from .common import CleanInputSchema, IsoDateTime, audit, documented_errors, error_response, protect, roles_allowed

blp = Blueprint("api_tasks", __name__, url_prefix="/api/v1/tasks", description="Human tasks")
protect(blp)

OVERDUE_ROLES = ("manager", "commission_secretary", "commission")


class TaskSchema(Schema):
    """The fields of `kurator tasks --json`."""

    id = fields.String(required=True, metadata={"format": "uuid"})
    name = fields.String(required=True)
    process_key = fields.String(required=True)
    instance_id = fields.Integer(required=True)
    candidate_roles = fields.List(fields.String())
    assignee = fields.String(allow_none=True)
    due = IsoDateTime(allow_none=True)
    follow_up = IsoDateTime(allow_none=True)
    form_key = fields.String(allow_none=True)
    overdue = fields.Boolean()
    agency_id = fields.Integer(allow_none=True, metadata={"description": "The agency the task is addressed to"})
    agency_name = fields.String(allow_none=True)


class CaseTaskSchema(TaskSchema):
    """A task with the case its process belongs to (none for processes outside any case)."""

    case_id = fields.Integer(allow_none=True)
    case_number = fields.String(allow_none=True)


class ContextRowSchema(Schema):
    label = fields.String(required=True)
    value = fields.String(required=True)


class ContextPanelSchema(Schema):
    """A read-only block of the task context: key/value rows and/or a small table, in Russian."""

    key = fields.String(required=True)
    title = fields.String(required=True)
    rows = fields.List(fields.Nested(ContextRowSchema))
    columns = fields.List(fields.String())
    table = fields.List(fields.List(fields.String()))
    note = fields.String(allow_none=True)


class ContextOptionSchema(Schema):
    value = fields.String(required=True)
    label = fields.String(required=True)


class TaskContextSchema(Schema):
    """What the task page shows above the form (`sop.task_context`)."""

    panels = fields.List(fields.Nested(ContextPanelSchema))
    defaults = fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True),
                           metadata={"description": "Initial form values: field key -> value"})
    options = fields.Dict(keys=fields.String(), values=fields.List(fields.Nested(ContextOptionSchema)),
                          metadata={"description": "Options of the form's fields with a form-js valuesKey: "
                                                   "valuesKey -> options"})


class TaskDetailSchema(CaseTaskSchema):
    element_id = fields.String()
    status = fields.String(metadata={"description": "open, completed or cancelled"})
    candidate_users = fields.List(fields.String())
    created_at = IsoDateTime()
    completed_at = IsoDateTime(allow_none=True)
    completed_by = fields.String(allow_none=True)
    form = fields.Dict(allow_none=True, metadata={"description": "The form-js schema of the task's form"})
    context = fields.Nested(TaskContextSchema, allow_none=True,
                            metadata={"description": "What is decided (panels), initial values and the options of "
                                                     "valuesKey fields; only for an open task the user may work on"})


class TaskQuerySchema(Schema):
    scope = fields.String(load_default="all", validate=validate.OneOf(["mine", "candidate", "all"]),
                          metadata={"description": "mine: assigned to me; candidate: unclaimed, for my roles"})
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=10_000_000))


class PageQuerySchema(Schema):
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=10_000_000))


class CompleteSchema(CleanInputSchema):
    data = fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True), load_default=dict,
                       metadata={"description": "The form data: field key -> value"})


@blp.route("")
class Tasks(MethodView):
    @blp.arguments(TaskQuerySchema, location="query")
    @blp.response(200, TaskSchema(many=True))
    @documented_errors(blp, 401)
    def get(self, query):
        """The user's inbox: tasks assigned to them and unclaimed tasks of their roles, in their scope."""
        statement = inbox_query(g.user, scope=query["scope"])
        # the inbox page's order (and `kurator tasks`'), which the open-task indexes keep
        statement = statement.order_by(HumanTask.due.is_(None), HumanTask.due, HumanTask.created_at, HumanTask.id)
        statement = statement.add_columns(Agency.name).outerjoin(Agency, Agency.id == HumanTask.agency_id)
        with kurator().db.session() as db:
            rows = db.execute(statement.limit(query["limit"]).offset(query["offset"])).all()
        return [_with_case(task, None, None, agency) for task, agency in rows]


@blp.route("/overdue")
class OverdueTasks(MethodView):
    @roles_allowed(*OVERDUE_ROLES)
    @blp.arguments(PageQuerySchema, location="query")
    @blp.response(200, CaseTaskSchema(many=True))
    @documented_errors(blp, 401, 403)
    def get(self, query):
        """Open tasks past their deadline in the user's scope (managers, the commission secretary, the chair)."""
        statement = task_scope(select(HumanTask).where(task_query.is_open(), HumanTask.overdue.is_(True)),
                               g.user)
        statement = (statement.add_columns(Case.id, Case.number, Agency.name)
                     .outerjoin(InstanceScope, InstanceScope.instance_id == HumanTask.instance_id)
                     .outerjoin(Case, Case.id == InstanceScope.case_id)
                     .outerjoin(Agency, Agency.id == HumanTask.agency_id)
                     .order_by(HumanTask.due, HumanTask.id).limit(query["limit"]).offset(query["offset"]))
        with kurator().db.session() as db:
            rows = db.execute(statement).all()
        return [_with_case(*row) for row in rows]


@blp.route("/<uuid:task_id>")
class Task(MethodView):
    @blp.response(200, TaskDetailSchema)
    @documented_errors(blp, 401, 404)
    def get(self, task_id: UUID):
        """One task with its form definition (`form`), its case and, for a user who may work on it, its context."""
        detail = _detail(str(task_id))
        detail["form"] = kurator().tasks.form(detail["id"])
        detail["context"] = _context(detail)
        audit("task_viewed", "task", detail["id"])
        return detail


@blp.route("/<uuid:task_id>/claim")
class Claim(MethodView):
    @blp.response(200, TaskDetailSchema)
    @documented_errors(blp, 401, 403, 404, 409)
    def post(self, task_id: UUID):
        """Take the task to work on (it leaves the other candidates' lists). 409 tells who has it already."""
        return _take_or_return(str(task_id), "claim")


@blp.route("/<uuid:task_id>/unclaim")
class Unclaim(MethodView):
    @blp.response(200, TaskDetailSchema)
    @documented_errors(blp, 401, 403, 404, 409)
    def post(self, task_id: UUID):
        """Give a claimed task back to the candidates of its roles."""
        return _take_or_return(str(task_id), "unclaim")


def _take_or_return(task_id: str, action: str):
    """Claim or unclaim a task in the user's scope; a refusal says why (and who has it)."""
    _detail(task_id)
    try:
        getattr(kurator().tasks, action)(task_id, g.user.username)
    except (Conflict, PermissionDenied) as exc:
        return _refusal(task_id, exc, action)
    audit(f"task_{action}ed", "task", task_id)
    return _detail(task_id)


@blp.route("/<uuid:task_id>/complete")
class Complete(MethodView):
    @blp.arguments(CompleteSchema, required=False)
    @blp.response(200, TaskDetailSchema)
    @documented_errors(blp, 400, 401, 403, 404, 409)
    def post(self, body, task_id: UUID):
        """Complete the task with its form data; the process moves on. 422 with a message per wrong field."""
        task_id = str(task_id)
        try:
            # one transaction: the scope check, the completion, its audit record and the answer
            with kurator().db.session() as db:
                _detail(task_id, db)
                kurator().tasks.complete(task_id, g.user.username, body["data"], session=db)
                audit("task_completed", "task", task_id, session=db)
                return _detail(task_id, db)
        except (Conflict, PermissionDenied) as exc:
            return _refusal(task_id, exc, "complete")


def _detail(task_id: str, session=None) -> dict:
    """The task as a dict with its case, if it is in the user's scope; NotFound otherwise."""
    statement = (task_scope(select(HumanTask).where(HumanTask.id == task_id), g.user)
                 .add_columns(Case.id, Case.number, Agency.name)
                 .outerjoin(InstanceScope, InstanceScope.instance_id == HumanTask.instance_id)
                 .outerjoin(Case, Case.id == InstanceScope.case_id)
                 .outerjoin(Agency, Agency.id == HumanTask.agency_id))
    with kurator().db.session(join=session) as db:
        row = db.execute(statement).first()
    if row is None:
        raise NotFound("Задача не найдена")
    return _with_case(*row)


def _context(detail: dict) -> dict | None:
    """The task context (`sop.task_context`) of an open task the user may work on, as their role may see it."""
    service = getattr(kurator(), "sop", None)
    if service is None or detail["status"] != "open" or not task_query.may_work(detail, g.user):
        return None
    return service.task_context(detail["id"], g.user).to_dict()


def _with_case(task: HumanTask, case_id: int | None, number: str | None, agency: str | None = None) -> dict:
    return {**{column.key: getattr(task, column.key) for column in HumanTask.__table__.columns},
            "candidate_roles": list(task.candidate_roles or []), "candidate_users": list(task.candidate_users or []),
            "case_id": case_id, "case_number": number, "agency_name": agency}


def _refusal(task_id: str, exc: Exception, action: str):
    """Why the engine refused, in Russian, from the task's current state (who has it, who completed it)."""
    task = _detail(task_id)
    me = g.user.username
    if task["status"] == "completed":
        at = task["completed_at"].isoformat() if task["completed_at"] else "?"
        return error_response(409, f"Задача «{task['name']}» уже выполнена: {task['completed_by']}, {at}",
                              {"status": "completed", "completed_by": task["completed_by"]})
    if task["status"] != "open":
        return error_response(409, f"Задача «{task['name']}» уже закрыта ({task['status']})",
                              {"status": task["status"]})
    assignee = task["assignee"]
    if assignee and assignee != me:
        if action == "unclaim":
            return error_response(403, f"Задачу взял в работу пользователь {assignee}; вернуть ее может только он",
                                  {"assignee": assignee})
        return error_response(409, f"Задачу уже взял в работу пользователь {assignee}", {"assignee": assignee})
    if isinstance(exc, PermissionDenied):
        roles = ", ".join(task["candidate_roles"]) or "—"
        if task["agency_name"] and task["agency_id"] != g.user.agency_id:
            return error_response(403, f"Эта задача адресована органу «{task['agency_name']}»",
                                  {"agency_id": task["agency_id"]})
        return error_response(403, f"Эта задача не для ваших ролей (роли задачи: {roles})",
                              {"candidate_roles": roles})
    return error_response(409, getattr(exc, "message", str(exc)))
