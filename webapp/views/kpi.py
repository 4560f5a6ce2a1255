"""«Показатели»: the KPI plan vs actual of a municipality for a half-year (seed 003), with the plan's editor.

Who: the commission of the municipality (secretary, chair, members) and the regional secretary (any municipality of
the region with a commission, `webapp.access.report_municipalities`); anyone else gets 403, a municipality outside
the user's scope 404. The plan is changed by the municipality's secretary and by the regional secretary only. The
figures come from `sop.kpi.figures`; every display is audited as `kpi_viewed`, every change as `kpi_plan_changed`.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for

from sop.kpi.figures import Half, plan_halves, plan_vs_actual, save_plan

from ..access import REPORT_ROLES, report_municipalities
from ..auth import client_ip, kurator, roles_required
from ..charts import single_bars
from ..params import db_int

bp = Blueprint("kpi", __name__)

PLAN_EDITORS = ("commission_secretary", "regional_secretary")
CHART_LIMIT = 150.0  # per cent of the plan at the full width of the chart


def _municipality(db) -> tuple[list[tuple[int, str]], int, str]:
    options = report_municipalities(db, g.user)
    if not options:
        abort(403)
    raw = (request.values.get("municipality") or "").strip()
    if not raw:
        return options, options[0][0], options[0][1]
    try:
        wanted = db_int(raw)
    except ValueError:
        abort(404)
    for municipality_id, name in options:
        if municipality_id == wanted:
            return options, municipality_id, name
    abort(404)  # another municipality's plan does not exist for this user


def _half() -> tuple[Half | None, str | None]:
    raw = (request.values.get("half") or "").strip()
    if not raw:
        today = kurator().clock.now().astimezone(ZoneInfo(g.user.timezone)).date()
        return Half.of(today).previous(), None  # the last half-year that is over
    try:
        return Half.parse(raw), None
    except ValueError as exc:
        return None, f"Полугодие: {exc}."


def _number(value: float | None, unit: str = "") -> str:
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
                       [f"{_number(r.actual, r.unit)} из {_number(r.plan, r.unit)} "
                        f"({_number(r.percent_of_plan)}\u00a0%)" for r in shown],
                       ["good" if r.met else "poor" for r in shown])


def _audit(action: str, municipality_id: int, half: Half, **details) -> None:
    kurator().audit.record(g.user.username, action, "kpi", str(municipality_id), ip=client_ip(),
                           details={"municipality": municipality_id, "half": half.key, **details})


def _page(db, status: int = 200, errors: dict | None = None, entered: dict | None = None):
    options, municipality_id, name = _municipality(db)
    half, error = _half()
    if half is None:
        return render_template("kpi/index.html", error=error, rows=None, options=options, chosen=municipality_id,
                               scope=name, half=None, halves=[], chart=[], can_edit=False, errors={},
                               entered={}, number=_number), 400
    municipality_tz = g.user.timezone
    rows = plan_vs_actual(db, municipality_id, half, ZoneInfo(municipality_tz))
    halves = sorted(set(plan_halves(db, municipality_id)) | {half.key})
    return render_template("kpi/index.html", error=None, rows=rows, options=options, chosen=municipality_id,
                           scope=name, half=half, halves=halves, chart=chart_rows(rows),
                           can_edit=g.user.has(*PLAN_EDITORS), errors=errors or {}, entered=entered or {},
                           number=_number, regional_user=g.user.has("regional_secretary")), status


@bp.route("/kpi")
@roles_required(*REPORT_ROLES)
def index():
    with kurator().db.session() as db:
        page, status = _page(db)
        municipality_id = _municipality(db)[1]
    if status == 200:
        _audit("kpi_viewed", municipality_id, _half()[0])
    return page, status


@bp.route("/kpi/plan", methods=["POST"])
@roles_required(*REPORT_ROLES)
def save():
    if not g.user.has(*PLAN_EDITORS):
        abort(403)  # the chair and the members read the plan
    engine = kurator()
    with engine.db.session() as db:
        _options, municipality_id, _name = _municipality(db)
        half, error = _half()
        if half is None:
            page, _ = _page(db)
            return page, 400
        raw = {key[5:]: value for key, value in request.form.items() if key.startswith("plan_")}
        errors, changed = save_plan(db, municipality_id, half, raw, g.user.username, engine.clock.now())
        if errors:
            page, _ = _page(db, errors=errors, entered=raw)
            return page, 400
    _audit("kpi_plan_changed", municipality_id, half, changed=changed)
    flash(f"План сохранен: изменено значений — {len(changed)}.", "success")
    return redirect(url_for("kpi.index", municipality=municipality_id, half=half.key))
