"""JSON request bodies, checked in one place before any view or API schema reads them.

Python's `json` module fails on some valid-looking input in ways a view does not expect: an integer literal of
more than 4,300 digits raises `ValueError` (the interpreter's limit on int/str conversions), and deep nesting
raises `RecursionError` — both were answered with a 500. `check_request_json` (a `before_request` hook, see
`webapp.errors.register`) parses every JSON body once with bounds that no form, scenario or diagram comes near,
and answers anything outside them, or anything that is not JSON, with a 400 in the app's usual error shape. The
views and the API's schemas (webargs) then parse a body that is known to be good.
"""

from __future__ import annotations

import json
from typing import Any

from flask import request

# nesting deeper than this is refused (form-js schemas, simulation scenarios and API bodies use fewer than 10)
MAX_DEPTH = 64
# an integer literal longer than this is refused (no field holds a number of even 20 digits)
MAX_INTEGER_DIGITS = 100


class JsonBodyError(ValueError):
    """A request body that is not acceptable JSON; `message` is for the person who sent it (Russian)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise JsonBodyError(f"Число в запросе слишком длинное: больше {MAX_INTEGER_DIGITS} цифр.")
    return int(text)


def _depth(value: Any) -> int:
    """The nesting depth of a parsed JSON value, without recursion."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth)
            pending.extend((child, depth + 1) for child in item if isinstance(child, (dict, list)))
    return deepest


def parse(data: bytes | str) -> Any:
    """Parse a JSON body within the bounds above; raises `JsonBodyError` with a message for the sender."""
    too_deep = JsonBodyError(f"Запрос вложен слишком глубоко: больше {MAX_DEPTH} уровней.")
    try:
        value = json.loads(data, parse_int=_integer)
    except JsonBodyError:
        raise
    except RecursionError:
        raise too_deep from None
    except ValueError:  # JSONDecodeError, and bytes that are not UTF-8 / UTF-16 / UTF-32
        raise JsonBodyError("Тело запроса не является корректным JSON.") from None
    if _depth(value) > MAX_DEPTH:
        raise too_deep
    return value


def check_request_json() -> str | None:
    """The message refusing this request's JSON body, or None when there is none or it is acceptable."""
    if not request.is_json:
        return None
    data = request.get_data(cache=True)
    if not data.strip():
        return None  # an empty body is "no data": the views and schemas say what is missing
    try:
        parse(data)
    except JsonBodyError as exc:
        return exc.message
    return None
