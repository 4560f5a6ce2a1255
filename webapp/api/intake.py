"""`POST /api/v1/intake`: register a signal about a family (Appendix 1) and pass it to the commission.

A new family opens a case and starts its process; a known family gives 409 with the existing cases, and the
caller either attaches the signal to one of them (`attach_to_case`) or confirms it is another family
(`new_family`).
"""

from __future__ import annotations

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from engine.errors import NotFound
from sop.schemas import IntakeSchema
from sop.service import DuplicateFound, duplicate_label

from ..auth import kurator
from ..views import NAVIGATION
from .common import (
    MAX_ID,
    ApiErrorSchema,
    CleanInputSchema,
    audit,
    documented_errors,
    error_response,
    protect,
    roles_allowed,
)

blp = Blueprint("api_intake", __name__, url_prefix="/api/v1/intake", description="Signals (intake journal)")
protect(blp)

# who may register a signal: the roles that see «Новое сообщение» in the UI
INTAKE_ROLES = tuple(sorted(next(roles for endpoint, _label, roles in NAVIGATION if endpoint == "intake.new")))


class IntakeRequestSchema(CleanInputSchema, IntakeSchema):
    attach_to_case = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1, max=MAX_ID),
                                    metadata={"description": "Add the signal to this existing case"})
    new_family = fields.Boolean(load_default=False,
                                metadata={"description": "Register even though a known family matches"})


class IntakeResultSchema(Schema):
    intake_id = fields.Integer(required=True, metadata={"description": "The journal entry of the user's agency"})
    case_id = fields.Integer(required=True)
    case_number = fields.String(required=True)
    instance_ids = fields.List(fields.Integer(), metadata={"description": "Processes started for a new case"})
    attached = fields.Boolean(metadata={"description": "True when the signal joined an existing case"})


class DuplicateSchema(Schema):
    case_id = fields.Integer(required=True, metadata={"description": "The case to attach the signal to"})
    number = fields.String(required=True, allow_none=True, metadata={
        "description": "null for a case the user's agency takes no part in (its number, family and status are not "
                       "shown)"})
    family = fields.String(required=True, allow_none=True)
    status = fields.String(required=True, allow_none=True)


class DuplicateErrorSchema(ApiErrorSchema):
    duplicates = fields.List(fields.Nested(DuplicateSchema), required=True)


@blp.route("")
class Intake(MethodView):
    @roles_allowed(*INTAKE_ROLES)
    @blp.arguments(IntakeRequestSchema)
    @blp.response(201, IntakeResultSchema)
    @blp.alt_response(409, schema=DuplicateErrorSchema, description="The family or a child is already known")
    @documented_errors(blp, 400, 401, 403)
    def post(self, body):
        """Register a signal; 409 lists the open cases of a matching family or child."""
        attach_to_case, new_family = body.pop("attach_to_case"), body.pop("new_family")
        try:
            result = kurator().sop.register_intake(g.user.username, IntakeSchema().dump(body),
                                                   attach_to_case=attach_to_case, new_family=new_family)
        except DuplicateFound as exc:
            return error_response(409, exc.message, {"duplicates": "; ".join(
                duplicate_label(d) for d in exc.duplicates)}, duplicates=exc.duplicates)
        except NotFound:
            return error_response(422, "Дело для присоединения сообщения не найдено",
                                  {"attach_to_case": "нет такого дела в вашем муниципалитете"})
        audit("intake_registered", "case", result.case_id, intake_id=result.intake_id, attached=result.attached)
        return result.to_dict()
