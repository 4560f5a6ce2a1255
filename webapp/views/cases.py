"""«Личные дела»: the list of cases a user may open and the case file («Личное дело») with its documents, tasks,
deadlines, timeline and the process diagrams.

Access. Every route is for the roles that work with cases (`access.CASE_ROLES`; others get 403). Within those
roles a case outside the user's scope (`access.visible_cases`) does not exist: the page and every sub-resource
(documents, diagrams, state) answer 404, whatever the id.

Data minimisation (what the case file shows to whom; the rules are `sop.access`, shared with the API):

- **Full view** — the commission (secretary, chair, members; managers at the commission) and the case's curator:
  everything, every document and every agency's execution report.
- **Participant view** — the staff of another agency of the working group (a school, the police, a hospital…, and
  their managers): the case summary (family, children, parents, addresses, status, danger level, curator,
  working group), the programme and all its activities (the programme is sent to every executor), the
  resolutions (their copies are sent to the agencies), the tasks and deadlines, the timeline and the diagram;
  the execution reports of **their own agency only**; and only these documents: the conclusion, the programme,
  the resolutions, the proposals their own agency made, and — for guardianship, which draws it up — the removal
  act. The registration card (Appendix 3: the family's profile and other agencies' registers), other agencies'
  proposals and reports, and the removal act (for others) are not shown, and their download URLs answer 404.

Regenerating a document from today's records is for the commission secretary and the case's curator.
No page shows form data of tasks: the timeline names the event, the step, who and when — never what was entered.
Every opening of a case file is written to the audit log (`case_viewed`), and so is every download
(`document_downloaded`; the whole case file in one PDF: `case_bundle_downloaded`) and regeneration
(`document_regenerated`).
"""

from __future__ import annotations

import logging
import re
from datetime import date, datetime
from functools import lru_cache
from urllib.parse import quote
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, flash, g, jsonify, redirect, render_template, request, url_for
from lxml import etree
from sqlalchemy import extract, func, or_, select

from engine.bpmn.validation import resolve_role
from engine.errors import InvalidInput, NotFound, PermissionDenied
from engine.models import Agency, HistoryEvent, HumanTask, ProcessDefinition, ProcessInstance, User
from sop import casefile, checks, materials
from sop.access import CaseAccess, event_outline, may_open_document, visible_documents
from sop.bundle import case_bundle
from sop.documents import labels
from sop.models import (
    Activity,
    Case,
    Document,
    ExecutionReport,
    Family,
    InstanceScope,
    Person,
    Resolution,
    fold,
)
from sop.task_context import emergency_steps

from ..access import CASE_ROLES, can_view_case, visible_cases
from ..auth import client_ip, kurator, roles_required
from ..params import db_int

bp = Blueprint("cases", __name__)
log = logging.getLogger(__name__)
PAGE_SIZE = 25

STATUSES = labels.CASE_STATUSES  # the list's status filter
PARTICIPANT_ROLES = {"commission": "комиссия", "intake": "выявил(о)", "member": "рабочая группа"}
RESOLUTION_KINDS = {"recognition": "О признании находящимися в СОП", "rejection": "Об отказе в признании",
                    "approval": "Об утверждении индивидуальной программы",
                    "closure": "О прекращении ИПР и снятии с учета"}
DECISIONS = {"recognize": "признать в СОП", "reject": "не признавать", "approve": "утвердить",
             "rework": "вернуть на доработку", "close": "снять с учета", "continue": "продолжить ИПР"}
EVENTS = {"instance_started": "Процесс запущен", "instance_completed": "Процесс завершен",
          "task_created": "Задача создана", "task_claimed": "Задача взята в работу",
          "task_unclaimed": "Задача возвращена в общий список", "task_completed": "Задача выполнена",
          "task_cancelled": "Задача отменена", "task_overdue": "Срок нарушен", "timer_fired": "Таймер сработал",
          "message_received": "Получено сообщение", "signal_received": "Получен сигнал",
          "conflict_rejected": "Одновременное изменение отклонено", "incident": "Сбой выполнения",
          "instance_migrated": "Процесс перенесен на новую версию схемы",
          "migration_reverted": "Перенос на новую версию отменен",
          "task_assigned": "Задача передана сотруднику", "task_addressed": "Задача передана органу"}
EVENT_NAMES = {"threat_to_life": "угроза жизни или здоровью ребенка",
               "minor_turned_18": "несовершеннолетнему исполнилось 18 лет"}
INSTANCE_STATUSES = {"running": "идет", "completed": "завершен", "cancelled": "отменен", "error": "сбой",
                     "suspended": "приостановлен"}
_SAFE_XML = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


# -- access (the rules: sop.access) -------------------------------------------------------------------------------

def _case_or_404(db, case_id: int) -> Case:
    """The case, if the user may open it; otherwise the same 404 as for a case that does not exist."""
    if not can_view_case(db, g.user, case_id):
        raise NotFound("Дело не найдено")
    return db.get(Case, case_id)


def _instance_or_404(db, case: Case, instance_id: int) -> ProcessInstance:
    scoped = db.scalar(select(InstanceScope.instance_id).where(InstanceScope.instance_id == instance_id,
                                                               InstanceScope.case_id == case.id))
    row = db.get(ProcessInstance, instance_id) if scoped is not None else None
    if row is None:
        raise NotFound("Процесс не найден")
    return row


# -- the list -----------------------------------------------------------------------------------------------------

@bp.route("/cases")
@roles_required(*CASE_ROLES)
def index():
    user, args = g.user, request.args
    query = select(Case.id).where(Case.id.in_(visible_cases(user)))
    if args.get("status") in STATUSES:
        query = query.where(Case.status == args["status"])
    if args.get("danger") in labels.DANGER_LEVELS:
        query = query.where(Case.danger_level == args["danger"])
    if args.get("curator"):
        query = query.where(Case.curator == args["curator"])
    search = args.get("q", "").strip()
    if search:
        query = query.where(_search(search))
    descending = args.get("order") == "desc"
    year = extract("year", Case.received_on)
    page = max(1, args.get("page", 1, type=db_int))
    with kurator().db.session() as db:
        total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
        ids = list(db.scalars(query.order_by(year.desc() if descending else year,
                                             Case.id.desc() if descending else Case.id)
                              .limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)))
        cases = {c.id: c for c in db.scalars(select(Case).where(Case.id.in_(ids))).unique()}
        curators = _full_names(db, {c.curator for c in cases.values() if c.curator})
        rows = [_list_row(cases[i], curators) for i in ids]
        curator_choices = sorted(
            ((username, name or username) for username, name in db.execute(
                select(Case.curator, User.full_name).distinct().outerjoin(User, User.username == Case.curator)
                .where(Case.id.in_(visible_cases(user)), Case.curator.is_not(None)))),
            key=lambda item: item[1])
    return render_template("cases/index.html", rows=rows, total=total, page=page,
                           pages=max(1, -(-total // PAGE_SIZE)), args=args, statuses=STATUSES,
                           dangers=labels.DANGER_LEVELS, curators=curator_choices)


def _search(text: str):
    """A case number ("12/2025", "№ 12", "12") or a part of a family member's surname (either spelling of ё)."""
    number = text.lstrip("№").strip()
    conditions = []
    if re.fullmatch(r"\d+(/\d{4})?", number):
        conditions += [Case.number == number, Case.number.startswith(f"{number}/", autoescape=True)]
    folded = fold(text)
    if folded:
        people = select(Person.family_id).where(Person.name_key.contains(folded, autoescape=True))
        conditions.append(Case.family_id.in_(people))
        for variant in {text, text.capitalize(), text.replace("ё", "е").capitalize()}:
            conditions.append(Case.family_id.in_(select(Family.id).where(Family.name.contains(variant,
                                                                                            autoescape=True))))
    return or_(*conditions)


def _list_row(case: Case, curators: dict[str, str]) -> dict:
    family = case.family
    return {"id": case.id, "number": case.number, "family": family.name,
            "children": [p.full_name for p in family.children],
            "status": labels.case_status(case.status, case.programme),
            "status_code": case.status, "danger": labels.DANGER_LEVELS.get(case.danger_level or ""),
            "danger_code": case.danger_level, "curator": curators.get(case.curator or "", case.curator),
            "received_on": case.received_on}


def _full_names(db, usernames: set[str]) -> dict[str, str]:
    names = kurator().identity.full_names(usernames, session=db)
    names.setdefault("scheduler", "Система")
    return names


# -- the case file ------------------------------------------------------------------------------------------------

@bp.route("/cases/<int:case_id>")
@roles_required(*CASE_ROLES)
def show(case_id: int):
    engine = kurator()
    user = g.user
    today = engine.clock.now().astimezone(ZoneInfo(user.timezone)).date()
    with engine.db.session() as db:
        case = _case_or_404(db, case_id)
        access = CaseAccess.of(user, case)
        instances = _instances(db, case)
        instance_ids = [i["id"] for i in instances]
        tasks = list(db.scalars(select(HumanTask).where(HumanTask.instance_id.in_(instance_ids))
                                .order_by(HumanTask.created_at, HumanTask.id))) if instance_ids else []
        events = list(db.scalars(select(HistoryEvent).where(HistoryEvent.instance_id.in_(instance_ids))
                                 .order_by(HistoryEvent.at, HistoryEvent.id))) if instance_ids else []
        documents = _documents(db, case, access)
        reports = [r for r in db.scalars(select(ExecutionReport).where(ExecutionReport.case_id == case.id)
                                         .order_by(ExecutionReport.reported_on, ExecutionReport.id))
                   if access.sees_report(r.agency_id)]
        usernames = ({case.curator} | {p.responsible for p in case.participants} | {t.assignee for t in tasks}
                     | {t.completed_by for t in tasks} | {e.actor for e in events} | {r.author for r in reports}
                     | {d["created_by"] for d in documents})
        names = _full_names(db, {u for u in usernames if u})
        agencies = dict(db.execute(select(Agency.id, Agency.name).where(
            Agency.id.in_({r.agency_id for r in reports if r.agency_id}))).all())
        context = {
            "case": case, "family": _family(case.family, today), "access": access, "today": today,
            "status": labels.case_status(case.status, case.programme),
            "danger": labels.DANGER_LEVELS.get(case.danger_level or ""),
            "criteria": [labels.FAMILY_CRITERIA.get(c, c) for c in case.criteria or []],
            "closure_grounds": labels.CLOSURE_GROUNDS_SHORT.get(case.closure_grounds or ""),
            "programme_result": labels.CLOSURE_RESULTS.get(case.programme_result or ""),
            "curator": names.get(case.curator or "", case.curator),
            "curator_agency": _user_agency(db, case.curator),
            "working_group": [{"agency": p.agency.name, "role": PARTICIPANT_ROLES.get(p.role, p.role),
                               "responsible": names.get(p.responsible or "", p.responsible)}
                              for p in case.participants],
            "programme": _programme(db, case, today),
            "reports": [{"on": r.reported_on, "agency": agencies.get(r.agency_id, "—"), "text": r.text,
                         "author": names.get(r.author or "", r.author)} for r in reports],
            "resolutions": _resolutions(db, case),
            "deadlines": _deadlines(tasks, engine.clock.now(), names),
            "documents": [dict(d, author=names.get(d["created_by"] or "", d["created_by"])) for d in documents],
            "timeline": _timeline(db, events, tasks, instances, names),
            "emergency": emergency_steps(engine, db, case, access),
            "instances": instances,
            "unaddressed": _unaddressed(events, tasks) if access.full else [],
        }
    if user.has(checks.SENDER_ROLE):  # the secretary names the agency that checks, and asks agencies for materials
        context["check"] = check = checks.open_check(engine, case_id)
        if check and check.get("assignee"):  # a person, not a login
            check["assignee"] = engine.identity.full_names([check["assignee"]]).get(check["assignee"],
                                                                                   check["assignee"])
        context["check_agencies"] = checks.check_agencies(engine, case_id)
    engine.audit.record(user.username, "case_viewed", "case", case_id, ip=client_ip())
    return render_template("cases/show.html", **context)


def _unaddressed(events: list[HistoryEvent], tasks: list[HumanTask]) -> list[str]:
    """Open tasks that should have gone to an agency the municipality does not have (the diagram's fallback gave
    them to other roles, e.g. the secretary): the commission must arrange them itself."""
    open_tasks = {t.id: t.name for t in tasks if t.status == "open"}
    return [open_tasks[e.task_id] for e in events
            if e.event_type == "task_created" and e.task_id in open_tasks and (e.data or {}).get("agency_missing")]


def _family(family: Family, today: date) -> dict:
    def person(p: Person) -> dict:
        age = _age(p.birth_date, today)
        return {"name": p.full_name, "birth_date": p.birth_date, "age": age,
                "age_text": f"{age} {_years(age)}" if age is not None else None, "occupation": p.occupation}

    return {"name": family.name, "children": [person(p) for p in family.children],
            "parents": [person(p) for p in family.parents], "address_registered": family.address_registered,
            "address_actual": family.address_actual}


def _age(born: date | None, today: date) -> int | None:
    if born is None:
        return None
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def _years(n: int) -> str:
    """"год", "года" or "лет" after a number."""
    if n % 10 == 1 and n % 100 != 11:
        return "год"
    if n % 10 in (2, 3, 4) and n % 100 not in (12, 13, 14):
        return "года"
    return "лет"


def _user_agency(db, username: str | None) -> str | None:
    if not username:
        return None
    user = db.scalar(select(User).where(User.username == username))
    return user.agency.name if user is not None and user.agency is not None else None


def _programme(db, case: Case, today: date) -> dict:
    programme = case.programme or {}
    activities = []
    for a in db.scalars(select(Activity).where(Activity.case_id == case.id).order_by(Activity.number, Activity.id)):
        status = a.status
        if status == "planned" and a.term is not None and a.term < today:
            status = "overdue"
        activities.append({"number": a.number, "title": a.title, "content": casefile.split_term(a.content)[0],
                           "responsible": a.responsible, "term": casefile.activity_term(a), "done_on": a.done_on,
                           "status": labels.ACTIVITY_STATUSES.get(status, status), "status_code": status})
    state = {"draft": "проект", "approved": "утверждена"}.get(programme.get("status"), programme.get("status"))
    return {"goal": programme.get("goal"), "state": state, "protocol": programme.get("approved_protocol"),
            "approved_on": _date(programme.get("approved_date")), "activities": activities,
            "term_months": case.ipr_term_months}


def _date(value) -> date | str | None:
    """A date kept as ISO text in form data, as a date (other text as it is)."""
    if isinstance(value, str):
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return value
    return value


def _resolutions(db, case: Case) -> list[dict]:
    meetings = kurator().sop.meetings
    minutes = None  # whether the user may open the minutes (the meetings of the case's municipality)
    result = []
    for r in db.scalars(select(Resolution).where(Resolution.case_id == case.id)
                        .order_by(Resolution.adopted_on, Resolution.id)):
        data = r.data or {}
        meeting = meetings.meeting_of_resolution(db, r)
        if meeting is not None and minutes is None:
            minutes = meetings.may_view(g.user.username, case.municipality_id)
        result.append({"meeting": meeting, "minutes": bool(minutes and meeting and meeting["minutes_document_id"]),
                       "kind": RESOLUTION_KINDS.get(r.kind, r.kind), "number": r.number or "б/н",
                       "adopted_on": r.adopted_on, "decision": DECISIONS.get(r.decision, r.decision),
                       "votes": (r.present, r.votes_for, r.votes_against) if r.present is not None else None,
                       "grounds": labels.CLOSURE_GROUNDS_SHORT.get(r.grounds or "") if r.grounds else None,
                       "text": r.text or data.get("comment") or data.get("reasons")})
    return result


def _documents(db, case: Case, access: CaseAccess) -> list[dict]:
    """The newest version of each document of the case file the user may see, with its number of versions."""
    latest: dict[tuple, dict] = {}
    for row in visible_documents(db, access, case.id):
        key = (row.kind, row.source_ref)
        if key in latest:
            latest[key]["versions"] += 1
            continue
        latest[key] = {"id": row.id, "kind": row.kind, "title": row.title, "size": row.size,
                       "pdf": row.pdf_state,
                       "created_at": row.created_at, "created_by": row.created_by, "versions": 1,
                       "rendered": row.kind in casefile.CASE_DOCUMENTS}
    return sorted(latest.values(), key=lambda d: d["created_at"])


def _deadlines(tasks: list[HumanTask], now: datetime, names: dict[str, str]) -> list[dict]:
    """Human tasks with a due date: met (done in time), missed (done late, open past due, or withdrawn undone after
    its due date, e.g. an agency's report the process went on without) or still running."""
    result = []
    for task in tasks:
        if task.due is None or task.status not in ("open", "completed", "cancelled"):
            continue
        if task.status == "cancelled":
            if task.completed_at is None or task.completed_at <= task.due:
                continue  # withdrawn in time (the case moved on, a migration): no deadline was missed
            state, label = "missed", "не выполнено, срок нарушен"
        elif task.status == "completed":
            late = task.completed_at is not None and task.completed_at > task.due
            state, label = ("missed", "выполнено с нарушением срока") if late else ("met", "выполнено в срок")
        elif task.overdue or task.due < now:
            state, label = "missed", "срок нарушен"
        else:
            state, label = "due", "в работе, срок не истек"
        who = task.completed_by or task.assignee
        result.append({"name": task.name, "due": task.due,
                       "completed_at": task.completed_at if task.status == "completed" else None, "state": state,
                       "label": label, "assignee": names.get(who or "", who)})
    result.sort(key=lambda d: d["due"])
    return result


def _instances(db, case: Case) -> list[dict]:
    rows = db.execute(select(ProcessInstance, ProcessDefinition.name, ProcessDefinition.version)
                      .join(InstanceScope, InstanceScope.instance_id == ProcessInstance.id)
                      .join(ProcessDefinition, ProcessDefinition.id == ProcessInstance.definition_id)
                      .where(InstanceScope.case_id == case.id).order_by(ProcessInstance.id)).all()
    return [{"id": row.id, "key": row.process_key, "name": name or row.process_key, "version": version,
             "status": INSTANCE_STATUSES.get(row.status, row.status), "started_at": row.started_at,
             "ended_at": row.ended_at, "definition_id": row.definition_id} for row, name, version in rows]


def _timeline(db, events: list[HistoryEvent], tasks: list[HumanTask], instances: list[dict],
              names: dict[str, str]) -> list[dict]:
    task_names = {t.id: t.name for t in tasks}
    processes = {i["id"]: i for i in instances}
    element_names: dict[int, dict[str, str]] = {}
    for instance in instances:
        definition = db.get(ProcessDefinition, instance["definition_id"])
        element_names[instance["id"]] = _diagram_names(definition.resource.content_hash, definition.resource.content)
    result = []
    for event in events:
        data = event_outline(event.event_type, event.data) or {}  # never what was entered (sop.access)
        process = processes.get(event.instance_id, {})
        if event.task_id:
            subject = task_names.get(event.task_id) or data.get("name") or ""
        elif event.event_type in ("instance_started", "instance_completed"):
            subject = process.get("name", "")
        elif event.event_type in ("instance_migrated", "migration_reverted") and isinstance(data.get("to"), dict):
            subject = f"версия {data.get('from', {}).get('version', '?')} → версия {data['to'].get('version', '?')}"
        elif event.event_type in ("message_received", "signal_received"):
            subject = EVENT_NAMES.get(data.get("name"), data.get("name") or "")
        elif data.get("element"):
            subject = element_names.get(event.instance_id, {}).get(data["element"], data["element"])
        else:
            subject = ""
        result.append({"at": event.at, "type": event.event_type, "label": EVENTS.get(event.event_type,
                                                                                       event.event_type),
                       "subject": subject, "actor": names.get(event.actor or "", event.actor),
                       "process": process.get("name", "")})
    return result


@lru_cache(maxsize=32)
def _diagram_names(content_hash: str, content: str) -> dict[str, str]:
    """Element id -> name of a BPMN file (for the timeline's timers and steps)."""
    del content_hash  # part of the cache key only
    try:
        root = etree.fromstring(content.encode("utf-8"), _SAFE_XML)
    except etree.XMLSyntaxError:
        return {}
    return {el.get("id"): " ".join(el.get("name").split()) for el in root.iter()
            if isinstance(el.tag, str) and el.get("id") and el.get("name")}


@lru_cache(maxsize=32)
def _diagram_ids(content_hash: str, content: str) -> frozenset[str]:
    del content_hash
    try:
        root = etree.fromstring(content.encode("utf-8"), _SAFE_XML)
    except etree.XMLSyntaxError:
        return frozenset()
    return frozenset(el.get("id") for el in root.iter() if isinstance(el.tag, str) and el.get("id"))


# -- documents ----------------------------------------------------------------------------------------------------

def _document_or_404(db, case: Case, document_id: int) -> Document:
    document = db.get(Document, document_id)
    if document is None or document.case_id != case.id:
        raise NotFound("Документ не найден")
    if not may_open_document(db, CaseAccess.of(g.user, case), document):
        raise NotFound("Документ не найден")
    return document


@bp.route("/cases/<int:case_id>/check", methods=["POST"])
@roles_required(checks.SENDER_ROLE)
def send_check(case_id: int):
    """Send the case's open check to an agency of the municipality, or call it back to the commission."""
    engine = kurator()
    _require_visible(case_id)
    check = checks.open_check(engine, case_id)
    if check is None:
        flash("Проверка по делу уже завершена.", "error")
        return redirect(url_for("cases.show", case_id=case_id))

    def send() -> tuple[str, dict]:
        sent = checks.send_check(engine, check["task_id"], request.form.get("agency"), g.user.username)
        return f"Проверка передана: {sent['agency_name']}.", {"task_id": check["task_id"],
                                                               "agency_id": sent["agency_id"]}

    return _secretary_action(case_id, "check", "check_sent", send, "Проверка не передана",
                             "передать проверку может секретарь комиссии")


@bp.route("/cases/<int:case_id>/materials", methods=["POST"])
@roles_required(checks.SENDER_ROLE)
def request_materials(case_id: int):
    """Ask agencies of the municipality for materials on the case; each answers in a task of its own."""
    engine = kurator()
    _require_visible(case_id)

    def ask() -> tuple[str, dict]:
        started = materials.request_materials(engine, case_id, request.form.getlist("agencies"),
                                              request.form.get("question", ""), g.user.username)
        return f"Запрос материалов отправлен: органов — {len(started)}.", {"instances": started}

    return _secretary_action(case_id, "materials", "materials_requested", ask, "Запрос не отправлен",
                             "запросить материалы может секретарь")


def _require_visible(case_id: int) -> None:
    """404 for a case the user may not open (its existence is not revealed)."""
    with kurator().db.session() as db:
        _case_or_404(db, case_id)


def _secretary_action(case_id: int, anchor: str, audit_action: str, action, refused: str, default_reason: str):
    """Run one of the secretary's actions on a case file: audited on success, a clear message either way."""
    try:
        done, details = action()
    except (InvalidInput, PermissionDenied) as exc:
        reason = next(iter(getattr(exc, "errors", {}).values()), None) or default_reason
        flash(f"{refused}: {reason}.", "error")
        return redirect(url_for("cases.show", case_id=case_id, _anchor=anchor))
    kurator().audit.record(g.user.username, audit_action, "case", case_id, ip=client_ip(), details=details)
    flash(done)
    return redirect(url_for("cases.show", case_id=case_id, _anchor=anchor))


@bp.route("/cases/<int:case_id>/documents/<int:document_id>")
@roles_required(*CASE_ROLES)
def document(case_id: int, document_id: int):
    engine = kurator()
    with engine.db.session() as db:
        case = _case_or_404(db, case_id)
        row = _document_or_404(db, case, document_id)
        filename, content = row.filename, casefile.pdf_of(db, row)
    engine.audit.record(g.user.username, "document_downloaded", "document", document_id, ip=client_ip(),
                        details={"case_id": case_id, "filename": filename})
    ascii_name = filename.encode("ascii", "ignore").decode() or "document.pdf"
    return Response(content, mimetype="application/pdf", headers={
        "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}",
        "Content-Length": str(len(content))})


@bp.route("/cases/<int:case_id>/bundle.pdf")
@roles_required(*CASE_ROLES)
def bundle(case_id: int):
    """The whole case file the user may see as one PDF with a contents page («Личное дело»)."""
    engine = kurator()
    _require_visible(case_id)
    result = case_bundle(engine, case_id, g.user)
    engine.audit.record(g.user.username, "case_bundle_downloaded", "case", case_id, ip=client_ip(),
                        details={"documents": [e["id"] for e in result.entries], "pages": result.pages})
    return Response(result.pdf, mimetype="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="{result.filename}"', "Content-Length": str(len(result.pdf)),
        "Cache-Control": "private, no-store"})


@bp.route("/cases/<int:case_id>/documents/<int:document_id>/regenerate", methods=["POST"])
@roles_required(*CASE_ROLES)
def regenerate(case_id: int, document_id: int):
    engine = kurator()
    with engine.db.session() as db:
        case = _case_or_404(db, case_id)
        _document_or_404(db, case, document_id)
        if not CaseAccess.of(g.user, case).may_regenerate:
            raise PermissionDenied("Пересоздать документ может секретарь комиссии или куратор дела")
    try:
        new_id = casefile.regenerate(engine, document_id, g.user.username)
    except InvalidInput as exc:
        flash(f"Документ не удалось сформировать заново: {exc.message}", "error")
    else:
        engine.audit.record(g.user.username, "document_regenerated", "document", new_id, ip=client_ip(),
                            details={"case_id": case_id, "from_document": document_id})
        flash("Документ сформирован заново по текущим данным дела.")
    return redirect(url_for("cases.show", case_id=case_id, _anchor="documents"))


# -- diagrams -----------------------------------------------------------------------------------------------------

@bp.route("/cases/<int:case_id>/diagram/<int:instance_id>.bpmn")
@roles_required(*CASE_ROLES)
def diagram(case_id: int, instance_id: int):
    engine = kurator()
    with engine.db.session() as db:
        case = _case_or_404(db, case_id)
        row = _instance_or_404(db, case, instance_id)
        resource = row.definition.resource
        content = _for_viewing(resource.content_hash, resource.content, tuple(sorted(engine.role_titles().items())))
    return Response(content, mimetype="application/xml")


# what the events of the signal and the message are called on the current diagrams (workflows/sop_case.bpmn), for
# the versions that named them with the signal's or the message's own name («Сигнал threat_to_life»)
_EVENT_LABELS = {"threat_to_life": "Угроза жизни или здоровью ребенка", "minor_turned_18": "Исполнилось 18 лет"}


@lru_cache(maxsize=32)
def _for_viewing(content_hash: str, content: str, roles: tuple[tuple[str, str], ...]) -> str:
    """The diagram as the case file shows it: a lane named with a role code (the engine offers the lane's tasks
    to that role: `engine.bpmn.validation.resolve_role`) is labelled with the role's title, and an event named
    with the raw name of its signal or message (the versions before «Угроза жизни или здоровью ребенка») with
    the event's Russian name. Only the served copy changes: the deployed version, its ids and the modeler's
    diagram stay as they are."""
    del content_hash  # part of the cache key only
    try:
        root = etree.fromstring(content.encode("utf-8"), _SAFE_XML)
    except (etree.XMLSyntaxError, ValueError):
        return content
    titles = dict(roles)
    changed = False
    for lane in root.iter("{*}lane"):
        name = (lane.get("name") or "").strip()
        code = resolve_role(name, titles)
        if code is not None and name.casefold() == code.casefold() and titles[code]:
            lane.set("name", titles[code])
            changed = True
    refs = {el.get("id"): el.get("name") for el in root.iter("{*}signal", "{*}message") if el.get("name")}
    for definition in root.iter("{*}signalEventDefinition", "{*}messageEventDefinition"):
        event = definition.getparent()
        raw = refs.get(definition.get("signalRef") or definition.get("messageRef"))
        if raw in _EVENT_LABELS and raw in (event.get("name") or ""):
            event.set("name", _EVENT_LABELS[raw])
            changed = True
    if not changed:
        return content
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True).decode("utf-8")


@bp.route("/cases/<int:case_id>/diagram/<int:instance_id>/state.json")
@roles_required(*CASE_ROLES)
def diagram_state(case_id: int, instance_id: int):
    engine = kurator()
    with engine.db.session() as db:
        case = _case_or_404(db, case_id)
        row = _instance_or_404(db, case, instance_id)
        resource = row.definition.resource
        drawn = _diagram_ids(resource.content_hash, resource.content)
        open_tasks = db.execute(select(HumanTask.element_id, HumanTask.name)
                                .where(HumanTask.instance_id == row.id, HumanTask.status == "open")).all()
        active, done = _element_states(engine, db, row, drawn)
        # open tasks of called processes are not on this diagram: their call activity is marked instead
        active |= {element for element, _name in open_tasks if element in drawn}
        state = {"instance_id": row.id, "process_key": row.process_key, "version": row.definition.version,
                 "status": row.status, "active": sorted(active), "completed": sorted(done - active),
                 "open_tasks": [{"element_id": element, "name": name} for element, name in open_tasks]}
    return jsonify(state)


def _element_states(engine, db, row: ProcessInstance, drawn: frozenset[str]) -> tuple[set[str], set[str]]:
    """Element ids of this diagram that are active (user tasks ready, events awaited, and the (sub)processes
    containing them) and those completed at least once."""
    try:
        states = engine.runtime.activity_states(row.id)
    except Exception:  # a state that cannot be restored must not hide the diagram itself
        log.exception("instance %s: state could not be loaded for the diagram", row.id)
        return set(), set()
    def own(pairs) -> set[str]:
        return {element for file, element in pairs if element in drawn and file == states["file"]}

    return own(states["active"]), own(states["completed"])
