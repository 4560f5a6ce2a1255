"""The meeting's agenda (повестка) and minutes (протокол) as PDF (Jinja2 + WeasyPrint)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES = Path(__file__).parent / "templates"
MONTHS = ("января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября", "октября",
          "ноября", "декабря")


def long_date(value: date | None) -> str:
    """«04 декабря 2026 г.»"""
    return f"{value.day:02d} {MONTHS[value.month - 1]} {value.year} г." if value else "—"


def sentences(parts: Any) -> str:
    """The non-empty parts as sentences, each ending in one full stop: no «…ребенка.. Постановление»."""
    texts = [str(part).strip().rstrip(".").rstrip() for part in parts if part and str(part).strip()]
    return " ".join(f"{text}." for text in texts if text)


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["long_date"] = long_date
    env.filters["short_date"] = lambda d: d.strftime("%d.%m.%Y") if d else "—"
    env.filters["sentences"] = sentences
    return env


def _pdf(template: str, context: dict[str, Any]) -> bytes:
    from weasyprint import HTML  # loading WeasyPrint takes a while

    html = _environment().get_template(template).render(meeting=context)
    return HTML(string=html, base_url=str(TEMPLATES)).write_pdf()


def render_agenda(context: dict[str, Any]) -> bytes:
    return _pdf("agenda.html", context)


def render_minutes(context: dict[str, Any]) -> bytes:
    return _pdf("minutes.html", context)
