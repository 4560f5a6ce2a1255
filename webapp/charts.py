"""The bar charts' geometry, shared with the PDF reports: see `sop.reports.charts`."""

from sop.reports.charts import CHART_SPAN, month_charts, paired_bars, single_bars

__all__ = ["CHART_SPAN", "month_charts", "paired_bars", "single_bars"]
