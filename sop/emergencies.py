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

Cost: a page asks for the few oldest emergencies and a count (`emergency_flag`). The open emergency tasks of the
municipality come from the open-task index (one row each, no history), and the start of each open run is
remembered per (first open task, its creation time): while that task stays the earliest open one of its instance,
the run it belongs to cannot change, because every task before it is closed and a closed task does not change. So
a page reads the history of an instance only when its emergency opens or moves on to a new first open task, and
the case number and family only of the cases it names.
"""

from __future__ import annotations

import heapq
import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import null, select, union_all
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from engine.models import HumanTask, ProcessDefinition, ProcessInstance

from .models import Case, Family, InstanceScope

EMERGENCY_PROCESS = "emergency_child_safety"
# a task opened this soon after an earlier emergency task ended continues the same emergency (the engine completes
# one task and opens the next in one step, a few milliseconds apart on the real clock)
SAME_RUN = timedelta(minutes=1)
RUN_STARTS_KEPT = 50_000  # remembered run starts (a few dozen bytes each); the memo is emptied when full
HISTORY_CHUNK = 500  # instances whose emergency history is read in one statement

_ELEMENTS: dict[str, frozenset[str]] = {}  # content hash of a deployed emergency diagram -> its element ids
# (first open emergency task id, its created_at) -> when its run began, for the element ids `_RUN_STARTS_OF`
_RUN_STARTS: dict[tuple[str, datetime], datetime] = {}
_RUN_STARTS_OF: list[frozenset[str]] = [frozenset()]
_LOCK = threading.Lock()


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
    since = _open_since(session, municipality_id, cases)
    return _named(session, sorted(since.items(), key=lambda item: (item[1], item[0])))


def emergency_flag(session: Session, municipality_id: int, cases: Select | None = None, shown: int = 5,
                   case_id: int | None = None) -> EmergencyFlag | None:
    """The flag of a page: `case_id`'s own open emergency, the `shown` oldest of the other cases and the count of
    the rest (None when no case in scope has an emergency open). `cases` narrows as in `open_emergencies`; only
    the cases named get their number and family read."""
    since = _open_since(session, municipality_id, cases)
    if not since:
        return None
    this_since = since.pop(case_id, None) if case_id is not None else None
    oldest = heapq.nsmallest(shown, since.items(), key=lambda item: (item[1], item[0]))
    named = _named(session, ([(case_id, this_since)] if this_since is not None else []) + oldest)
    this = named.pop(0) if named and named[0].case_id == case_id and this_since is not None else None
    return EmergencyFlag(this=this, others=named, more=len(since) - len(oldest))


def _open_since(session: Session, municipality_id: int, cases: Select | None) -> dict[int, datetime]:
    """Case id -> when its earliest open emergency began, for the cases of the municipality (within `cases`)."""
    own = (select(ProcessInstance.id, InstanceScope.case_id, ProcessInstance.started_at, null())
           .join(InstanceScope, InstanceScope.instance_id == ProcessInstance.id)
           .where(ProcessInstance.municipality_id == municipality_id, ProcessInstance.process_key == EMERGENCY_PROCESS,
                  ProcessInstance.status == "running", InstanceScope.case_id.is_not(None)))
    if cases is not None:
        own = own.where(InstanceScope.case_id.in_(cases))
    elements = emergency_elements(session)
    statement = own
    if elements:
        # the open emergency tasks of the case processes, read through the municipality's open tasks (an open task
        # belongs to a running instance: an instance completes only when none of its tasks is left open)
        called = (select(HumanTask.instance_id, InstanceScope.case_id, HumanTask.created_at, HumanTask.id)
                  .join(InstanceScope, InstanceScope.instance_id == HumanTask.instance_id)
                  .where(HumanTask.municipality_id == municipality_id, HumanTask.status == "open",
                         HumanTask.element_id.in_(sorted(elements)), HumanTask.process_key != EMERGENCY_PROCESS,
                         InstanceScope.case_id.is_not(None)))
        if cases is not None:
            called = called.where(InstanceScope.case_id.in_(cases))
        statement = union_all(own, called)

    since: dict[int, datetime] = {}
    first_open: dict[int, tuple[datetime, str, int]] = {}  # instance -> its earliest open emergency task, case
    for instance_id, case_id, at, task_id in session.execute(statement).all():
        if task_id is None:
            _earliest(since, case_id, at)
        elif instance_id not in first_open or (at, task_id) < first_open[instance_id][:2]:
            first_open[instance_id] = (at, task_id, case_id)
    if first_open:
        for instance_id, started in _run_starts(session, first_open, elements).items():
            _earliest(since, first_open[instance_id][2], started)
    return since


def _earliest(since: dict[int, datetime], case_id: int, at: datetime | None) -> None:
    if at is not None and (case_id not in since or at < since[case_id]):
        since[case_id] = at


def _run_starts(session: Session, first_open: dict[int, tuple[datetime, str, int]],
                elements: frozenset[str]) -> dict[int, datetime]:
    """Instance -> when the run of emergency tasks that holds its earliest open task began: remembered, or read
    from the instance's emergency tasks for those not seen with this first open task before."""
    found: dict[int, datetime] = {}
    missing: list[int] = []
    with _LOCK:
        if _RUN_STARTS_OF[0] != elements:  # another emergency diagram deployed: other tasks count
            _RUN_STARTS.clear()
            _RUN_STARTS_OF[0] = elements
    for instance_id, (created, task_id, _case) in first_open.items():
        started = _RUN_STARTS.get((task_id, created))
        if started is None:
            missing.append(instance_id)
        else:
            found[instance_id] = started
    for first in range(0, len(missing), HISTORY_CHUNK):
        chunk = missing[first:first + HISTORY_CHUNK]
        runs: dict[int, list[tuple[datetime, datetime | None]]] = {}
        for instance_id, status, created, finished in session.execute(
                select(HumanTask.instance_id, HumanTask.status, HumanTask.created_at, HumanTask.completed_at)
                .where(HumanTask.instance_id.in_(chunk), HumanTask.element_id.in_(sorted(elements)))).all():
            runs.setdefault(instance_id, []).append(
                (created, None if status == "open" else max(created, finished or created)))
        for instance_id in chunk:
            started = _run_start(runs.get(instance_id, ()))
            if started is None:  # the first open task closed between the two statements: not open any more
                continue
            found[instance_id] = started
            created, task_id, _case = first_open[instance_id]
            with _LOCK:
                if _RUN_STARTS_OF[0] != elements:
                    continue
                if len(_RUN_STARTS) >= RUN_STARTS_KEPT:
                    _RUN_STARTS.clear()
                _RUN_STARTS[(task_id, created)] = started
    return found


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
    spec = json.loads(spec_json)["spec"]
    return frozenset(t["bpmn_id"] for t in spec.get("task_specs", {}).values() if t.get("bpmn_id"))


def _run_start(tasks: Iterable[tuple[datetime, datetime | None]]) -> datetime | None:
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
