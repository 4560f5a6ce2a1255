"""Integers from URLs and query strings that the database can hold.

Ids, versions and page numbers are 32-bit integer columns. A larger number in a URL must be a "not found" or an
ignored parameter, never a database overflow (a 500): the app's `int` URL converter is bounded, and query
parameters are read with `type=db_int`.
"""

from __future__ import annotations

from werkzeug.routing import IntegerConverter

DB_INT_MAX = 2**31 - 1


def db_int(value: str) -> int:
    """A query parameter as an int the database can hold; ValueError (the parameter is ignored) otherwise."""
    number = int(value)
    if not -DB_INT_MAX <= number <= DB_INT_MAX:
        raise ValueError(f"{value} is out of range")
    return number


class BoundedIntConverter(IntegerConverter):
    """`<int:…>` that matches only what a 32-bit integer column holds (a larger id is a 404)."""

    def __init__(self, map, *args, **kwargs):  # noqa: A002 - werkzeug's signature
        kwargs.setdefault("max", DB_INT_MAX)
        super().__init__(map, *args, **kwargs)


def json_ints(value, field: str) -> list[int]:
    """A JSON list of ids or versions (0..DB_INT_MAX); InvalidInput naming the field otherwise (a string of
    digits is not a list, 1.5 is not an id)."""
    from engine import InvalidInput

    if value is None:
        return []
    if not isinstance(value, list) or not all(type(v) is int and 0 <= v <= DB_INT_MAX for v in value):
        raise InvalidInput(f"Поле {field}: ожидается список целых чисел от 0 до {DB_INT_MAX}",
                           {field: "список целых чисел"})
    return value


def json_int(value, field: str) -> int | None:
    """One optional id or version from a JSON body (None when absent)."""
    return None if value is None else json_ints([value], field)[0]


def id_arg(args, name: str) -> int | None:
    """An id or version from the query string: None when absent; a 404 when given but not a usable number."""
    from flask import abort

    if name not in args:
        return None
    value = args.get(name, type=db_int)
    if value is None or value < 0:
        abort(404)
    return value
