"""The reports as PDF (Jinja2 + WeasyPrint, A4 landscape, DejaVu fonts like the case documents): the statistics
(`statistics.html`, with its monthly charts) and the KPI plan vs actual (`kpi.html`, with its chart). Charts are
inline SVG (`_charts.html`), which WeasyPrint draws as vector paths and text."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader

from .charts import month_charts
from .statistics import Report

TEMPLATES = Path(__file__).with_name("templates")


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, trim_blocks=True,
                       lstrip_blocks=True)


def render_document(template: str, **context: Any) -> str:
    """The HTML of a report template of this folder."""
    return _environment().get_template(template).render(**context)


def to_pdf(html: str) -> bytes:
    from weasyprint import HTML  # loading WeasyPrint takes a while and needs Pango

    return HTML(string=html, base_url=str(TEMPLATES)).write_pdf()


def render_html(report: Report, generated_at: datetime, author: str | None = None) -> str:
    return render_document("statistics.html", report=report, charts=month_charts(report.months),
                           generated_at=generated_at, author=author)


def render_pdf(report: Report, generated_at: datetime, author: str | None = None) -> bytes:
    return to_pdf(render_html(report, generated_at, author))


def render_kpi_pdf(rows: list, chart: list[dict], scope: str, half: Any, generated_at: datetime,
                   number: Callable[..., str], author: str | None = None) -> bytes:
    """The KPI plan vs actual of a municipality or the region for a half-year (`sop.kpi.figures` rows), with the
    chart of the plan's fulfilment (`single_bars` rows) and the page's number format."""
    return to_pdf(render_document("kpi.html", rows=rows, chart=chart, scope=scope, half=half,
                                  generated_at=generated_at, author=author, number=number))
