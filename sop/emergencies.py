"""Open emergencies (P5, `emergency_child_safety`): the cases of a municipality in which a threat to a child's life
is being dealt with right now — the red flag on the commission's pages.

An emergency runs in one of two ways (workflows/README.md):

- as an instance of its own, started with the case when the signal is registered as a threat to life: it is open
  while that instance runs, since the instance started;
- as a call activity inside the case's `sop_case` instance, after a critical check or the `threat_to_life` signal:
  it is open while one of its user tasks is open (every branch of the emergency is a chain of user tasks, so a
  running emergency always has one), since the first task of the unbroken run of its tasks that is still open.

Which tasks are the emergency's is read from the deployed `emergency_child_safety` diagrams (their element ids);
a calling diagram must not reuse those ids for steps of its own.

Where the start of a called emergency comes from: each time one of its steps opens, `note_step_opened` (the domain's
`task_created` listener) works out the run that step belongs to from the instance's emergency steps and writes its
start on the instance's `sop_emergency_run` row. The run of an open step can change only when a step opens: closing
a step never splits a run that still has an open step, since the step closes after every step opened before. So
the row read while an emergency step is open is the start of the open run, in every process that reads it.

Cost: the open emergencies are kept per case in `sop_case_emergency` (case, municipality, since). Every change that
may open or close one — an emergency instance started or ended, an emergency step of a case process opened, completed
or cancelled, an instance linked to a case, an instance migrated — notes the instance (`touch`), and before it
commits the rows of the cases of the noted instances are recomputed from their instances and open tasks (`refresh`),
in the same transaction. On PostgreSQL the recomputation of a case holds the case's lock (`sop.case_lock`), so
that two changes of one case committing at once cannot both keep a stale row: the later one waits for the earlier's
commit and then reads what it wrote. A page asks for the few oldest rows of its municipality and their count (one
statement through the index on municipality and start), whatever the number of open emergencies; the case number
and family are read only for the cases it names.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import event, func, select, union_all
from sqlalchemy.orm import Session, object_session
from sqlalchemy.sql import Select, Subquery

from engine import task_query
from engine.db import Database
from engine.models import HumanTask, ProcessDefinition, ProcessInstance

from .case_lock import lock_cases
from .models import Case, CaseEmergency, EmergencyRun, Family, InstanceScope

EMERGENCY_PROCESS = "emergency_child_safety"
# a task opened this soon after an earlier emergency task ended continues the same emergency (the engine completes
# one task and opens the next in one step, a few milliseconds apart on the real clock)
SAME_RUN = timedelta(minutes=1)

_ELEMENTS: dict[str, frozenset[str]] = {}  # content hash of a deployed emergency diagram -> its element ids
_TOUCHED = "sop_emergency_touched"  # Session.info: the instances whose cases' open emergencies to recompute


@dataclass(frozen=True)
class OpenEmergency:
    """A case with an emergency open now; `since` is when the (earliest still open) emergency began, UTC."""

    case_id: int
    case_number: str
    family: str
    since: datetime

    def to_dict(self) -> dict:
        return {"case_id": self.case_id, "case_number": self.case_number, "family": self.family,
                "since": self.since.isoformat()}


@dataclass(frozen=True)
class EmergencyFlag:
    """What the red flag shows: the open emergency of one case (`this`, if asked for and open), the oldest
    `shown` open emergencies of the other cases (`others`, oldest first) and how many other cases have one
    beyond those (`more`)."""

    this: OpenEmergency | None
    others: list[OpenEmergency]
    more: int


def open_emergencies(session: Session, municipality_id: int, cases: Select | None = None) -> list[OpenEmergency]:
    """The cases of the municipality with an emergency open now, one row per case, the oldest emergency first.

    `cases` (a query of case ids, e.g. `webapp.access.visible_cases`) narrows the answer to the cases a user may see.
    """
    query = _of_municipality(municipality_id, cases)
    return _named(session, session.execute(query.order_by(CaseEmergency.since, CaseEmergency.case_id)).all())


def emergency_flag(session: Session, municipality_id: int, cases: Select | None = None, shown: int = 5,
                   case_id: int | None = None) -> EmergencyFlag | None:
    """The flag of a page: `case_id`'s own open emergency, the `shown` oldest of the other cases and the count of
    the rest (None when no case in scope has an emergency open). `cases` narrows as in `open_emergencies`; only
    the cases named get their number and family read. One statement: the `shown` + 1 oldest rows (one may be
    `case_id`'s), `case_id`'s row and the count, each read through the index on municipality and start."""
    shown = max(shown, 0)
    query = _of_municipality(municipality_id, cases)
    oldest = query.order_by(CaseEmergency.since, CaseEmergency.case_id).limit(shown + 1).subquery()
    parts = [select(oldest.c.case_id, oldest.c.since)]
    if case_id is not None:
        parts.append(query.where(CaseEmergency.case_id == case_id))
    rows = union_all(*parts).subquery() if len(parts) > 1 else oldest
    count = select(func.count()).select_from(query.subquery()).scalar_subquery()
    found = session.execute(select(rows.c.case_id, rows.c.since, count)).all()
    if not found:
        return None
    total = found[0][2]
    this_since = next((since for found_id, since, _total in found if found_id == case_id), None)
    others = sorted({(since, found_id) for found_id, since, _total in found if found_id != case_id})[:shown]
    oldest_rows = [(found_id, since) for since, found_id in others]
    named = _named(session, ([(case_id, this_since)] if this_since is not None else []) + oldest_rows)
    this = named.pop(0) if named and named[0].case_id == case_id and this_since is not None else None
    return EmergencyFlag(this=this, others=named, more=total - (this_since is not None) - len(oldest_rows))


def _of_municipality(municipality_id: int, cases: Select | None) -> Select:
    query = select(CaseEmergency.case_id, CaseEmergency.since).where(CaseEmergency.municipality_id == municipality_id)
    return query if cases is None else query.where(CaseEmergency.case_id.in_(cases))


def touch(session: Session, instance_id: int) -> None:
    """A change of `session` may have opened or closed an emergency of the instance's case: the case's row is
    recomputed before the transaction commits."""
    session.info.setdefault(_TOUCHED, set()).add(instance_id)
    Database.before_commit(session, _TOUCHED, _refresh_touched)


@event.listens_for(InstanceScope, "after_insert")
@event.listens_for(InstanceScope, "after_update")
def _scope_written(_mapper, _connection, scope: InstanceScope) -> None:
    """An instance linked to a case (an emergency started with it, or a case process the case takes over)."""
    session = object_session(scope)
    if session is not None:
        touch(session, scope.instance_id)


def _refresh_touched(session: Session) -> None:
    instance_ids = session.info.pop(_TOUCHED, None)
    if not instance_ids:
        return
    case_ids = session.scalars(select(InstanceScope.case_id).distinct()
                               .where(InstanceScope.instance_id.in_(sorted(instance_ids)),
                                      InstanceScope.case_id.is_not(None))).all()
    if case_ids:
        refresh(session, sorted(case_ids))


def refresh(session: Session, case_ids: list[int] | None = None) -> None:
    """Recompute the open-emergency rows (`sop_case_emergency`) of the cases `case_ids` (of every case when None)
    from their instances and open tasks."""
    table = CaseEmergency.__table__
    if case_ids is not None:
        if not case_ids:
            return
        lock_cases(session, case_ids)  # in one order: two changes never wait for each other crosswise
    since = _computed_since(session, case_ids)
    rows = (select(since.c.case_id, Case.municipality_id, since.c.since)
            .join(Case, Case.id == since.c.case_id))
    delete = table.delete()
    if case_ids is not None:
        delete = delete.where(table.c.case_id.in_(case_ids))
    session.execute(delete)
    session.execute(table.insert().from_select(["case_id", "municipality_id", "since"], rows))


def _computed_since(session: Session, case_ids: list[int] | None) -> Subquery:
    """Case id -> when its earliest open emergency began (`case_id`, `since`), for the cases `case_ids` (every case
    when None), from their instances and open tasks: a subquery."""
    own = (select(InstanceScope.case_id.label("case_id"), ProcessInstance.started_at.label("since"))
           .join(InstanceScope, InstanceScope.instance_id == ProcessInstance.id)
           .where(ProcessInstance.process_key == EMERGENCY_PROCESS, ProcessInstance.status == "running",
                  InstanceScope.case_id.is_not(None)))
    if case_ids is not None:
        own = own.where(InstanceScope.case_id.in_(case_ids))
    elements = emergency_elements(session)
    statement = own
    if elements:
        # the open emergency tasks of the case processes (an open task belongs to a running instance: an instance
        # completes only when none of its tasks is left open), with the start of their run. A task without one
        # (rows written without the domain attached) counts from its opening.
        called = (select(InstanceScope.case_id, func.coalesce(EmergencyRun.started_at, HumanTask.created_at))
                  .select_from(HumanTask)
                  .join(InstanceScope, InstanceScope.instance_id == HumanTask.instance_id)
                  .outerjoin(EmergencyRun, EmergencyRun.instance_id == HumanTask.instance_id)
                  .where(task_query.is_open(), HumanTask.element_id.in_(sorted(elements)),
                         HumanTask.process_key != EMERGENCY_PROCESS, InstanceScope.case_id.is_not(None)))
        if case_ids is not None:
            called = called.where(InstanceScope.case_id.in_(case_ids))
        statement = union_all(own, called)
    both = statement.subquery()
    return (select(both.c.case_id, func.min(both.c.since).label("since"))
            .group_by(both.c.case_id).subquery())


def note_step_opened(session: Session, instance_id: int, task_id: str, opened: datetime,
                     elements: frozenset[str]) -> None:
    """An emergency step (`task_id`, one of `elements`) opened in a case process at `opened`: store the start of
    the run it belongs to on the instance's `sop_emergency_run` row. Reads the instance's emergency steps; the
    rows the engine has not written yet (the step itself, its siblings of the same change) are not needed: they
    open at the same instant, and the step is counted open as it is."""
    with session.no_autoflush:
        steps = [(created, None if status == "open" else max(created, finished or created))
                 for status, created, finished in session.execute(
                     select(HumanTask.status, HumanTask.created_at, HumanTask.completed_at)
                     .where(HumanTask.instance_id == instance_id, HumanTask.element_id.in_(sorted(elements)),
                            HumanTask.id != task_id))]
        started = run_start([*steps, (opened, None)])
        row = session.get(EmergencyRun, instance_id)
    if row is None:
        session.add(EmergencyRun(instance_id=instance_id, started_at=started))
    elif row.started_at != started:
        row.started_at = started


def called_elements(spec_json: str) -> frozenset[str]:
    """The element ids of the emergency a process version calls (bundled with its spec; empty when it calls none)."""
    called = json.loads(spec_json).get("subprocess_specs", {}).get(EMERGENCY_PROCESS)
    return _task_ids(called) if called else frozenset()


def _named(session: Session, since: list[tuple[int, datetime]]) -> list[OpenEmergency]:
    """The cases' emergencies with their numbers and families, in the order given."""
    if not since:
        return []
    rows = {case_id: (number, family) for case_id, number, family in session.execute(
        select(Case.id, Case.number, Family.name).join(Family, Family.id == Case.family_id)
        .where(Case.id.in_([case_id for case_id, _at in since])))}
    return [OpenEmergency(case_id, *rows[case_id], at) for case_id, at in since if case_id in rows]


def emergency_elements(session: Session) -> frozenset[str]:
    """The element ids of every deployed version of the emergency diagram (parsed once per diagram content)."""
    rows = session.execute(select(ProcessDefinition.id, ProcessDefinition.content_hash)
                           .where(ProcessDefinition.key == EMERGENCY_PROCESS)).all()
    missing = [definition_id for definition_id, digest in rows if digest not in _ELEMENTS]
    if missing:
        for digest, spec_json in session.execute(select(ProcessDefinition.content_hash, ProcessDefinition.spec_json)
                                                 .where(ProcessDefinition.id.in_(missing))):
            _ELEMENTS[digest] = _element_ids(spec_json)
    return frozenset().union(*(_ELEMENTS[digest] for _id, digest in rows))


def _element_ids(spec_json: str) -> frozenset[str]:
    return _task_ids(json.loads(spec_json)["spec"])


def _task_ids(spec: dict) -> frozenset[str]:
    return frozenset(t["bpmn_id"] for t in spec.get("task_specs", {}).values() if t.get("bpmn_id"))


def run_start(tasks: Iterable[tuple[datetime, datetime | None]]) -> datetime | None:
    """When the run of emergency tasks that is still open began: tasks (opened, ended or None while open) that
    follow one another without a pause belong to one emergency; a pause means the earlier emergency had ended."""
    start: datetime | None = None
    end: datetime | None = None
    still_open = False
    for created, finished in sorted(tasks, key=lambda t: t[0]):
        if start is None or (not still_open and created > end + SAME_RUN):
            start, end, still_open = created, finished, finished is None
        elif finished is None:
            still_open = True
        elif not still_open:
            end = max(end, finished)
    return start if still_open else None

