"""Reports from the case records: statistics at a date and for a period beside the same period of last year
(АППГ), for one municipality or a region. Pure service code: the web pages and the exports only print it."""

from .statistics import (
    AGE_BANDS,
    MAIN_FIGURES,
    Period,
    Report,
    Section,
    build_report,
    change_percent,
    change_text,
    year_earlier,
)

__all__ = ["AGE_BANDS", "MAIN_FIGURES", "Period", "Report", "Section", "build_report", "change_percent",
           "change_text", "year_earlier"]
