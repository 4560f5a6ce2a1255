"""The statistics report as a PDF (Jinja2 + WeasyPrint, A4 landscape, DejaVu fonts like the case documents)."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader

from .statistics import Report

TEMPLATES = Path(__file__).with_name("templates")


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, trim_blocks=True,
                       lstrip_blocks=True)


def render_html(report: Report, generated_at: datetime, author: str | None = None) -> str:
    return _environment().get_template("statistics.html").render(report=report, generated_at=generated_at,
                                                                 author=author)


def render_pdf(report: Report, generated_at: datetime, author: str | None = None) -> bytes:
    from weasyprint import HTML  # loading WeasyPrint takes a while and needs Pango

    return HTML(string=render_html(report, generated_at, author), base_url=str(TEMPLATES)).write_pdf()
