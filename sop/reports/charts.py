"""Horizontal bar charts drawn as inline SVG (the web pages' `webapp/templates/_charts.html`, the PDF reports'
`sop/reports/templates/_charts.html`): the geometry of the rows.

Bar widths are percentages of the chart's width (bars span at most `CHART_SPAN` per cent, the rest is left for
the value), so the text keeps its size at any width and the charts print as they are. Used by the manager's
overdue view, the statistics and the KPI plan vs actual, on screen and in PDF."""

from __future__ import annotations

CHART_SPAN = 78.0  # per cent of the chart's width for the longest bar


def single_bars(items: list[dict], widths: list[float], texts: list[str], values: list[str],
                tones: list[str]) -> list[dict]:
    """Rows of a simple horizontal bar chart: a label line, a bar of the given width (a share of the span), a
    value."""
    rows = []
    for item, width, text, value, tone in zip(items, widths, texts, values, tones, strict=True):
        w = round(CHART_SPAN * width, 2)
        rows.append({**item, "w": w, "text_x": round(w + 1, 2), "text": text, "value_text": value, "tone": tone})
    return rows


def paired_bars(items: list[dict], current: str, previous: str, texts: list[str]) -> list[dict]:
    """Rows of a chart of two bars per label — a figure and the same figure a year earlier — on one scale."""
    widest = max((max(item[current], item[previous]) for item in items), default=0) or 1
    rows = []
    for item, text in zip(items, texts, strict=True):
        w = round(CHART_SPAN * item[current] / widest, 2)
        pw = round(CHART_SPAN * item[previous] / widest, 2)
        rows.append({"text": text, "value": item[current], "previous": item[previous], "w": w, "pw": pw,
                     "text_x": round(w + 1, 2), "ptext_x": round(pw + 1, 2)})
    return rows


def month_charts(months: list) -> dict[str, list[dict]]:
    """The statistics' three charts by month (`Report.months`), each month beside the same month a year earlier:
    families in СОП at the month's end, families recognised and families removed in the month."""
    items = [vars(m) for m in months]
    labels = [m["label"] for m in items]
    return {"families": paired_bars(items, "families", "families_before", labels),
            "recognised": paired_bars(items, "recognised", "recognised_before", labels),
            "removed": paired_bars(items, "removed", "removed_before", labels)}
