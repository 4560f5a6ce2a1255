"""«Реестры»: the primary intake journal (Appendix 1) and the municipal databank of minors and families in СОП
(Appendix 8), on screen and exported (PDF; the databank also as XLSX).

Who sees which register:

- the intake journal: agency staff see their own agency's journal; the commission (secretary, chair, members;
  managers at the commission) may choose any agency of its municipality. The regional secretary sees no journal
  (journals hold unverified signals about families, which stay in the municipality).
- the databank: the commission of the municipality (its own municipality), and the regional secretary, who
  chooses any municipality of the region; agency staff do not see the databank. Case files stay closed to the
  regional secretary: the databank links to no case.

The exports hold exactly the columns of Appendix 8 (and of Appendix 1 for the journal) — no case numbers, danger
levels, curators or other fields. Every export is written to the audit log (`register_exported`), every display
of a register with rows as `register_viewed`.
"""

from __future__ import annotations

import io
from datetime import date
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, g, render_template, request
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from sqlalchemy import select

from engine.errors import NotFound
from engine.models import Agency, Municipality
from sop import casefile
from sop.documents import labels
from sop.documents.render import render_pdf

from ..access import CurrentUser
from ..auth import client_ip, kurator, roles_required
from ..params import db_int
from ..spreadsheets import keep_as_text

bp = Blueprint("registers", __name__)

# Every agency keeps its intake journal (004 §4.3), so all agency staff see their own agency's journal.
REGISTER_ROLES = ("commission_secretary", "commission", "regional_secretary", "police", "guardianship",
                  "social_protection", "education", "health", "manager", "agency_specialist", "curator")
STATUS_FILTERS = {"": "все (состоящие и снятые)", "open": "состоящие на учете", "closed": "снятые с учета"}
DATABANK_COLUMNS = ("№ п/п", "Наименование муниципалитета", "ФИО несовершеннолетнего", "Дата рождения",
                    "ФИО родителей (законных представителей), место работы",
                    "Адрес регистрации", "Адрес фактического места проживания",
                    "Вид деятельности несовершеннолетнего", "Причина постановки на учет", "Дата постановки на учет",
                    "Дата снятия с учета", "Причина снятия с учета")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


# -- scope --------------------------------------------------------------------------------------------------------

def journal_agencies(db, user: CurrentUser) -> list[tuple[int, str]]:
    """The agencies whose journal the user may read."""
    if user.municipality_id is None or (user.has("regional_secretary") and not user.municipality_wide):
        return []
    if user.municipality_wide:
        rows = db.execute(select(Agency.id, Agency.name).where(Agency.municipality_id == user.municipality_id)
                          .order_by(Agency.kind != "commission", Agency.name)).all()
        return [(agency_id, name) for agency_id, name in rows]
    return [(user.agency_id, user.agency_name)] if user.agency_id is not None else []


def databank_municipalities(db, user: CurrentUser) -> list[tuple[int, str]]:
    """The municipalities whose databank the user may read."""
    if user.has("regional_secretary"):
        with_commission = select(Agency.municipality_id).where(Agency.kind == "commission")
        return [(m_id, name) for m_id, name in db.execute(
            select(Municipality.id, Municipality.name).where(Municipality.id.in_(with_commission))
            .order_by(Municipality.name)).all()]
    if user.municipality_wide and user.municipality_id is not None:
        return [(user.municipality_id, user.municipality)]
    return []


def _choice(options: list[tuple[int, str]], requested: int | None) -> tuple[int, str] | None:
    """The requested option (404 if it is not one of the user's), or the first one."""
    if not options:
        return None
    if requested is None:
        return options[0]
    for option in options:
        if option[0] == requested:
            return option
    raise NotFound("Реестр не найден")


def _period(args) -> tuple[date, date, str | None]:
    today = kurator().clock.now().astimezone(ZoneInfo(g.user.timezone)).date()
    error = None
    try:
        start = date.fromisoformat(args["from"]) if args.get("from") else date(today.year, 1, 1)
        end = date.fromisoformat(args["to"]) if args.get("to") else today
    except ValueError:
        start, end, error = date(today.year, 1, 1), today, "Период указан неверно: показан период с начала года."
    if start > end:
        start, end = end, start
    return start, end, error


# -- the page -----------------------------------------------------------------------------------------------------

@bp.route("/registers")
@roles_required(*REGISTER_ROLES)
def index():
    user, args = g.user, request.args
    engine = kurator()
    start, end, period_error = _period(args)
    with engine.db.session() as db:
        agencies = journal_agencies(db, user)
        municipalities = databank_municipalities(db, user)
    available = [name for name, options in (("journal", agencies), ("databank", municipalities)) if options]
    if not available:
        abort(403)
    register = args.get("register") if args.get("register") in available else available[0]
    context = {"register": register, "available": available, "agencies": agencies, "municipalities": municipalities,
               "start": start, "end": end, "period_error": period_error, "args": args,
               "statuses": STATUS_FILTERS}
    if register == "journal":
        agency = _choice(agencies, args.get("agency", type=db_int))
        journal = casefile.journal_context(engine, agency[0], start, end)["journal"]
        context.update(agency=agency, entries=journal["entries"])
        shown = {"register": "intake_journal", "agency_id": agency[0]}
        count = len(journal["entries"])
    else:
        municipality = _choice(municipalities, args.get("municipality", type=db_int))
        status = args.get("status") if args.get("status") in STATUS_FILTERS else ""
        rows = databank_rows(municipality[0], start, end, status)
        context.update(municipality=municipality, status=status, rows=[_display_row(r) for r in rows])
        shown = {"register": "databank", "municipality_id": municipality[0], "status": status or "all"}
        count = len(rows)
    if count:
        engine.audit.record(user.username, "register_viewed", "register", shown["register"], ip=client_ip(),
                            details={**shown, "from": start.isoformat(), "to": end.isoformat(), "rows": count})
    return render_template("registers/index.html", **context)


# -- the journal --------------------------------------------------------------------------------------------------

@bp.route("/registers/journal.pdf")
@roles_required(*REGISTER_ROLES)
def journal_pdf():
    engine = kurator()
    start, end, _error = _period(request.args)
    with engine.db.session() as db:
        agency = _choice(journal_agencies(db, g.user), request.args.get("agency", type=db_int))
    if agency is None:
        abort(403)
    context = casefile.journal_context(engine, agency[0], start, end)
    pdf = render_pdf("intake_journal", context)
    _audit_export("intake_journal", "pdf", start, end, agency_id=agency[0], rows=len(context["journal"]["entries"]))
    return _attachment(pdf, "application/pdf", f"journal-{agency[0]}-{start}-{end}.pdf")


# -- the databank -------------------------------------------------------------------------------------------------

def databank_rows(municipality_id: int, start: date, end: date, status: str) -> list[dict]:
    """Appendix 8 rows of the minors and families in СОП at some time in the period (one row per minor).

    "open" keeps those still registered at the end of the period, "closed" those removed by then."""
    rows = casefile.databank_context(kurator(), municipality_id, end)["databank"]["rows"]
    result = []
    for row in rows:
        removed = row["removed_at"]
        if removed is not None and removed > end:
            row = dict(row, removed_at=None, removal_reason=None)  # as it stood at the end of the period
            removed = None
        if removed is not None and removed < start:
            continue
        if (status == "open" and removed is not None) or (status == "closed" and removed is None):
            continue
        result.append(row)
    return result


def _display_row(row: dict) -> dict:
    parents = "; ".join(", ".join(filter(None, (p.get("full_name"), p.get("occupation")))) for p in row["parents"])
    reason = row["removal_reason"]
    return {"minor": row["minor_full_name"], "birth_date": row["minor_birth_date"], "parents": parents,
            "address_registered": row["address_registered"], "address_actual": row["address_actual"],
            "occupation": row["minor_occupation"], "reason": row["registration_reason"],
            "registered_at": row["registered_at"], "removed_at": row["removed_at"],
            "removal_reason": labels.CLOSURE_GROUNDS_SHORT.get(reason, reason) if reason else None}


def _databank_scope():
    engine = kurator()
    start, end, _error = _period(request.args)
    status = request.args.get("status") if request.args.get("status") in STATUS_FILTERS else ""
    with engine.db.session() as db:
        municipality = _choice(databank_municipalities(db, g.user), request.args.get("municipality", type=db_int))
    if municipality is None:
        abort(403)
    return municipality, start, end, status


@bp.route("/registers/databank.xlsx")
@roles_required(*REGISTER_ROLES)
def databank_xlsx():
    (municipality_id, municipality), start, end, status = _databank_scope()
    rows = [_display_row(r) for r in databank_rows(municipality_id, start, end, status)]
    book = Workbook()
    sheet = book.active
    sheet.title = "Банк данных"
    sheet.append(["Списки несовершеннолетних и семей, находящихся в социально опасном положении (Приложение № 8)"])
    sheet.append([f"{municipality}; период {start:%d.%m.%Y} – {end:%d.%m.%Y}; {STATUS_FILTERS[status]}"])
    sheet.append([])
    sheet.append(list(DATABANK_COLUMNS))
    for number, row in enumerate(rows, start=1):
        sheet.append([number, municipality, row["minor"], row["birth_date"], row["parents"],
                      row["address_registered"], row["address_actual"] or row["address_registered"],
                      row["occupation"], row["reason"], row["registered_at"], row["removed_at"],
                      row["removal_reason"]])
    sheet["A1"].font = Font(bold=True, size=12)
    for cell in sheet[4]:
        cell.font = Font(bold=True)
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    widths = (6, 22, 30, 13, 36, 34, 34, 28, 40, 14, 14, 30)
    for index, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    for line in sheet.iter_rows(min_row=5):
        for cell in line:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
            if isinstance(cell.value, date):
                cell.number_format = "DD.MM.YYYY"
    sheet.freeze_panes = "A5"
    for line in sheet.iter_rows():
        for cell in line:
            keep_as_text(cell)
    buffer = io.BytesIO()
    book.save(buffer)
    _audit_export("databank", "xlsx", start, end, municipality_id=municipality_id, status=status or "all",
                  rows=len(rows))
    return _attachment(buffer.getvalue(), XLSX, f"databank-{municipality_id}-{end}.xlsx")


@bp.route("/registers/databank.pdf")
@roles_required(*REGISTER_ROLES)
def databank_pdf():
    (municipality_id, _name), start, end, status = _databank_scope()
    engine = kurator()
    context = casefile.databank_context(engine, municipality_id, end)
    context["databank"]["rows"] = databank_rows(municipality_id, start, end, status)
    if g.user.has("commission_secretary"):
        context["databank"]["secretary"] = {"position": "Ответственный секретарь комиссии",
                                            "full_name": g.user.full_name}
    pdf = render_pdf("databank", context)
    _audit_export("databank", "pdf", start, end, municipality_id=municipality_id, status=status or "all",
                  rows=len(context["databank"]["rows"]))
    return _attachment(pdf, "application/pdf", f"databank-{municipality_id}-{end}.pdf")


# -- helpers ------------------------------------------------------------------------------------------------------

def _audit_export(register: str, fmt: str, start: date, end: date, **details) -> None:
    kurator().audit.record(g.user.username, "register_exported", "register", register, ip=client_ip(),
                           details={"format": fmt, "from": start.isoformat(), "to": end.isoformat(), **details})


def _attachment(content: bytes, mimetype: str, filename: str) -> Response:
    return Response(content, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{filename}"',
                                                         "Content-Length": str(len(content))})
