"""Authentication: `POST /api/v1/auth/token` gives a bearer token for a user name and password; the user's tokens
are listed with their last use (`GET /api/v1/auth/tokens`) and revoked (`DELETE /api/v1/auth/tokens/{id}`).

A token lives 12 hours. Only its SHA-256 is stored. A password change, an administrator's password reset or
deactivation revokes all of the user's tokens. An administrator may list (`?username=`) and revoke anybody's.
"""

from __future__ import annotations

from flask import abort, g, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from engine.models import ApiToken, User

from ..auth import TooManyAttempts, authenticate, client_ip, issue_token, kurator
from .common import MAX_ID, CleanInputSchema, documented_errors, error_response

blp = Blueprint("api_auth", __name__, url_prefix="/api/v1/auth", description="Authentication")

NEEDS_TOKEN = "Нужен токен: POST /api/v1/auth/token, затем заголовок Authorization: Bearer …"


class CredentialsSchema(CleanInputSchema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=100))
    password = fields.String(required=True, validate=validate.Length(min=1, max=500), load_only=True)


class TokenSchema(Schema):
    token = fields.String(required=True, metadata={"description": "the secret: shown only in this answer"})
    id = fields.Integer(required=True, metadata={"description": "the token's number, to list or revoke it"})
    expires_at = fields.DateTime(required=True)


class TokenInfoSchema(Schema):
    id = fields.Integer(required=True)
    created_at = fields.DateTime(required=True)
    expires_at = fields.DateTime(required=True)
    created_ip = fields.String(allow_none=True)
    last_used_at = fields.DateTime(allow_none=True, metadata={"description": "the last request with it (to the "
                                                                            "minute); null: never used"})
    last_ip = fields.String(allow_none=True)
    current = fields.Boolean(required=True, metadata={"description": "the token of this request"})


class TokenListArgs(CleanInputSchema):
    username = fields.String(validate=validate.Length(min=1, max=100),
                             metadata={"description": "another user's tokens (administrators only)"})


@blp.before_request
def _require_token():
    """Every endpoint here but `POST /token` needs a bearer token: 401 before any input is read."""
    if request.endpoint != "api_auth.Token" and g.get("user") is None:
        abort(401, description=NEEDS_TOKEN)


@blp.route("/token")
class Token(MethodView):
    @blp.doc(security=[])
    @blp.arguments(CredentialsSchema)
    @blp.response(200, TokenSchema)
    @documented_errors(blp, 400, 401, 429)
    def post(self, credentials):
        """A bearer token for 12 hours (429 with Retry-After while failed logins back off)."""
        try:
            user = authenticate(credentials["username"], credentials["password"])
        except TooManyAttempts as exc:
            response = error_response(429, exc.message)
            response.headers.update(exc.headers())
            return response
        if user is None:
            abort(401, description="Неверное имя пользователя или пароль")
        return issue_token(user)


@blp.route("/tokens")
class Tokens(MethodView):
    @blp.arguments(TokenListArgs, location="query")
    @blp.response(200, TokenInfoSchema(many=True))
    @documented_errors(blp, 401, 403, 404, 422)
    def get(self, args):
        """The tokens of the user (or, for an administrator, of `username`) that have not expired."""
        user_id = g.user.id
        if args.get("username") and args["username"] != g.user.username:
            if not g.user.has("admin"):
                abort(403, description="Чужие токены видит только администратор")
            with kurator().db.session() as db:
                user_id = db.scalar(select(User.id).where(User.username == args["username"]))
            if user_id is None:
                abort(404, description="Нет такого пользователя")
        current = g.get("token_id")
        return [{**token, "current": token["id"] == current} for token in kurator().identity.tokens(user_id)]


@blp.route(f"/tokens/<int(min=1, max={MAX_ID}):token_id>")
class TokenItem(MethodView):
    @blp.response(204)
    @documented_errors(blp, 401, 404)
    def delete(self, token_id: int):
        """Revoke a token of the user (an administrator: of anybody); the token of this request too."""
        identity = kurator().identity
        if g.user.has("admin"):
            with kurator().db.session() as db:
                owner = db.scalar(select(User.username).join(ApiToken, ApiToken.user_id == User.id)
                                  .where(ApiToken.id == token_id))
            revoked = owner is not None and identity.revoke_token(token_id)
        else:
            owner = g.user.username
            revoked = identity.revoke_token(token_id, user_id=g.user.id)
        if not revoked:
            abort(404, description="Нет такого токена")
        kurator().audit.record(g.user.username, "token_revoked", "api_token", token_id, ip=client_ip(),
                               details={"user": owner})
        return None
