"""«Статистика»: figures from the case records at a date and for a period beside the same period of last year
(АППГ), on screen with charts by month, and as XLSX and PDF.

The commission and the municipality's managers (those at the commission and an agency's: the figures are counts,
no child's or family's data) see their own municipality; the regional secretary sees the region (all municipalities
with a commission, summed, and by municipality) or one municipality of it (`webapp.access.report_municipalities`).
Anyone else gets 403; a municipality outside the user's scope is a 404. The figures come from `sop.reports`; every
display is audited as `report_viewed`, every export as `report_exported`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, g, render_template, request
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

from sop.reports import Period, Report, build_report
from sop.reports.charts import month_charts
from sop.reports.pdf import render_pdf

from ..access import REPORT_ROLES, report_scope
from ..auth import client_ip, kurator, roles_required
from ..errors import respond
from ..spreadsheets import text_row

bp = Blueprint("reports", __name__)

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
EARLIEST_YEAR, LATEST_YEAR = 1990, 2100
SHEET_NAMES = {"main": "Основные показатели", "age": "По возрасту", "grounds": "По основаниям снятия",
               "municipalities": "По муниципалитетам", "deadlines": "Соблюдение сроков",
               "curators": "По кураторам", "agencies": "По органам"}


class ParameterError(Exception):
    """A query parameter the report cannot use; the message says which and why, in Russian."""


@dataclass
class Request:
    as_of: date
    period: Period
    municipality_ids: list[int]
    scope: str
    regional: bool  # the whole region: the table by municipality is added
    chosen: int | None  # the municipality asked for (None: the region, or the user's own)
    options: list[tuple[int, str]]

    def query(self) -> dict[str, str]:
        args = {"on": self.as_of.isoformat(), "from": self.period.start.isoformat(),
                "to": self.period.end.isoformat()}
        if self.chosen is not None:
            args["municipality"] = str(self.chosen)
        return args


def _date(args, name: str, label: str, default: date) -> date:
    raw = (args.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = date.fromisoformat(raw)
    except ValueError:
        raise ParameterError(f"{label}: «{raw[:40]}» — не дата; укажите ее в виде ГГГГ-ММ-ДД.") from None
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise ParameterError(f"{label}: год {value.year} вне допустимого диапазона "
                             f"({EARLIEST_YEAR}–{LATEST_YEAR}).")
    return value


def _today() -> date:
    return kurator().clock.now().astimezone(ZoneInfo(g.user.timezone)).date()


def _dates(args) -> tuple[date, Period]:
    """The date «по состоянию на» (default today) and the period (default: from 1 January of that date's year to
    that date)."""
    as_of = _date(args, "on", "Дата «по состоянию на»", _today())
    start = _date(args, "from", "Начало периода", date(as_of.year, 1, 1))
    end = _date(args, "to", "Конец периода", as_of)
    if start > end:
        raise ParameterError(f"Начало периода ({start:%d.%m.%Y}) позже его конца ({end:%d.%m.%Y}).")
    return as_of, Period(start, end)


def _scope(db, args) -> tuple[list[tuple[int, str]], int | None, list[int], str, bool]:
    """The municipalities the user may choose from, the one chosen (None when none was: the region, or the user's
    own), the municipalities read, the scope's name and whether it is the region (`webapp.access.report_scope`)."""
    scope = report_scope(db, g.user, args.get("municipality"))
    chosen = scope.municipality_id if (args.get("municipality") or "").strip() else None
    return scope.options, chosen, scope.ids, scope.name, scope.region


def _request(db) -> tuple[Request | None, str | None, list[tuple[int, str]], int | None]:
    """What is asked (None with the error's message when a parameter is unusable), the municipalities the user may
    choose from and the one chosen."""
    options, chosen, ids, scope, regional = _scope(db, request.args)
    try:
        as_of, period = _dates(request.args)
    except ParameterError as exc:
        return None, str(exc), options, chosen
    return Request(as_of, period, ids, scope, regional, chosen, options), None, options, chosen


def _report(db, asked: Request) -> Report:
    return build_report(db, asked.municipality_ids, asked.as_of, asked.period, ZoneInfo(g.user.timezone),
                        asked.scope, by_municipality=asked.regional)


def _audit(action: str, asked: Request, **details) -> None:
    kurator().audit.record(g.user.username, action, "report", "statistics", ip=client_ip(),
                           details={"municipalities": asked.municipality_ids, "on": asked.as_of.isoformat(),
                                    "from": asked.period.start.isoformat(), "to": asked.period.end.isoformat(),
                                    **details})


@bp.route("/reports")
@roles_required(*REPORT_ROLES)
def index():
    with kurator().db.session() as db:
        asked, error, options, chosen = _request(db)
        if asked is None:
            return render_template("reports/index.html", error=error, report=None, options=options,
                                   chosen=chosen, args=request.args,
                                   regional_user=g.user.has("regional_secretary")), 400
        report = _report(db, asked)
    _audit("report_viewed", asked)
    return render_template("reports/index.html", error=None, report=report, asked=asked, options=options,
                           chosen=chosen, args=request.args, charts=month_charts(report.months),
                           regional_user=g.user.has("regional_secretary"))


def _export_request():
    with kurator().db.session() as db:
        asked, error, _options, _chosen = _request(db)
        if asked is None:
            return None, None, respond(400, error)
        return asked, _report(db, asked), None


def _attachment(content: bytes, mimetype: str, filename: str) -> Response:
    return Response(content, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{filename}"',
                                                         "Content-Length": str(len(content))})


@bp.route("/reports/statistics.xlsx")
@roles_required(*REPORT_ROLES)
def export_xlsx():
    asked, report, error = _export_request()
    if error is not None:
        return error
    book = Workbook(write_only=True)
    bold = Font(bold=True)

    def heading(ws, values):
        cells = []
        for value in values:
            cell = WriteOnlyCell(ws, value=value)
            cell.font = bold
            cells.append(cell)
        return cells

    ws = book.create_sheet("Отчет")
    ws.column_dimensions["A"].width = 34
    ws.column_dimensions["B"].width = 60
    for row in (["Отчет", "Семьи и несовершеннолетние, находящиеся в социально опасном положении"],
                ["Территория", report.scope],
                ["По состоянию на", f"{report.as_of:%d.%m.%Y}"],
                ["Период", f"{report.period.start:%d.%m.%Y} — {report.period.end:%d.%m.%Y}"],
                ["АППГ", f"на {report.as_of_before:%d.%m.%Y}; период {report.period_before.start:%d.%m.%Y} — "
                         f"{report.period_before.end:%d.%m.%Y}"],
                ["Изменение, %", "(отчетный − АППГ) × 100 / АППГ; «—», если АППГ равен 0"]):
        ws.append(text_row(ws, row))
    for section in report.sections:
        ws = book.create_sheet(SHEET_NAMES.get(section.key, section.key)[:31])
        ws.column_dimensions["A"].width = 60
        for letter in "BCDEFGHIJKLM":
            ws.column_dimensions[letter].width = 14
        ws.append(heading(ws, [section.title]))
        ws.append(heading(ws, section.columns))
        for row in section.rows:
            ws.append(text_row(ws, row))
        if section.note:
            ws.append([])
            ws.append(text_row(ws, [section.note]))
    ws = book.create_sheet("По месяцам")
    ws.column_dimensions["A"].width = 20
    ws.append(heading(ws, ["Месяц", "Семей в СОП на конец месяца", "АППГ", "Признано семей", "АППГ",
                           "Снято семей", "АППГ"]))
    for m in report.months:
        ws.append([m.label, m.families, m.families_before, m.recognised, m.recognised_before, m.removed,
                   m.removed_before])
    buffer = io.BytesIO()
    book.save(buffer)
    _audit("report_exported", asked, format="xlsx")
    return _attachment(buffer.getvalue(), XLSX, f"statistika-{asked.as_of.isoformat()}.xlsx")


@bp.route("/reports/statistics.pdf")
@roles_required(*REPORT_ROLES)
def export_pdf():
    asked, report, error = _export_request()
    if error is not None:
        return error
    now = kurator().clock.now().astimezone(ZoneInfo(g.user.timezone))
    pdf = render_pdf(report, now, g.user.full_name)
    _audit("report_exported", asked, format="pdf")
    return _attachment(pdf, "application/pdf", f"statistika-{asked.as_of.isoformat()}.pdf")
