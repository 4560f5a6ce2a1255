"""`POST /api/v1/auth/token`: a bearer token for a user name and password."""

from __future__ import annotations

from flask import abort
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from ..auth import authenticate, issue_token
from .common import CleanInputSchema, documented_errors

blp = Blueprint("api_auth", __name__, url_prefix="/api/v1/auth", description="Authentication")


class CredentialsSchema(CleanInputSchema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=100))
    password = fields.String(required=True, validate=validate.Length(min=1, max=500), load_only=True)


class TokenSchema(Schema):
    token = fields.String(required=True)


@blp.route("/token")
class Token(MethodView):
    @blp.doc(security=[])
    @blp.arguments(CredentialsSchema)
    @blp.response(200, TokenSchema)
    @documented_errors(blp, 400, 401, 429)
    def post(self, credentials):
        try:
            user = authenticate(credentials["username"], credentials["password"])
        except PermissionError as exc:
            abort(429, description=str(exc))
        if user is None:
            abort(401, description="Неверное имя пользователя или пароль")
        return {"token": issue_token(user)}
