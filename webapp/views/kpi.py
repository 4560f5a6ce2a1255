"""«Показатели»: the KPI plan vs actual of a municipality for a half-year (seed 003), with the plan's editor, and
the same as XLSX and PDF; for the regional secretary also the region (the municipalities summed).

Who: the commission of the municipality (secretary, chair, members), the municipality's managers (at the commission
or an agency: the figures are counts) and the regional secretary (any municipality of the region with a commission,
`webapp.access.report_municipalities`, and their sum); anyone else gets 403, a municipality outside the user's scope
404. The plan is changed by the municipality's secretary and by the regional secretary only, one municipality at a
time; the chair, the members and the managers read it. The figures come from `sop.kpi.figures`; every display is
audited as `kpi_viewed`, every download as `kpi_exported`, every change as `kpi_plan_changed`.
"""

from __future__ import annotations

import io
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, flash, g, redirect, render_template, request, url_for
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

from sop.kpi.figures import Half, Row, plan_halves, plan_vs_actual, regional_plan_vs_actual, save_plan
from sop.reports.charts import single_bars
from sop.reports.pdf import render_kpi_pdf

from ..access import REPORT_ROLES, ReportScope, report_scope
from ..auth import client_ip, kurator, roles_required
from ..errors import respond
from ..spreadsheets import keep_as_text, text_row

bp = Blueprint("kpi", __name__)

PLAN_EDITORS = ("commission_secretary", "regional_secretary")
CHART_LIMIT = 150.0  # per cent of the plan at the full width of the chart
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def figures(db, scope: ReportScope, half: Half, tz: ZoneInfo) -> list[Row]:
    if scope.region:
        return regional_plan_vs_actual(db, scope.ids, half, tz)
    return plan_vs_actual(db, scope.municipality_id, half, tz)


def _scope(db) -> ReportScope:
    return report_scope(db, g.user, request.values.get("municipality"))


def _half() -> tuple[Half | None, str | None]:
    raw = (request.values.get("half") or "").strip()
    if not raw:
        today = kurator().clock.now().astimezone(ZoneInfo(g.user.timezone)).date()
        return Half.of(today).previous(), None  # the last half-year that is over
    try:
        return Half.parse(raw), None
    except ValueError as exc:
        return None, f"Полугодие: {exc}."


def number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    text = str(int(value)) if float(value).is_integer() else f"{value:.2f}".rstrip("0").replace(".", ",")
    return text + ("\u00a0%" if unit == "%" else "")


def chart_rows(rows) -> list[dict]:
    """One bar per indicator with a plan and an actual: the actual in per cent of the plan (the full width is
    `CHART_LIMIT` per cent), green when the plan is met, red when not."""
    shown = [r for r in rows if r.percent_of_plan is not None]
    return single_bars([{} for _ in shown], [min(r.percent_of_plan, CHART_LIMIT) / CHART_LIMIT for r in shown],
                       [f"{r.code}. {r.name}" for r in shown],
                       [f"{number(r.actual, r.unit)} из {number(r.plan, r.unit)} "
                        f"({number(r.percent_of_plan)}\u00a0%)" for r in shown],
                       ["good" if r.met else "poor" for r in shown])


def _audit(action: str, scope: ReportScope, half: Half, **details) -> None:
    kurator().audit.record(g.user.username, action, "kpi", scope.key, ip=client_ip(),
                           details={"municipality": scope.municipality_id, "municipalities": scope.ids,
                                    "half": half.key, **details})


def _page(db, status: int = 200, errors: dict | None = None, entered: dict | None = None):
    scope = _scope(db)
    half, error = _half()
    regional_user = g.user.has("regional_secretary")
    if half is None:
        return render_template("kpi/index.html", error=error, rows=None, options=scope.options, scope=scope,
                               half=None, halves=[], chart=[], can_edit=False, errors={}, entered={},
                               number=number, regional_user=regional_user), 400
    rows = figures(db, scope, half, ZoneInfo(g.user.timezone))
    known = set().union(*(plan_halves(db, m) for m in scope.ids))
    halves = sorted(known | {half.key})
    return render_template("kpi/index.html", error=None, rows=rows, options=scope.options, scope=scope,
                           half=half, halves=halves, chart=chart_rows(rows),
                           can_edit=g.user.has(*PLAN_EDITORS) and not scope.region, errors=errors or {},
                           entered=entered or {}, number=number, regional_user=regional_user), status


@bp.route("/kpi")
@roles_required(*REPORT_ROLES)
def index():
    with kurator().db.session() as db:
        page, status = _page(db)
        scope = _scope(db)
    if status == 200:
        _audit("kpi_viewed", scope, _half()[0])
    return page, status


@bp.route("/kpi/plan", methods=["POST"])
@roles_required(*REPORT_ROLES)
def save():
    if not g.user.has(*PLAN_EDITORS):
        abort(403)  # the chair, the members and the managers read the plan
    engine = kurator()
    with engine.db.session() as db:
        scope = _scope(db)
        if scope.region:
            return respond(400, "План задается для каждого муниципального образования: выберите его и сохраните "
                                "план на его странице.")
        half, error = _half()
        if half is None:
            page, _ = _page(db)
            return page, 400
        raw = {key[5:]: value for key, value in request.form.items() if key.startswith("plan_")}
        errors, changed = save_plan(db, scope.municipality_id, half, raw, g.user.username, engine.clock.now())
        if errors:
            page, _ = _page(db, errors=errors, entered=raw)
            return page, 400
    _audit("kpi_plan_changed", scope, half, changed=changed)
    flash(f"План сохранен: изменено значений — {len(changed)}.", "success")
    return redirect(url_for("kpi.index", municipality=scope.municipality_id, half=half.key))


# -- XLSX and PDF ---------------------------------------------------------------------------------------------------

def _export_request():
    """The scope, the half-year and the rows of an export; or the error response of a bad half-year."""
    with kurator().db.session() as db:
        scope = _scope(db)
        half, error = _half()
        if half is None:
            return None, None, None, respond(400, error)
        return scope, half, figures(db, scope, half, ZoneInfo(g.user.timezone)), None


def _attachment(content: bytes, mimetype: str, filename: str) -> Response:
    return Response(content, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{filename}"',
                                                         "Content-Length": str(len(content))})


def _filename(scope: ReportScope, half: Half, extension: str) -> str:
    return f"kpi-{half.key}-{'region' if scope.region else scope.municipality_id}.{extension}"


def workbook(rows: list[Row], scope: ReportScope, half: Half) -> bytes:
    """Plan vs actual as one sheet: a heading, then a row per indicator (numbers as numbers; text that looks like a
    formula stays text)."""
    book = Workbook(write_only=True)
    ws = book.create_sheet("План и факт")
    for letter, width in zip("ABCDEFGHIJ", (8, 70, 22, 12, 12, 13, 11, 14, 45, 50), strict=True):
        ws.column_dimensions[letter].width = width
    bold = Font(bold=True)

    def heading(values):
        cells = []
        for value in values:
            cell = WriteOnlyCell(ws, value=value)
            cell.font = bold
            keep_as_text(cell)
            cells.append(cell)
        return cells

    ws.append(heading(["", "Ключевые показатели: план и факт"]))
    ws.append(text_row(ws, ["", scope.name]))
    ws.append(text_row(ws, ["", f"{half.label} ({half.start:%d.%m.%Y} — {half.end:%d.%m.%Y})"]))
    ws.append([])
    ws.append(heading(["№", "Показатель", "Как считается", "План", "Факт", "Отклонение", "% плана",
                       "План выполнен", "Источник факта", "Раздел"]))
    for row in rows:
        met = "—" if row.met is None else ("да" if row.met else "нет")
        ws.append(text_row(ws, [row.code, row.name + (" (не более)" if row.lower_is_better else ""),
                                row.aggregation_label, row.plan, row.actual, row.deviation, row.percent_of_plan,
                                met, row.source + (" (предварительно)" if row.preliminary and "предварительно"
                                                   not in row.source else ""), row.section or ""]))
    ws.append([])
    ws.append(text_row(ws, ["", "Отклонение = факт − план; % плана = факт × 100 / план. Для показателей «не более» "
                                "план выполнен, если факт не больше плана."
                            + (" Регион: сумма по муниципальным образованиям; проценты не суммируются."
                               if scope.region else "")]))
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


@bp.route("/kpi/report.xlsx")
@roles_required(*REPORT_ROLES)
def export_xlsx():
    scope, half, rows, error = _export_request()
    if error is not None:
        return error
    content = workbook(rows, scope, half)
    _audit("kpi_exported", scope, half, format="xlsx")
    return _attachment(content, XLSX, _filename(scope, half, "xlsx"))


@bp.route("/kpi/report.pdf")
@roles_required(*REPORT_ROLES)
def export_pdf():
    scope, half, rows, error = _export_request()
    if error is not None:
        return error
    now = kurator().clock.now().astimezone(ZoneInfo(g.user.timezone))
    content = render_kpi_pdf(rows, chart_rows(rows), scope.name, half, now, number, g.user.full_name)
    _audit("kpi_exported", scope, half, format="pdf")
    return _attachment(content, "application/pdf", _filename(scope, half, "pdf"))
