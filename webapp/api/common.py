"""Shared pieces of the API: the bearer-token guard, error responses and their schemas, the audit helper."""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from functools import wraps
from typing import Any

from flask import abort, g, jsonify
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, pre_load

from ..auth import client_ip, kurator

# ids of database rows in paths: `<int(min=1, max=MAX_ID):…>` keeps out numbers no database column can hold
MAX_ID = 2_147_483_647

ERROR_DESCRIPTIONS = {
    400: "Malformed request",
    401: "Missing, invalid or expired bearer token",
    403: "The user's roles do not allow this",
    404: "Not found, or outside the user's data scope",
    409: "Conflict with the current state",
    422: "Invalid input: `errors` has a message per field",
    429: "Too many failed attempts",
}


class ApiErrorSchema(Schema):
    """Every API error: a message for a person and, for input errors, one message per field."""

    message = fields.String(required=True)
    errors = fields.Dict(keys=fields.String(), values=fields.Raw(), metadata={"description": "field: message"})
    message_ru = fields.String(metadata={"description": "The message in Russian, where the error has one"})


# NUL (PostgreSQL refuses it in text) and lone UTF-16 surrogates (no UTF-8 for them): JSON can carry both
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable_values(value: Any, path: str = "") -> list[str]:
    """Paths (`a.0.b`) of the strings no database can store and of the numbers JSON cannot carry (NaN, ±inf)."""
    if isinstance(value, str):
        return [path] if _UNSTORABLE.search(value) else []
    if isinstance(value, float):
        return [] if math.isfinite(value) else [path]
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            name = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and _UNSTORABLE.search(key):
                found.append(path or "_schema")
            found.extend(unstorable_values(item, name))
    elif isinstance(value, list):
        for number, item in enumerate(value):
            found.extend(unstorable_values(item, f"{path}.{number}" if path else str(number)))
    return found


class CleanInputSchema(Schema):
    """A request body schema that refuses what would break storage: NUL, lone surrogates, NaN and infinities."""

    @pre_load
    def _refuse_unstorable(self, data: Any, **_kwargs: Any) -> Any:
        paths = unstorable_values(data)
        if paths:
            raise ValidationError({path or "_schema": ["недопустимые символы или число (NUL, неполная пара "
                                                       "UTF-16, NaN, бесконечность)"] for path in paths})
        return data


class IsoDate(fields.Date):
    """A date; also dumps values the domain layer already gave as ISO strings."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        if isinstance(value, str):
            return value
        return super()._serialize(value, attr, obj, **kwargs)


class IsoDateTime(fields.DateTime):
    """A date and time; also dumps values the domain layer already gave as ISO strings."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        if isinstance(value, str):
            return value
        if isinstance(value, date) and not isinstance(value, datetime):
            return value.isoformat()
        return super()._serialize(value, attr, obj, **kwargs)


def error_response(status: int, message: str, errors: dict[str, Any] | None = None, **extra: Any):
    """A JSON error in the API's shape (`message`, `errors`), with extra members when useful (e.g. duplicates)."""
    response = jsonify({"message": message, "errors": errors or {}, **extra})
    response.status_code = status
    return response


def documented_errors(blp: Blueprint, *codes: int):
    """Document the error responses of an operation, each with the API's error schema."""

    def decorator(view):
        for code in sorted(set(codes), reverse=True):
            view = blp.alt_response(code, schema=ApiErrorSchema, description=ERROR_DESCRIPTIONS.get(code))(view)
        return view

    return decorator


def protect(blp: Blueprint) -> None:
    """Every endpoint of the blueprint needs a bearer token: 401 before any input is read."""

    @blp.before_request
    def _require_token():
        if g.get("user") is None:
            abort(401, description="Нужен токен: POST /api/v1/auth/token, затем заголовок Authorization: Bearer …")


def roles_allowed(*roles: str):
    """The endpoint is for these roles only (403 for the others). Put it above `blp.arguments`, so that the
    roles are checked before the input is read."""

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not g.user.has(*roles):
                abort(403, description="Эта функция недоступна для ваших ролей")
            return view(*args, **kwargs)

        return wrapped

    return decorator


def audit(action: str, object_type: str | None = None, object_id: Any = None, *, session=None,
          **details: Any) -> None:
    """Record what the current user read or changed (152-ФЗ access log); with `session`, in that transaction (the
    record and the change are saved together or not at all)."""
    kurator().audit.record(g.user.username, action, object_type, object_id, ip=client_ip(),
                           details=details or None, session=session)
