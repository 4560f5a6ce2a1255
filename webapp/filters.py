"""Template filters: dates in the user's time zone, Russian labels."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from flask import Flask, current_app, g

from engine.identity import DEFAULT_TIMEZONE


def _tz() -> ZoneInfo:
    user = g.get("user")
    return ZoneInfo(getattr(user, "timezone", None) or DEFAULT_TIMEZONE)


def localdate(value, with_time: bool = True) -> str:
    """ДД.ММ.ГГГГ ЧЧ:ММ in the user's time zone; the end of a due day (23:59:59) prints as the date alone."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        local = value.astimezone(_tz()) if value.tzinfo else value
        if not with_time or (local.hour, local.minute) == (23, 59):
            return local.strftime("%d.%m.%Y")
        return local.strftime("%d.%m.%Y %H:%M")
    if isinstance(value, date):
        return value.strftime("%d.%m.%Y")
    return str(value)


def engine_today() -> str:
    """Today (ISO date) in the user's time zone by the engine clock, never the browser's or the server's wall clock."""
    return current_app.extensions["kurator"].clock.now().astimezone(_tz()).date().isoformat()


def dict_without(mapping: dict, *keys: str) -> dict:
    return {k: v for k, v in mapping.items() if k not in keys}


def initials(full_name: str | None) -> str:
    """«Фамилия Имя Отчество» as «Фамилия И. О.» (the top bar's short form); any other name (a login, «Администратор
    системы») as it is."""
    parts = (full_name or "").split()
    if len(parts) != 3 or not all(part[0].isupper() for part in parts):
        return full_name or ""
    return f"{parts[0]} {parts[1][0]}. {parts[2][0]}."


def register(app: Flask) -> None:
    app.add_template_filter(localdate)
    app.add_template_filter(initials)
    app.add_template_filter(dict_without)
    app.add_template_global(engine_today)
