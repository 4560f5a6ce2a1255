"""«Подросток»: the state of the operation's reporting campaign (stage, each agency's App. 2 per month, returns,
the reports sent) and its forms as XLSX in the layout of Appendices 3, 4 and 5.

Who: the municipality's commission and the managers at the commission (its own campaign; reading only: the page
has no action) and the regional secretary (each municipality's, and the region: the forms the municipalities sent,
summed). Anyone else gets 403, an agency's manager too: the page shows the commission's free text (its comments on
the agencies' lists of children, the results of App. 5 it enters), `webapp.access.reads_reports`. A municipality
outside the user's scope is a 404. The figures come from `sop.podrostok` / `sop.reports.podrostok`; every display
is audited as `report_viewed`, every download as `report_exported`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, g, render_template, request
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from sqlalchemy import select

from engine.models import HumanTask
from sop import podrostok
from sop.models import PodrostokCampaign
from sop.reports import podrostok as rules
from sop.reports.podrostok_app5 import APP5_ROWS

from ..access import REPORT_ROLES, ReportScope, report_scope
from ..auth import client_ip, kurator, roles_required
from ..spreadsheets import text_row
from .cases import INSTANCE_STATUSES

bp = Blueprint("podrostok", __name__)

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MONTH_NAMES = {6: "июнь", 7: "июль", 8: "август"}
STAGES = (("prep_start", "prep_end", "Подготовительный этап"), ("main_start", "main_end", "Основной этап"),
          ("final_start", "final_end", "Заключительный этап"))


@dataclass(frozen=True)
class Asked(ReportScope):
    """The municipality (or the region) asked for, and the year."""

    year: int


def _today() -> date:
    return kurator().clock.now().astimezone(ZoneInfo(g.user.timezone)).date()


def _asked(db) -> Asked:
    scope = report_scope(db, g.user, request.args.get("municipality"), personal=True)
    raw_year = (request.args.get("year") or "").strip()
    year = _today().year
    if raw_year:
        if not raw_year.isdigit() or not 2000 <= int(raw_year) <= 2100:
            abort(Response(f"Год «{raw_year[:20]}»: укажите год от 2000 до 2100, например 2026.", status=400,
                           mimetype="text/plain"))
        year = int(raw_year)
    return Asked(scope.options, scope.municipality_id, scope.name, year)


def _audit(action: str, asked: Asked, **details) -> None:
    kurator().audit.record(g.user.username, action, "report", "podrostok", ip=client_ip(),
                           details={"municipalities": asked.ids, "year": asked.year, **details})


def _stage(variables: dict, today: date) -> str:
    for start, end, label in STAGES:
        if variables.get(start) and variables.get(end) and \
                date.fromisoformat(variables[start]) <= today <= date.fromisoformat(variables[end]):
            return label
    return "Вне сроков операции"


def _months(year: int) -> list[tuple[str, str]]:
    return [(f"{year}-{m:02d}", f"{MONTH_NAMES[m]} {year}") for m in podrostok.SUMMER_MONTHS]


def _periods(year: int) -> list[tuple[str, str]]:
    """The periods of the page's App. 3 table: (form key, column heading), the summer (App. 4) last."""
    return _months(year) + [("summer", "лето (приложение 4)")]


def _figures(db, campaign: PodrostokCampaign, today: date) -> dict:
    """App. 3 of each summer month and App. 4 of the summer as the records and the agencies' App. 2 give them so
    far (a period that has not begun is left empty): per row, (count, coverage %) for each column of each period."""
    periods = [(label, rules.summer(campaign.year) if key == "summer" else podrostok.month_period(key))
               for key, label in _periods(campaign.year)]
    return _table([label for label, _ in periods],
                  [podrostok.form_for(db, campaign, period) if period.start <= today else None
                   for _, period in periods])


def _regional_figures(db, asked: Asked) -> dict:
    """The region's App. 3 per month and App. 4: the forms the municipalities sent, summed (as the regional XLSX),
    with, per period, which municipalities are in the sum and which have not sent it; a period nobody sent is
    left empty."""
    forms, sent = [], []
    for key, label in _periods(asked.year):
        form, included, missing = podrostok.regional_form(db, asked.ids, asked.year, key)
        forms.append(form if included else None)
        sent.append({"period": label, "included": included, "missing": missing})
    table = _table([label for _, label in _periods(asked.year)], forms)
    table["sent"] = sent
    return table


def _table(periods: list[str], forms: list) -> dict:
    rows = []
    for code in rules.row_codes():
        cells = [None if form is None else (form.value(code, column), form.percent(code, column))
                 for form in forms for column, _label in rules.COLUMNS]
        rows.append({"code": code, "label": rules.ROW_LABELS[code], "cells": cells, "total": "." not in code})
    return {"periods": periods, "rows": rows}


@bp.route("/podrostok")
@roles_required(*REPORT_ROLES)
def index():
    engine = kurator()
    now = engine.clock.now()
    with engine.db.session() as db:
        asked = _asked(db)
        campaigns = podrostok.campaigns(db, asked.ids, asked.year)
        views = []
        for campaign in campaigns:
            instance = engine.runtime.instance(campaign.process_instance_id) \
                if campaign.process_instance_id else {"variables": {}, "status": None}
            variables = instance["variables"]
            tz = ZoneInfo(campaign.municipality.timezone)
            tasks = db.scalars(select(HumanTask).where(HumanTask.instance_id == campaign.process_instance_id,
                                                       HumanTask.status == "open")
                               .order_by(HumanTask.due)).all()
            views.append({
                "campaign": campaign, "stage": _stage(variables, now.astimezone(tz).date()),
                "status": INSTANCE_STATUSES.get(instance["status"], instance["status"] or "—"),
                "tasks": [{"name": t.name, "due": t.due.astimezone(tz) if t.due else None,
                           "overdue": bool(t.due and t.due < now)} for t in tasks],
                "months": [(label, key, podrostok.submissions(db, campaign, key, now))
                           for key, label in _months(asked.year)],
                "returns": [{**r, "month": podrostok.month_title(r.get("month") or "")}
                            for r in (campaign.reports or {}).get("returns") or []],
                "sent": sorted(((campaign.reports or {}).get("months") or {}).keys()),
                "summer_sent": bool((campaign.reports or {}).get("summer")),
                "final_sent": bool((campaign.reports or {}).get("final")),
                "agencies": podrostok.agency_ids(campaign, db),
                "figures": _figures(db, campaign, now.astimezone(tz).date()),
                "tz": tz})
        missing = sorted({name for m, name in asked.options if m in asked.ids}
                         - {c.municipality.name for c in campaigns})
        regional = _regional_figures(db, asked) if asked.region and campaigns else None
    _audit("report_viewed", asked)
    return render_template("podrostok/index.html", asked=asked, views=views, missing=missing, regional=regional,
                           months=_months(asked.year), states=podrostok.STATES, columns=rules.COLUMNS,
                           regional_user=g.user.has("regional_secretary"))


# -- XLSX ---------------------------------------------------------------------------------------------------------

def _bold(ws, values):
    cells = []
    for value in values:
        cell = WriteOnlyCell(ws, value=value)
        cell.font = Font(bold=True)
        cells.append(cell)
    return cells


def form_workbook(form: rules.Form, title: str, period_label: str, territory: str, note: str) -> bytes:
    """App. 3 (a month) or App. 4 (the summer): №, name, the two columns of the appendix, then the coverage % of
    App. 6 beside each."""
    book = Workbook(write_only=True)
    ws = book.create_sheet(title[:31])
    ws.column_dimensions["B"].width = 80
    for letter in "CDEF":
        ws.column_dimensions[letter].width = 18
    ws.append(_bold(ws, [title]))
    ws.append(text_row(ws, ["", "об организованных формах отдыха и занятости детей, состоящих на учете в комиссии по "
                                "делам несовершеннолетних и защите их прав при администрации", ]))
    ws.append(text_row(ws, ["", territory]))
    ws.append([])
    ws.append(_bold(ws, ["№ п/п", "Наименование", period_label, "", "Охват, % (приложение 6)", ""]))
    ws.append(_bold(ws, ["", "", rules.COLUMNS[0][1], rules.COLUMNS[1][1], rules.COLUMNS[0][1],
                         rules.COLUMNS[1][1]]))
    for code in rules.row_codes():
        values = [form.value(code, col) for col, _ in rules.COLUMNS]
        percents = [form.percent(code, col) for col, _ in rules.COLUMNS]
        row = [code, rules.ROW_LABELS[code], *values, *("" if p is None else p for p in percents)]
        ws.append(_bold(ws, row) if "." not in code else text_row(ws, row))
    ws.append([])
    ws.append(text_row(ws, ["", note]))
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def final_workbook(values: dict, territory: str, year: int) -> bytes:
    """App. 5 row by row as printed, with its results: computed from the records or entered by the commission."""
    book = Workbook(write_only=True)
    ws = book.create_sheet("Приложение 5")
    ws.column_dimensions["A"].width = 10
    ws.column_dimensions["B"].width = 100
    ws.column_dimensions["C"].width = 18
    ws.append(_bold(ws, ["", "ОТЧЕТ об итогах проведения межведомственной операции «Подросток»"]))
    ws.append(text_row(ws, ["", f"в муниципальном образовании {territory} с 1 июня по 1 сентября {year} г."]))
    ws.append([])
    ws.append(_bold(ws, ["№/№ п/п", "Наименование мероприятий", "Результаты"]))
    for key, number, label in APP5_ROWS:
        if not key:
            ws.append(_bold(ws, ["", label]))
            continue
        value = values.get(key, "")
        ws.append(text_row(ws, [number, label, value]))
    ws.append([])
    ws.append(text_row(ws, ["", "Пункты 3.1.1, 3.2.1, 3.3, 3.4.1 и раздел 8 рассчитаны по учетам комиссии "
                                "(раздел 8 — каждый ребенок один раз, по критериям приложения 6); остальные "
                                "внесены комиссией."]))
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _attachment(content: bytes, filename: str) -> Response:
    return Response(content, mimetype=XLSX, headers={"Content-Disposition": f'attachment; filename="{filename}"',
                                                     "Content-Length": str(len(content))})


@bp.route("/podrostok/form.xlsx")
@roles_required(*REPORT_ROLES)
def export():
    which = (request.args.get("form") or "").strip()
    with kurator().db.session() as db:
        asked = _asked(db)
        months = dict(_months(asked.year))
        if which not in months and which not in ("summer", "final"):
            return Response("Форма: укажите месяц (например, " + f"{asked.year}-06), summer (приложение 4) или "
                            "final (приложение 5).", status=400, mimetype="text/plain")
        territory = asked.name
        if which == "final":
            if asked.region:
                values, included = podrostok.regional_final(db, asked.ids, asked.year)
                territory = f"{asked.name}; отчеты: {', '.join(included) or 'нет'}"
            else:
                campaign = _campaign_or_404(db, asked)
                stored = (campaign.reports or {}).get("final") or {}
                values = {**stored.get("entered", {}),
                          **podrostok.final_computed(db, campaign, ZoneInfo(campaign.municipality.timezone))}
            content = final_workbook(values, territory, asked.year)
        else:
            title = "Обобщенные сведения (приложение 4)" if which == "summer" else "Отчет за месяц (приложение 3)"
            label = "Июнь, июль, август" if which == "summer" else months[which]
            if asked.region:
                form, included, missing = podrostok.regional_form(db, asked.ids, asked.year, which)
                note = (f"Сумма отчетов муниципальных образований: {', '.join(included) or 'нет'}"
                        + (f"; не представили: {', '.join(missing)}" if missing else ""))
            else:
                campaign = _campaign_or_404(db, asked)
                period = rules.summer(asked.year) if which == "summer" else podrostok.month_period(which)
                form = podrostok.form_for(db, campaign, period)
                note = "Рассчитано по учетам комиссии и информации органов по критериям приложения 6" + (
                    "; без нарастающего итога." if which != "summer" else "; каждый ребенок учитывается один раз.")
            content = form_workbook(form, title, label, territory, note)
    _audit("report_exported", asked, format="xlsx", form=which)
    return _attachment(content, f"podrostok-{asked.year}-{which}.xlsx")


def _campaign_or_404(db, asked: Asked) -> PodrostokCampaign:
    found = podrostok.campaigns(db, [asked.municipality_id], asked.year)
    if not found:
        abort(404)
    return found[0]
