"""Server-side checks of submitted form data against a form-js schema (required, types, options, bounds)."""

from __future__ import annotations

import copy
import re
from datetime import date, datetime
from typing import Any

from .errors import InvalidInput

FORM_SUFFIXES = (".json", ".form")
_FORM_KEY_PREFIX = re.compile(r"^(camunda-forms:(deployment|app):|embedded:(deployment|app):(forms/)?)")
_INPUT_TYPES = {"textfield", "textarea", "number", "checkbox", "select", "radio", "checklist", "datetime",
                "taglist", "date", "hidden"}


def normalize_form_key(form_key: str) -> str:
    """`camunda-forms:deployment:conclusion.form` and `conclusion.json` both name the form `conclusion`."""
    key = _FORM_KEY_PREFIX.sub("", form_key.strip())
    for suffix in FORM_SUFFIXES + (".html",):
        if key.endswith(suffix):
            key = key[: -len(suffix)]
    return key


def input_fields(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Input components by key, nested groups included; a `dynamiclist` is one field (a list of rows) whose
    own components describe each row."""
    fields: dict[str, dict[str, Any]] = {}

    def walk(components):
        for component in components or []:
            if not isinstance(component, dict):
                continue
            kind = component.get("type", "textfield")
            if kind == "dynamiclist" and (component.get("path") or component.get("key")):
                fields[component.get("path") or component["key"]] = component
                continue
            if component.get("key") and kind in _INPUT_TYPES:
                fields[component["key"]] = component
            walk(component.get("components"))

    walk(schema.get("components"))
    return fields


def validate_submission(schema: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """The submitted data with the form's defaults filled in (as form-js submits them: an unticked checkbox
    is False); raises `InvalidInput` with one message per wrong field."""
    errors: dict[str, str] = {}
    data = dict(data)
    for key, field in input_fields(schema).items():
        if key not in data:
            if "defaultValue" in field:
                data[key] = copy.deepcopy(field["defaultValue"])
            elif field.get("type") == "checkbox":
                data[key] = False
        message = _check_field(field, data.get(key), key in data)
        if message:
            errors[key] = message
    if errors:
        labels = ", ".join(f"{k} ({v})" for k, v in errors.items())
        raise InvalidInput(f"The form has errors: {labels}", errors)
    return data


def _check_field(field: dict[str, Any], value: Any, present: bool) -> str | None:
    rules = field.get("validate") or {}
    kind = field.get("type", "textfield")
    if kind == "dynamiclist":
        return _check_rows(field, value)
    empty = value is None or value == "" or value == []
    if empty:
        return "обязательное поле" if rules.get("required") else None
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "должно быть числом"
        if rules.get("min") is not None and value < rules["min"]:
            return f"не меньше {rules['min']}"
        if rules.get("max") is not None and value > rules["max"]:
            return f"не больше {rules['max']}"
    elif kind == "checkbox":
        if not isinstance(value, bool):
            return "должно быть да или нет"
    elif kind in ("select", "radio"):
        options = _options(field)
        if (options is not None and value not in options) or (options is None and not _scalar(value)):
            return "выберите одно из значений списка"
    elif kind in ("checklist", "taglist"):
        options = _options(field)
        if not isinstance(value, list) or (options is not None and any(v not in options for v in value)) \
                or (options is None and not all(_scalar(v) for v in value)):
            return "выберите значения из списка"
    elif kind in ("datetime", "date"):
        if not isinstance(value, str) or not _is_date(value):
            return "дата в формате ГГГГ-ММ-ДД"
    else:
        if not isinstance(value, str):
            return "должно быть текстом"
        if rules.get("minLength") is not None and len(value) < rules["minLength"]:
            return f"не короче {rules['minLength']} символов"
        if rules.get("maxLength") is not None and len(value) > rules["maxLength"]:
            return f"не длиннее {rules['maxLength']} символов"
        if rules.get("pattern") and not re.fullmatch(str(rules["pattern"]), value):
            return "неверный формат"
    return None


def _check_rows(field: dict[str, Any], value: Any) -> str | None:
    """A dynamic list: a list of objects, each checked against the list's own components."""
    if value in (None, []):
        return "добавьте хотя бы одну строку" if (field.get("validate") or {}).get("required") else None
    if not isinstance(value, list) or not all(isinstance(row, dict) for row in value):
        return "должно быть списком строк"
    row_fields = input_fields({"components": field.get("components") or []})
    for number, row in enumerate(value, start=1):
        for key, sub in row_fields.items():
            message = _check_field(sub, row.get(key), key in row)
            if message:
                return f"строка {number}, {sub.get('label') or key}: {message}"
    return None


def _options(field: dict[str, Any]) -> list[Any] | None:
    values = field.get("values")
    if not isinstance(values, list):
        # options come from data at run time (form-js `valuesKey`): any plain value passes here, and the domain
        # handler of the task checks it (e.g. the curator chosen on recognition must hold the curator role)
        return None
    return [v.get("value") for v in values if isinstance(v, dict)]


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))


def _is_date(text: str) -> bool:
    try:
        (datetime if "T" in text else date).fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True
