"""Tasks: the inbox over the API (`GET /api/v1/tasks?scope=mine|candidate`)."""

from __future__ import annotations

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from ..auth import kurator
from ..views.inbox import inbox_query
from .common import ErrorSchema, token_required

blp = Blueprint("api_tasks", __name__, url_prefix="/api/v1/tasks", description="Human tasks")


class TaskSchema(Schema):
    """The fields of `kurator tasks --json`."""

    id = fields.String(required=True)
    name = fields.String(required=True)
    process_key = fields.String(required=True)
    instance_id = fields.Integer(required=True)
    candidate_roles = fields.List(fields.String())
    assignee = fields.String(allow_none=True)
    due = fields.DateTime(allow_none=True)
    follow_up = fields.DateTime(allow_none=True)
    form_key = fields.String(allow_none=True)
    overdue = fields.Boolean()


class TaskQuerySchema(Schema):
    scope = fields.String(load_default="all", validate=validate.OneOf(["mine", "candidate", "all"]))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=10_000_000))


@blp.route("")
class Tasks(MethodView):
    @blp.arguments(TaskQuerySchema, location="query")
    @blp.response(200, TaskSchema(many=True))
    @blp.alt_response(401, schema=ErrorSchema)
    @token_required
    def get(self, query):
        from engine.models import HumanTask

        statement = inbox_query(g.user, mine_only=query["scope"] == "mine")
        if query["scope"] == "candidate":
            statement = statement.where(HumanTask.assignee.is_(None))
        statement = statement.order_by(HumanTask.due.is_(None), HumanTask.due, HumanTask.id)
        with kurator().db.session() as db:
            return list(db.scalars(statement.limit(query["limit"]).offset(query["offset"])))
