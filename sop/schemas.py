"""Input schemas (marshmallow) of the SOP domain: what a user may submit, with a message per field."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from engine.errors import InvalidInput

_NAME = validate.Length(min=1, max=100, error="от 1 до 100 символов")
# "today" by the engine clock while a schema loads (`load(…, today=…)`); the wall clock's date only for a schema
# loaded outside the engine (the API's request parsing; the service checks again by the engine clock)
_TODAY: ContextVar[date | None] = ContextVar("sop_schema_today", default=None)


@contextmanager
def today_is(day: date | None) -> Iterator[None]:
    """Validate dates against `day` as today (the engine clock's date) inside the block."""
    token = _TODAY.set(day)
    try:
        yield
    finally:
        _TODAY.reset(token)


class PersonSchema(Schema):
    last_name = fields.String(required=True, validate=_NAME, error_messages={"required": "укажите фамилию"})
    first_name = fields.String(required=True, validate=_NAME, error_messages={"required": "укажите имя"})
    patronymic = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=100))
    birth_date = fields.Date(load_default=None, allow_none=True, error_messages={"invalid": "дата ГГГГ-ММ-ДД"})
    occupation = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=300))

    @validates_schema
    def _birth_date_in_past(self, data: dict[str, Any], **_kwargs) -> None:
        born = data.get("birth_date")
        if born is not None and (born > (_TODAY.get() or date.today()) or born.year < 1900):
            raise ValidationError("дата рождения не может быть в будущем", "birth_date")


class ChildSchema(PersonSchema):
    birth_date = fields.Date(required=True, error_messages={"required": "укажите дату рождения ребенка",
                                                            "invalid": "дата ГГГГ-ММ-ДД"})


class IntakeSchema(Schema):
    """An intake journal entry (Appendix 1): who reported what about which family."""

    received_on = fields.Date(required=True, error_messages={"required": "укажите дату поступления",
                                                             "invalid": "дата ГГГГ-ММ-ДД"})
    source = fields.String(required=True, validate=validate.Length(min=2, max=500, error="от 2 до 500 символов"),
                           error_messages={"required": "укажите, от кого поступила информация"})
    children = fields.List(fields.Nested(ChildSchema), required=True,
                           validate=validate.Length(min=1, error="укажите хотя бы одного ребенка"),
                           error_messages={"required": "укажите хотя бы одного ребенка"})
    parents = fields.List(fields.Nested(PersonSchema), load_default=list)
    address = fields.String(required=True, validate=validate.Length(min=3, max=500, error="от 3 до 500 символов"),
                            error_messages={"required": "укажите адрес места жительства"})
    address_actual = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))
    problem = fields.String(required=True, validate=validate.Length(min=3, max=5000, error="от 3 до 5000 символов"),
                            error_messages={"required": "опишите проблему и необходимую помощь"})
    threat_to_life = fields.Boolean(load_default=False)


def load(schema: Schema, data: Any, what: str, today: date | None = None) -> dict[str, Any]:
    """Validate with a schema (`today`: the engine clock's date, for "not in the future"); errors become
    `InvalidInput` with one message per field (nested as a.0.b)."""
    try:
        with today_is(today):
            return schema.load(data if isinstance(data, dict) else {})
    except ValidationError as exc:
        errors = dict(_flatten(exc.messages))
        raise InvalidInput(f"The {what} has errors: " + ", ".join(f"{k} ({v})" for k, v in errors.items()),
                           errors) from exc


def _flatten(messages: Any, prefix: str = ""):
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "_schema":
                name = prefix or "_schema"
            yield from _flatten(value, name)
    elif isinstance(messages, list):
        if all(isinstance(m, str) for m in messages):
            yield prefix, "; ".join(messages)
        else:
            for item in messages:
                yield from _flatten(item, prefix)
    else:
        yield prefix, str(messages)
