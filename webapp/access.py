"""Who may see what (docs/domain.md §2): roles and data scope, checked on every page and endpoint.

- The commission (secretary, chair, members) sees every case of its municipality.
- A curator sees the cases they curate; an agency's staff see the cases in which their agency takes part, or
  in which their agency holds or held a task (the scope follows the work), and the cases where they held one.
- A manager sees what their agency sees (and, at the commission, the municipality).
- The regional secretary, methodologists and administrators see no case files.
- The regional secretary's inbox holds the steps offered to her role in any municipality (the region's steps of
  the reporting processes: the databank, «Подросток»); no step of a case is offered to that role.
- Statistics (reports): the commission and the municipality's managers see its municipality's; the regional
  secretary sees every municipality of the region (those with a commission) and their sum; nobody else sees any.
  An agency's manager reads only the pages of figures alone (`reads_reports`), not «Подросток», which shows the
  commission's free text.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import abort
from sqlalchemy import or_, select, union_all
from sqlalchemy.sql import CompoundSelect, Select

from engine import task_query
from engine.identity import UserInfo
from engine.models import Agency, HumanTask, Municipality, ProcessInstance, User
from sop import access as sop_access
from sop.models import Case, InstanceReader, InstanceScope

from .params import db_int

MUNICIPALITY_ROLES = {"commission_secretary", "commission"}
CASE_ROLES = MUNICIPALITY_ROLES | {"curator", "agency_specialist", "police", "guardianship", "social_protection",
                                   "education", "health", "manager"}


@dataclass(frozen=True)
class CurrentUser:
    id: int
    username: str
    full_name: str
    roles: frozenset[str]
    agency_id: int | None
    agency_name: str | None
    agency_kind: str | None
    municipality_id: int | None
    municipality: str | None
    timezone: str = "Europe/Moscow"

    @classmethod
    def from_row(cls, user: User) -> CurrentUser:
        agency: Agency | None = user.agency
        return cls(id=user.id, username=user.username, full_name=user.full_name or user.username,
                   roles=frozenset(user.roles), agency_id=agency.id if agency else None,
                   agency_name=agency.name if agency else None, agency_kind=agency.kind if agency else None,
                   municipality_id=agency.municipality_id if agency else None,
                   municipality=agency.municipality.name if agency else None,
                   timezone=agency.timezone if agency else "Europe/Moscow")

    @classmethod
    def from_info(cls, info: UserInfo) -> CurrentUser:
        """The current user from the engine's account of them (read with their session or token)."""
        return cls(id=info.id, username=info.username, full_name=info.full_name or info.username,
                   roles=frozenset(info.roles), agency_id=info.agency_id, agency_name=info.agency,
                   agency_kind=info.agency_kind, municipality_id=info.municipality_id,
                   municipality=info.municipality if info.agency_id is not None else None,
                   timezone=info.timezone)

    def has(self, *roles: str) -> bool:
        return bool(self.roles & set(roles))

    @property
    def municipality_wide(self) -> bool:
        """Sees the whole municipality: the commission, and managers working at the commission."""
        return self.has(*MUNICIPALITY_ROLES) or (self.has("manager") and self.agency_kind == "commission")

    @property
    def sees_cases(self) -> bool:
        return self.municipality_id is not None and self.has(*CASE_ROLES)


def readers_of(user: CurrentUser) -> list[str]:
    """The readers of `sop_instance_reader` that stand for the user: their agency's staff, and themselves."""
    return sop_access.readers_of(user.username, user.agency_id)


def visible_cases(user: CurrentUser) -> Select:
    """A query of the ids of the cases the user may open (empty for those who see none)."""
    query = select(Case.id)
    if not user.sees_cases:
        return query.where(Case.id.is_(None))
    query = query.where(Case.municipality_id == user.municipality_id)
    if user.municipality_wide:
        return query
    return sop_access.cases_taken_part_in(query, user.username, user.agency_id)


def visible_instances(user: CurrentUser, running: bool = False) -> CompoundSelect:
    """The ids of the process instances whose tasks are in the scope of a user who sees part of a municipality:
    the instances of the cases the user reads (`InstanceReader`), those of the municipality that belong to no
    case (e.g. the quarterly reconciliation), and those that belong to no municipality at all. With `running`,
    of the cases only their running instances (enough for open tasks: an instance completes only when none of its
    tasks is open), read from a smaller index."""
    parts = [select(InstanceScope.instance_id).where(InstanceScope.municipality_id == user.municipality_id,
                                                     InstanceScope.case_id.is_(None)),
             select(ProcessInstance.id).where(ProcessInstance.municipality_id.is_(None))]
    if user.sees_cases:
        read = select(InstanceReader.instance_id).where(InstanceReader.reader.in_(readers_of(user)))
        parts.insert(0, read.where(InstanceReader.running) if running else read)
    return union_all(*parts)


def task_scope(query: Select, user: CurrentUser, open_tasks: bool = False) -> Select:
    """Restrict a HumanTask query to the tasks of processes in the user's data scope (`open_tasks`: the query
    asks for open tasks only, so the running instances of the user's cases are enough).

    The municipality of a task's process is on the task row (`HumanTask.municipality_id`, stamped from
    `sop_instance_scope`), so for the commission this is an indexable condition rather than a look-up in the scope
    table; None marks processes that belong to no case or municipality (e.g. a methodologist's test diagram): they
    carry no case data. Anyone else sees the tasks of `visible_instances`, read as a set (the instances first, then
    their open tasks through an index) rather than a condition tested on every task of the municipality.
    """
    unscoped = HumanTask.municipality_id.is_(None)
    # the region's own steps of the municipalities' reporting processes (the databank, «Подросток»), offered to the
    # regional secretary's role in any municipality; no step of a case is offered to that role
    regional = task_query.with_role("regional_secretary") if user.has("regional_secretary") else None
    anywhere = or_(unscoped, regional) if regional is not None else unscoped
    if user.municipality_id is None:
        query = query.where(anywhere)
    elif user.municipality_wide:
        query = query.where(or_(HumanTask.municipality_id == user.municipality_id, anywhere))
    else:
        # one set of instances (no OR with the unscoped tasks, which would make it a test of every task instead)
        scoped = HumanTask.instance_id.in_(visible_instances(user, running=open_tasks)) & or_(
            HumanTask.municipality_id == user.municipality_id, unscoped)
        query = query.where(or_(scoped, regional) if regional is not None else scoped)
    if user.municipality_wide:
        return query
    # a task addressed to another agency does not exist for this user, unless they hold or held it
    return query.where(task_query.not_another_agencys(user))


def inbox_query(user: CurrentUser, mine_only: bool = False, scope: str | None = None) -> Select:
    """Open tasks the user works on, in their scope: `scope` "mine" (assigned to them), "candidate" (unassigned and
    offered to them: roles, agency, name) or "all" (both); `mine_only` is the older spelling of "mine"."""
    scope = scope or ("mine" if mine_only else "all")
    if scope == "candidate":
        return task_scope(task_query.offered_tasks_of(user), user, open_tasks=True)
    return task_scope(task_query.open_tasks_of(user, scope == "mine"), user, open_tasks=True)


def can_view_case(session, user: CurrentUser, case_id: int) -> bool:
    return session.scalar(visible_cases(user).where(Case.id == case_id)) is not None


# The roles that may ask for a report page at all; `report_municipalities` decides whose figures they read (a manager:
# only of their own municipality, and an agency's manager only on the pages of figures alone).
REPORT_ROLES = MUNICIPALITY_ROLES | {"regional_secretary", "manager"}


def reads_reports(user: CurrentUser, personal: bool = False) -> bool:
    """Whether the user reads some municipality's statistics (the top bar's test; `report_municipalities` says
    whose): the regional secretary; the commission and the managers of a municipality, its own. `personal`: the
    page may show personal data in free text (the «Подросток» campaign: the commission's comments on an agency's
    lists of children and the results it enters), which an agency's manager does not read; «Статистика» and
    «Показатели» show counts, the names of agencies and of the staff who curate, no child's or family's data, and an
    agency's manager reads them as the municipality's."""
    if user.has("regional_secretary"):
        return True
    if user.municipality_id is None:
        return False
    if user.has(*MUNICIPALITY_ROLES):
        return True
    return user.has("manager") and (user.municipality_wide or not personal)


def report_municipalities(session, user: CurrentUser, personal: bool = False) -> list[tuple[int, str]]:
    """The municipalities whose statistics the user may read, by name: for the regional secretary every municipality
    with a commission; for the commission (secretary, chair, members) and the municipality's managers its own (an
    agency's manager not on a page of `personal` data, `reads_reports`); for anyone else none."""
    if user.has("regional_secretary"):
        with_commission = select(Agency.municipality_id).where(Agency.kind == "commission")
        return [(m_id, name) for m_id, name in session.execute(
            select(Municipality.id, Municipality.name).where(Municipality.id.in_(with_commission))
            .order_by(Municipality.name)).all()]
    if reads_reports(user, personal):
        return [(user.municipality_id, user.municipality)]
    return []


REGION = "Регион (все муниципальные образования)"  # the name of the regional secretary's sum of municipalities


@dataclass(frozen=True)
class ReportScope:
    """What a report page is asked for: one municipality, or (the regional secretary only) the region; `options`
    are the municipalities the user may choose from (`report_municipalities`)."""

    options: list[tuple[int, str]]
    municipality_id: int | None  # None: the region
    name: str

    @property
    def region(self) -> bool:
        return self.municipality_id is None

    @property
    def ids(self) -> list[int]:
        """The municipalities the figures are read for: the region's, or the one asked for."""
        return [m for m, _ in self.options] if self.region else [self.municipality_id]

    @property
    def key(self) -> str:
        return "region" if self.region else str(self.municipality_id)


def report_scope(session, user: CurrentUser, raw: str | int | None, personal: bool = False) -> ReportScope:
    """The municipality a report is asked for (`raw`: its id; empty: the regional secretary's region, anyone else's
    own), as the user may see it (`personal`: the page may show personal data, `reads_reports`): 403 for a user who
    may read no such report, 404 for a municipality outside the user's scope (or not a number)."""
    options = report_municipalities(session, user, personal)
    if not options:
        abort(403)
    raw = str(raw if raw is not None else "").strip()
    if not raw:
        if user.has("regional_secretary"):
            return ReportScope(options, None, REGION)
        return ReportScope(options, options[0][0], options[0][1])
    try:
        wanted = db_int(raw)
    except ValueError:
        abort(404)
    for municipality_id, name in options:
        if municipality_id == wanted:
            return ReportScope(options, municipality_id, name)
    abort(404)  # another municipality's figures do not exist for this user
