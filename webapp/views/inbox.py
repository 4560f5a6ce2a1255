"""«Мои задачи»: tasks assigned to me and tasks of my roles in my data scope that I can claim."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from sqlalchemy import Select, func, select, union_all
from sqlalchemy.orm import aliased
from sqlalchemy.sql import CompoundSelect

from engine import task_query
from engine.errors import Conflict, NotFound, PermissionDenied
from engine.models import Agency, HumanTask, ProcessInstance, User
from sop import repeated_signals
from sop.meetings.models import ITEM_STATUSES
from sop.models import Case, Family, InstanceScope

from ..access import inbox_query, task_scope
from ..auth import client_ip, kurator, login_required, safe_next
from ..params import db_int

bp = Blueprint("inbox", __name__)
PAGE_SIZE = 50
COUNT_CAP = 500  # the title counts the list up to this many tasks, then says «более 500»
DUE_SOON = timedelta(days=2)


@bp.route("/")
def home():
    return redirect(url_for("inbox.index") if g.get("user") else url_for("auth.login"))


@bp.route("/inbox")
@login_required
def index():
    user = g.user
    args = request.args
    query = inbox_query(user, mine_only=args.get("scope") == "mine")
    if args.get("process"):
        query = query.where(HumanTask.process_key == args["process"])
    if args.get("stage"):
        query = query.where(HumanTask.element_id == args["stage"])
    if args.get("case"):
        query = query.where(HumanTask.instance_id.in_(
            select(InstanceScope.instance_id).join(Case, Case.id == InstanceScope.case_id)
            .where(Case.number == args["case"])))
    now = kurator().clock.now()
    if args.get("due") == "overdue":
        query = query.where(HumanTask.overdue.is_(True))
    elif args.get("due") == "soon":
        query = query.where(HumanTask.due.is_not(None), HumanTask.due <= now + DUE_SOON)
    page = max(1, request.args.get("page", 1, type=db_int))
    offset = (page - 1) * PAGE_SIZE
    with kurator().db.session() as db:
        # counting stops past COUNT_CAP: an exact count of a municipality's whole list costs more than the page
        if offset + PAGE_SIZE <= COUNT_CAP + 1:
            # the first counted tasks in order, once: their number is the count, and the page is a slice of them
            counted = db.scalars(counted_query(query)).all()
            total = len(counted)
            rows = db.execute(rows_query(counted[offset:offset + PAGE_SIZE])).all()
        else:  # a page past the counted tasks
            total = db.scalar(select(func.count()).select_from(
                query.with_only_columns(HumanTask.id).limit(COUNT_CAP + 1).subquery()))
            rows = db.execute(page_query(query, offset)).all()
        stages, processes = filter_lists(db, user)
    items = [{"task": task, "case_id": case_id, "case_number": number, "family": family, "agency": agency,
              "assignee": holder_name or task.assignee,
              # past its due date is late at once, not only after the scheduler's next sweep marks it
              "late": task.overdue or (task.due is not None and task.due < now),
              "soon": task.due is not None and not task.overdue and now <= task.due <= now + DUE_SOON}
             for task, case_id, number, family, _key, agency, holder_name in rows]
    pages = max(1, -(-min(total, COUNT_CAP) // PAGE_SIZE))
    if total > COUNT_CAP and len(rows) == PAGE_SIZE:
        pages = max(pages, page + 1)  # past the counted pages, one more link while pages are full
    return render_template("inbox.html", items=items, total=count_label(total), page=page, pages=pages,
                           stages=stages, processes=processes, args=args, now=now, notices=meeting_notices(user),
                           signals=signals_to_consider(user),
                           item_statuses=ITEM_STATUSES,
                           role_titles=kurator().role_titles(), process_names=process_names())


ORDER = (HumanTask.due.is_(None), HumanTask.due, HumanTask.created_at, HumanTask.id)


def counted_query(query: Select) -> Select:
    """The ids of the first COUNT_CAP + 1 tasks of `query` in the inbox's order."""
    return query.with_only_columns(HumanTask.id).order_by(*ORDER).limit(COUNT_CAP + 1)


def page_query(query: Select, offset: int) -> Select:
    """One page of the inbox: the tasks of `query` in due order, each with its case, family, business key and
    agency. The page's task ids are chosen first, so that only those rows are joined to the rest."""
    chosen = query.with_only_columns(HumanTask.id).order_by(*ORDER).limit(PAGE_SIZE).offset(offset).subquery()
    return _with_case(select(HumanTask).join(chosen, chosen.c.id == HumanTask.id))


def rows_query(task_ids: list[str]) -> Select:
    """The tasks of a page chosen already (their ids), in the inbox's order, each with its case, family, business
    key and agency."""
    return _with_case(select(HumanTask).where(HumanTask.id.in_(task_ids)))


_HOLDER = aliased(User, name="holder")


def _with_case(query: Select) -> Select:
    """With the task's case, family, business key, agency and the full name of whoever holds it (in the same
    statement: a page shows people, not logins)."""
    holder = _HOLDER
    return (query.add_columns(Case.id, Case.number, Family.name, ProcessInstance.business_key, Agency.name,
                              holder.full_name)
            .join(ProcessInstance, ProcessInstance.id == HumanTask.instance_id)
            .outerjoin(Agency, Agency.id == HumanTask.agency_id)
            .outerjoin(holder, holder.username == HumanTask.assignee)
            .outerjoin(InstanceScope, InstanceScope.instance_id == HumanTask.instance_id)
            .outerjoin(Case, Case.id == InstanceScope.case_id)
            .outerjoin(Family, Family.id == Case.family_id)
            .order_by(*ORDER))


def meeting_notices(user) -> list[dict]:
    """«Ваш вопрос на заседании …»: the notices to the user's agency of its cases on a meeting's agenda, by meeting."""
    service = getattr(kurator(), "sop", None)
    if service is None or user.agency_id is None:
        return []
    return service.meetings.notices(user.agency_id)


def signals_to_consider(user) -> list[dict]:
    """Repeated signals about the families of open cases that wait for the secretary (or the case's curator)."""
    if getattr(kurator(), "sop", None) is None:
        return []
    return repeated_signals.pending(kurator(), user.username)


def count_label(total: int) -> str:
    """The number in the page title: exact up to COUNT_CAP, then «более 500»."""
    return f"более {COUNT_CAP}" if total > COUNT_CAP else str(total)


def filter_list_query(user) -> Select | CompoundSelect:
    """The stages and processes of the open tasks the user can see (`task_scope`: their municipality's, and of
    processes outside any municipality; for agency staff only their cases' tasks that are not another agency's),
    read from the partial index on open tasks; never a task name the user may not read (other agencies' names).
    One DISTINCT per municipality column value, so that each reads its own part of the index in its order instead
    of every open task's entry (the two may repeat a stage; `filter_lists` merges them)."""
    def of(*where) -> Select:
        query = select(HumanTask.process_key, HumanTask.element_id, HumanTask.name).where(task_query.is_open(), *where)
        return task_scope(query, user, open_tasks=True).distinct()

    if user.municipality_id is None or user.has("regional_secretary"):
        return of()  # the scope reaches past one municipality: it alone says where
    return union_all(of(HumanTask.municipality_id == user.municipality_id), of(HumanTask.municipality_id.is_(None)))


def filter_lists(db, user) -> tuple[list[tuple[str, str]], list[str]]:
    """The stage list ((element id, name) by name) and the process list of the inbox's filter form."""
    rows = db.execute(filter_list_query(user)).all()
    stages = sorted({(element_id, name) for _key, element_id, name in rows}, key=lambda s: (s[1], s[0]))
    return stages, sorted({key for key, _element_id, _name in rows})


@bp.route("/tasks/<task_id>/claim", methods=["POST"])
@login_required
def claim(task_id: str):
    return _take_or_return(task_id, "claim", "Задача закреплена за вами.")


@bp.route("/tasks/<task_id>/unclaim", methods=["POST"])
@login_required
def unclaim(task_id: str):
    return _take_or_return(task_id, "unclaim", "Задача возвращена в общий список.")


def _take_or_return(task_id: str, action: str, done: str):
    """Claim or unclaim (one click from the inbox); a lost race says who has the task."""
    _visible_or_404(task_id)
    try:
        getattr(kurator().tasks, action)(task_id, g.user.username)
        kurator().audit.record(g.user.username, f"task_{action}ed", "task", task_id, ip=client_ip())
        flash(done)
    except (Conflict, PermissionDenied) as exc:
        flash(_russian(exc), "error")
    return redirect(safe_next(request.form.get("next")))


def process_names() -> dict[str, str]:
    """Process key -> the name of its latest version (the diagram's process name)."""
    return kurator().repository.process_names()


def _visible_or_404(task_id: str) -> None:
    """A task outside the user's scope does not exist for them."""
    with kurator().db.session() as db:
        visible = db.scalar(task_scope(select(HumanTask.id).where(HumanTask.id == task_id), g.user))
    if visible is None:
        raise NotFound("Задача не найдена")


def _russian(exc: Exception) -> str:
    message = getattr(exc, "message", str(exc))
    if "already claimed by" in message:
        return "Задачу уже взял в работу пользователь " + message.rsplit("by ", 1)[-1] + "."
    if "not a candidate" in message:
        return "Эта задача не для вашей роли."
    return message
