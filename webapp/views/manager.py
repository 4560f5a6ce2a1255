"""«Просроченные»: a manager's view of late and soon-due tasks in their scope, the ageing of the late ones and the
share of deadlines met per step, drawn as inline SVG charts on the server, and the same tables as an XLSX file.

Every figure is an SQL aggregate (GROUP BY / SUM(CASE …)) over the scoped task table, one scan each; Python only
splits the few distinct candidate strings into roles, and reads the bounded list of the longest overdue tasks (100 on
the page, 10 000 in the export). Measured with 100,000 open tasks: about 0.6 s per page on PostgreSQL, 3 s on SQLite.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import Blueprint, g, render_template, request, send_file
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from sqlalchemy import and_, case, false, func, or_, select
from sqlalchemy.sql import Select

from engine.calendar import CalendarCoverageError
from engine.models import Agency, HumanTask, Municipality, User
from sop.models import Case, CaseAgency, InstanceScope
from sop.reports.charts import CHART_SPAN, single_bars

from ..access import CurrentUser, task_scope
from ..auth import client_ip, kurator, roles_required
from ..spreadsheets import text_row

bp = Blueprint("manager", __name__)

ROLES = ("manager", "commission_secretary", "commission")
DUE_SOON = timedelta(days=2)
DEFAULT_PERIOD = 90  # days, today included
LIST_LIMIT = 100  # the longest overdue tasks listed on the page
EXPORT_LIMIT = 10_000  # … and in the export
CHART_LIMIT = 15  # bars per chart; the rest is summed up in a note and listed in the export
# (label, more than this many working days late, at most this many working days late): the days the table of the
# overdue tasks shows (`working_days_late`)
AGEING = (("до 1 раб. дн.", 0, 1), ("2–5 раб. дн.", 1, 5), ("6–10 раб. дн.", 5, 10), ("более 10 раб. дн.", 10, None))
# … and in calendar days, where the production calendar does not cover the dates (the table then shows calendar days)
AGEING_CALENDAR = (("до 1 дня", 0, 1), ("2–5 дней", 1, 5), ("6–10 дней", 5, 10), ("более 10 дней", 10, None))
NOBODY = "Не назначен"
NO_ROLE = "Без роли"
NO_AGENCY = "Орган не определен"


# -- scope -------------------------------------------------------------------------------------------------------

def manager_scope(query: Select, user: CurrentUser) -> Select:
    """Restrict a HumanTask query to what the user oversees.

    The commission (secretary, chair) and managers working at the commission see their municipality (`task_scope`).
    Any other manager sees the tasks of their agency: tasks of cases in which the agency takes part (CaseAgency) and
    tasks assigned to or completed by the agency's staff.
    """
    if user.municipality_wide:
        return task_scope(query, user)
    if user.agency_id is None:
        return query.where(false())
    staff = select(User.username).where(User.agency_id == user.agency_id)
    cases = select(CaseAgency.case_id).where(CaseAgency.agency_id == user.agency_id)
    instances = select(InstanceScope.instance_id).where(InstanceScope.case_id.in_(cases))
    return query.where(or_(HumanTask.instance_id.in_(instances), HumanTask.assignee.in_(staff),
                           HumanTask.completed_by.in_(staff)))


def _role_matches_agency(candidates):
    """A candidate role of the task names the agency's kind (the commission's roles name the commission)."""
    return or_(candidates.contains("|role:" + Agency.kind + "|"),
               and_(Agency.kind == "commission", candidates.contains("|role:commission_secretary|")))


def responsible_agency(assignee=HumanTask.assignee, candidates=HumanTask.candidates,
                       instance_id=HumanTask.instance_id, agency_id=HumanTask.agency_id):
    """The agency answering for a task: the agency it is addressed to; else the assignee's agency; for an unclaimed
    task, the agency of the case whose
    kind matches a candidate role, else such an agency of the process's municipality (correlated subqueries over
    the given columns: a task's, or a group's of tasks with the same assignee, candidates and process)."""
    by_assignee = select(User.agency_id).where(User.username == assignee).scalar_subquery()
    by_case = (select(CaseAgency.agency_id)
               .join(Agency, Agency.id == CaseAgency.agency_id)
               .join(InstanceScope, InstanceScope.case_id == CaseAgency.case_id)
               .where(InstanceScope.instance_id == instance_id, _role_matches_agency(candidates))
               .order_by(CaseAgency.agency_id).limit(1).scalar_subquery())
    by_municipality = (select(Agency.id)
                       .join(InstanceScope, InstanceScope.municipality_id == Agency.municipality_id)
                       .where(InstanceScope.instance_id == instance_id, _role_matches_agency(candidates))
                       .order_by(Agency.id).limit(1).scalar_subquery())
    return func.coalesce(agency_id, by_assignee, by_case, by_municipality)


# -- the report --------------------------------------------------------------------------------------------------

@dataclass
class Period:
    start: date
    end: date
    error: str | None = None

    def bounds(self, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """[start 00:00, the day after end 00:00) in the user's time zone."""
        return (datetime.combine(self.start, time(0), tzinfo=tz),
                datetime.combine(self.end + timedelta(days=1), time(0), tzinfo=tz))


def parse_period(args, today: date) -> Period:
    default = Period(today - timedelta(days=DEFAULT_PERIOD - 1), today)
    raw_from, raw_to = (args.get("from") or "").strip(), (args.get("to") or "").strip()
    try:
        start = date.fromisoformat(raw_from) if raw_from else default.start
        end = date.fromisoformat(raw_to) if raw_to else default.end
    except ValueError:
        default.error = "Даты периода — в виде ГГГГ-ММ-ДД; показаны последние 90 дней."
        return default
    if start > end:
        default.error = "Начало периода позже его конца; показаны последние 90 дней."
        return default
    return Period(start, end)


@dataclass
class Report:
    now: datetime
    period: Period
    overdue: int = 0
    soon: int = 0
    by_agency: list[dict] = field(default_factory=list)
    by_role: list[dict] = field(default_factory=list)
    by_person: list[dict] = field(default_factory=list)
    ageing: list[dict] = field(default_factory=list)
    steps: list[dict] = field(default_factory=list)
    met: int = 0
    measured: int = 0
    working_days: bool = True  # the ageing counts working days (else calendar days: the calendar lacks the dates)


def _late(now: datetime):
    """Past its due moment by the engine clock (whether or not the scheduler has flagged it yet)."""
    return HumanTask.due < now


def _pressing(user: CurrentUser, now: datetime, *columns) -> Select:
    """Open tasks with a due date that are late or due within two days, with 0/1 columns `late` and `soon`.
    The due range is one index range (status, due)."""
    late = _late(now)
    query = (select(*columns, case((late, 1), else_=0).label("late"), case((late, 0), else_=1).label("soon"))
             .where(HumanTask.status == "open", HumanTask.due.is_not(None), HumanTask.due <= now + DUE_SOON))
    return manager_scope(query, user)


def late_sum(sub):
    return func.sum(sub.c.late).label("late")


def soon_sum(sub):
    return func.sum(sub.c.soon).label("soon")


def _counts(row) -> dict:
    return {"late": int(row.late or 0), "soon": int(row.soon or 0)}


def _ordered(groups: list[dict]) -> list[dict]:
    return sorted(groups, key=lambda r: (-r["late"], -r["soon"], r["label"]))


def roles_of(candidates: str | None) -> list[str]:
    """The role codes in a task's candidates string "|role:a|user:b|"."""
    return [token[5:] for token in (candidates or "").split("|") if token.startswith("role:")]


def ageing_bounds(now: datetime, tz: ZoneInfo) -> tuple[tuple, dict[int, datetime]]:
    """The buckets of the ageing chart and, for each of their bounds n, the moment before which a task is due that is
    more than n working days late as `working_days_late` counts them (in the user's time zone): the start of the
    (n+1)-th working day counted back from today, today included. Where the production calendar does not cover
    those days, the calendar-day buckets (n days before now), as the table then counts."""
    wanted = sorted({bound for _label, above, upto in AGEING for bound in (above, upto) if bound})
    today = now.astimezone(tz).date()
    calendar = kurator().calendar.calendar
    starts: dict[int, datetime] = {}
    day, counted = today, 0
    try:
        for _ in range(366):  # a year back is far more than the widest bound needs
            if calendar.is_working_day(day):
                counted += 1
                if counted - 1 in wanted:
                    starts[counted - 1] = datetime.combine(day, time(0), tzinfo=tz)
                    if len(starts) == len(wanted):
                        return AGEING, starts
            day -= timedelta(days=1)
    except (CalendarCoverageError, ValueError):
        pass
    return AGEING_CALENDAR, {bound: now - timedelta(days=bound) for bound in wanted}


def build_report(db, user: CurrentUser, now: datetime, period: Period) -> Report:
    report = Report(now=now, period=period)

    # totals and the ageing of the late tasks in working days (as the table's): one scan
    ageing, before = ageing_bounds(now, ZoneInfo(user.timezone))
    buckets = []
    for _label, above, upto in ageing:
        condition = [HumanTask.due < before[above]] if above else [_late(now)]
        if upto is not None:
            condition.append(HumanTask.due >= before[upto])
        buckets.append(case((and_(*condition), 1), else_=0).label(f"b{len(buckets)}"))
    sub = _pressing(user, now, *buckets).subquery()
    totals = db.execute(select(late_sum(sub), soon_sum(sub),
                               *(func.sum(sub.c[f"b{i}"]) for i in range(len(ageing))))).one()
    report.overdue, report.soon = int(totals[0] or 0), int(totals[1] or 0)
    report.ageing = [{"label": label, "count": int(value or 0)}
                     for (label, _a, _u), value in zip(ageing, totals[2:], strict=True)]
    report.working_days = ageing is AGEING

    # by agency: tasks grouped by (assignee, candidates, process) first, the agency found once per group
    groups = (_pressing(user, now, HumanTask.assignee, HumanTask.candidates, HumanTask.instance_id,
                        HumanTask.agency_id).subquery())
    grouped = (select(groups.c.assignee, groups.c.candidates, groups.c.instance_id, groups.c.agency_id,
                      late_sum(groups), soon_sum(groups))
               .group_by(groups.c.assignee, groups.c.candidates, groups.c.instance_id, groups.c.agency_id)
               .subquery())
    located = select(responsible_agency(grouped.c.assignee, grouped.c.candidates, grouped.c.instance_id,
                                        grouped.c.agency_id)
                     .label("agency_id"), grouped.c.late, grouped.c.soon).subquery()
    rows = db.execute(select(located.c.agency_id, late_sum(located), soon_sum(located))
                      .group_by(located.c.agency_id)).all()
    names = {a.id: (a.name, m) for a, m in db.execute(
        select(Agency, Municipality.name).join(Municipality, Municipality.id == Agency.municipality_id)
        .where(Agency.id.in_([r.agency_id for r in rows if r.agency_id is not None])))}
    report.by_agency = _ordered([{"label": names.get(r.agency_id, (NO_AGENCY, ""))[0],
                                  "municipality": names.get(r.agency_id, ("", ""))[1], **_counts(r)} for r in rows])

    # by role: grouped by the candidates string in SQL; the few distinct strings are split into roles here
    sub = _pressing(user, now, HumanTask.candidates).subquery()
    titles = kurator().role_titles()
    per_role: dict[str, dict] = {}
    for row in db.execute(select(sub.c.candidates, late_sum(sub), soon_sum(sub)).group_by(sub.c.candidates)):
        for code in roles_of(row.candidates) or [""]:
            entry = per_role.setdefault(code, {"label": titles.get(code, code) if code else NO_ROLE, "code": code,
                                               "late": 0, "soon": 0})
            entry["late"] += int(row.late or 0)
            entry["soon"] += int(row.soon or 0)
    report.by_role = _ordered(list(per_role.values()))

    sub = _pressing(user, now, HumanTask.assignee).subquery()
    per_person = select(sub.c.assignee, late_sum(sub), soon_sum(sub)).group_by(sub.c.assignee).subquery()
    rows = db.execute(select(per_person, User.full_name, Agency.name.label("agency")).select_from(per_person)
                      .outerjoin(User, User.username == per_person.c.assignee)
                      .outerjoin(Agency, Agency.id == User.agency_id)).all()
    report.by_person = _ordered([{"label": (r.full_name or r.assignee) if r.assignee else NOBODY,
                                  "username": r.assignee or "", "agency": r.agency or "", **_counts(r)} for r in rows])

    start, end = period.bounds(ZoneInfo(user.timezone))
    completed_in_period = and_(HumanTask.status == "completed", HumanTask.completed_at >= start,
                               HumanTask.completed_at < end)
    missed_open = and_(HumanTask.status == "open", HumanTask.due < now, HumanTask.due >= start, HumanTask.due < end)
    met = func.sum(case((and_(HumanTask.status == "completed", HumanTask.completed_at <= HumanTask.due), 1), else_=0))
    rows = db.execute(manager_scope(
        select(HumanTask.name, func.count().label("total"), met.label("met"))
        .where(HumanTask.due.is_not(None), or_(completed_in_period, missed_open)).group_by(HumanTask.name),
        user)).all()
    report.steps = sorted(({"label": r.name, "total": int(r.total), "met": int(r.met or 0),
                            "percent": percent(int(r.met or 0), int(r.total))} for r in rows),
                          key=lambda r: (r["percent"], r["label"]))
    report.met = sum(s["met"] for s in report.steps)
    report.measured = sum(s["total"] for s in report.steps)
    return report


def percent(part: int, whole: int) -> int:
    """A whole percentage, halves rounded up (26 of 30 is 87)."""
    return (part * 200 + whole) // (2 * whole) if whole else 0


def overdue_tasks(user: CurrentUser, now: datetime, limit: int) -> Select:
    """The `limit` longest overdue open tasks: task, case number, responsible agency, roles and assignee — never the
    child's or the family's data. The limit is applied before the agency is looked up."""
    late = manager_scope(
        select(HumanTask.id, HumanTask.instance_id, HumanTask.name, HumanTask.process_key, HumanTask.candidate_roles,
               HumanTask.candidates, HumanTask.assignee, HumanTask.due, HumanTask.agency_id.label("task_agency_id"))
        .where(HumanTask.status == "open", HumanTask.due.is_not(None), _late(now))
        .order_by(HumanTask.due, HumanTask.id).limit(limit), user).subquery()
    agency = responsible_agency(late.c.assignee, late.c.candidates, late.c.instance_id,
                                late.c.task_agency_id).label("agency_id")
    located = select(late, agency).subquery()
    return (select(located, Agency.name.label("agency_name"), User.full_name.label("person_name"),
                   Case.id.label("case_id"), Case.number.label("case_number"))
            .select_from(located)
            .outerjoin(Agency, Agency.id == located.c.agency_id)
            .outerjoin(User, User.username == located.c.assignee)
            .outerjoin(InstanceScope, InstanceScope.instance_id == located.c.instance_id)
            .outerjoin(Case, Case.id == InstanceScope.case_id)
            .order_by(located.c.due, located.c.id))


def days_late(due: datetime, now: datetime) -> int:
    """Whole days past the due moment, a started day counting as one."""
    seconds = (now - due).total_seconds()
    return max(0, -int(-seconds // 86400))


def working_days_late(due: datetime, now: datetime, tz: ZoneInfo) -> int | None:
    """Working days of the production calendar past the due day (a late task counts at least one); None where
    the calendar does not cover the dates."""
    try:
        count = kurator().calendar.calendar.working_days_between(due.astimezone(tz).date(), now.astimezone(tz).date())
    except (CalendarCoverageError, ValueError):
        return None
    return max(1, count)


def task_line(row, roles: dict[str, str], processes: dict[str, str], now: datetime, tz: ZoneInfo) -> dict:
    return {"id": row.id, "name": row.name, "process": processes.get(row.process_key, row.process_key), "due": row.due,
            "days": days_late(row.due, now), "working_days": working_days_late(row.due, now, tz),
            "case_id": row.case_id, "case": row.case_number or "",
            "agency": row.agency_name or NO_AGENCY,
            "roles": ", ".join(roles.get(code, code) for code in row.candidate_roles or []) or NO_ROLE,
            "person": (row.person_name or row.assignee) if row.assignee else NOBODY}


# -- charts ------------------------------------------------------------------------------------------------------

def bars(groups: list[dict], limit: int = CHART_LIMIT) -> dict:
    """Rows of a stacked horizontal bar chart (overdue + due soon), widths in per cent of the widest bar."""
    shown = groups[:limit]
    widest = max((g["late"] + g["soon"] for g in shown), default=0) or 1
    rows = []
    for group in shown:
        late_w = CHART_SPAN * group["late"] / widest
        soon_w = CHART_SPAN * group["soon"] / widest
        rows.append({**group, "late_w": round(late_w, 2), "soon_w": round(soon_w, 2),
                     "text_x": round(late_w + soon_w + 1, 2)})
    rest = groups[limit:]
    return {"rows": rows, "rest": len(rest), "rest_late": sum(g["late"] for g in rest)}


def ageing_chart(ageing: list[dict]) -> list[dict]:
    widest = max((b["count"] for b in ageing), default=0) or 1
    return single_bars(ageing, [b["count"] / widest for b in ageing], [f"Просрочено {b['label']}" for b in ageing],
                       [str(b["count"]) for b in ageing], ["late"] * len(ageing))


def steps_chart(steps: list[dict]) -> list[dict]:
    def tone(p: int) -> str:
        return "good" if p >= 90 else "fair" if p >= 70 else "poor"

    return single_bars(steps, [s["percent"] / 100 for s in steps],
                       [f"{s['label']} — в срок {s['percent']}\u00a0% ({s['met']} из {s['total']})" for s in steps],
                       [f"{s['percent']}\u00a0%" for s in steps], [tone(s["percent"]) for s in steps])


# -- views -------------------------------------------------------------------------------------------------------

def _context():
    user = g.user
    now = kurator().clock.now()
    period = parse_period(request.args, now.astimezone(ZoneInfo(user.timezone)).date())
    return user, now, period


@bp.route("/manager/overdue")
@roles_required(*ROLES)
def overdue():
    user, now, period = _context()
    with kurator().db.session() as db:
        report = build_report(db, user, now, period)
        roles = kurator().role_titles()
        tz = ZoneInfo(user.timezone)
        processes = kurator().repository.process_names()
        listed = [task_line(row, roles, processes, now, tz)
                  for row in db.execute(overdue_tasks(user, now, LIST_LIMIT))]
    charts = {"agency": bars(report.by_agency), "role": bars(report.by_role), "person": bars(report.by_person),
              "ageing": ageing_chart(report.ageing), "steps": steps_chart(report.steps)}
    scope = (f"муниципальное образование {user.municipality}" if user.municipality_wide and user.municipality
             else user.agency_name or "—")
    return render_template("manager/overdue.html", report=report, charts=charts, listed=listed, scope=scope,
                           period=period, list_limit=LIST_LIMIT, total_percent=percent(report.met, report.measured))


@bp.route("/manager/overdue.xlsx")
@roles_required(*ROLES)
def export():
    user, now, period = _context()
    tz = ZoneInfo(user.timezone)
    book = Workbook(write_only=True)
    bold = Font(bold=True)

    def sheet(title: str, header: list[str], rows, widths: list[int]):
        ws = book.create_sheet(title)
        for i, width in enumerate(widths):
            ws.column_dimensions[chr(ord("A") + i)].width = width
        ws.append([_cell(ws, text, font=bold) for text in header])
        count = 0
        for row in rows:
            ws.append(text_row(ws, row))
            count += 1
        return count

    def _cell(ws, value, font=None, number_format=None):
        cell = WriteOnlyCell(ws, value=value)
        if font is not None:
            cell.font = font
        if number_format:
            cell.number_format = number_format
        return cell

    with kurator().db.session() as db:
        report = build_report(db, user, now, period)
        local_now = now.astimezone(tz)
        sheet("Сводка", ["Показатель", "Значение"], [
            ["Отчет", "Просроченные задачи и соблюдение сроков"],
            ["Область", user.municipality if user.municipality_wide else (user.agency_name or "—")],
            ["Сформирован", local_now.strftime("%d.%m.%Y %H:%M")],
            ["Просрочено задач", report.overdue],
            ["Срок в ближайшие 2 дня", report.soon],
            ["Период соблюдения сроков", f"{period.start:%d.%m.%Y} — {period.end:%d.%m.%Y}"],
            ["Сроков соблюдено", f"{report.met} из {report.measured} ({percent(report.met, report.measured)} %)"],
            *([["Лист «Просроченные задачи»", f"первые {EXPORT_LIMIT} по давности просрочки"]]
              if report.overdue > EXPORT_LIMIT else []),
        ], [34, 60])
        sheet("По органам", ["Орган", "Муниципальное образование", "Просрочено", "Срок в ближайшие 2 дня"],
              ([r["label"], r["municipality"], r["late"], r["soon"]] for r in report.by_agency), [60, 30, 14, 24])
        # the role by its title only: the sheet is read by people, and no one reads the codes out of it
        sheet("По ролям", ["Роль", "Просрочено", "Срок в ближайшие 2 дня"],
              ([r["label"], r["late"], r["soon"]] for r in report.by_role), [44, 14, 24])
        sheet("По исполнителям", ["Исполнитель", "Учетная запись", "Орган", "Просрочено", "Срок в ближайшие 2 дня"],
              ([r["label"], r["username"], r["agency"], r["late"], r["soon"]] for r in report.by_person),
              [40, 20, 50, 14, 24])
        sheet("Давность просрочки", ["Просрочено на" + (" (рабочих дней)" if report.working_days else ""), "Задач"],
              ([r["label"], r["count"]] for r in report.ageing), [28, 12])
        sheet("Соблюдение сроков", ["Этап", "В срок", "Всего", "Доля в срок, %"],
              ([r["label"], r["met"], r["total"], r["percent"]] for r in report.steps), [64, 10, 10, 16])
        roles, processes = kurator().role_titles(), kurator().repository.process_names()
        ws = book.create_sheet("Просроченные задачи")
        for letter, width in zip("ABCDEFGHI", (56, 14, 50, 40, 36, 18, 16, 24, 22), strict=True):
            ws.column_dimensions[letter].width = width
        ws.append([_cell(ws, text, font=bold) for text in
                   ("Задача", "№ дела", "Орган", "Роль", "Ответственный", "Срок", "Дней просрочки", "Процесс",
                    "Рабочих дней просрочки")])
        listed = 0
        for row in db.execute(overdue_tasks(user, now, EXPORT_LIMIT).execution_options(yield_per=1000)):
            line = task_line(row, roles, processes, now, tz)
            ws.append(text_row(ws, [line["name"], line["case"], line["agency"], line["roles"], line["person"]])
                      + [_cell(ws, line["due"].astimezone(tz).replace(tzinfo=None), number_format="DD.MM.YYYY HH:MM"),
                         line["days"], *text_row(ws, [line["process"]]), line["working_days"]])
            listed += 1
    buffer = io.BytesIO()
    book.save(buffer)
    buffer.seek(0)
    kurator().audit.record(user.username, "report_exported", "report", "overdue", ip=client_ip(),
                           details={"report": "overdue", "format": "xlsx", "from": period.start.isoformat(),
                                    "to": period.end.isoformat(), "overdue_tasks": listed})
    filename = f"prosrochennye-{local_now:%Y-%m-%d}.xlsx"
    return send_file(buffer, mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                     as_attachment=True, download_name=filename)
