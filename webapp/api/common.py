"""Shared pieces of the API: the bearer-token guard and the schemas of errors."""

from __future__ import annotations

from functools import wraps

from flask import abort, g
from marshmallow import Schema, fields


class ErrorSchema(Schema):
    message = fields.String(required=True)
    errors = fields.Dict(keys=fields.String(), values=fields.Raw())


def token_required(view):
    @wraps(view)
    def wrapped(*args, **kwargs):
        if g.get("user") is None:
            abort(401, description="Нужен токен: POST /api/v1/auth/token, затем заголовок Authorization: Bearer …")
        return view(*args, **kwargs)

    return wrapped
