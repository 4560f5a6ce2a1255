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
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from engine.models import HumanTask, ProcessDefinition, ProcessInstance

from .models import Case, Family, InstanceScope

EMERGENCY_PROCESS = "emergency_child_safety"
# a task opened this soon after an earlier emergency task ended continues the same emergency (the engine completes
# one task and opens the next in one step, a few milliseconds apart on the real clock)
SAME_RUN = timedelta(minutes=1)

_ELEMENTS: dict[str, frozenset[str]] = {}  # content hash of a deployed emergency diagram -> its element ids


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


def open_emergencies(session: Session, municipality_id: int, cases: Select | None = None) -> list[OpenEmergency]:
    """The cases of the municipality with an emergency open now, one row per case, the oldest emergency first.

    `cases` (a query of case ids, e.g. `webapp.access.visible_cases`) narrows the answer to the cases a user may see.
    """
    since: dict[int, datetime] = {}

    def opened(case_id: int, at: datetime | None) -> None:
        if at is not None and (case_id not in since or at < since[case_id]):
            since[case_id] = at

    own = (select(InstanceScope.case_id, ProcessInstance.started_at)
           .join(ProcessInstance, ProcessInstance.id == InstanceScope.instance_id)
           .where(InstanceScope.municipality_id == municipality_id, InstanceScope.case_id.is_not(None),
                  ProcessInstance.process_key == EMERGENCY_PROCESS, ProcessInstance.status == "running"))
    if cases is not None:
        own = own.where(InstanceScope.case_id.in_(cases))
    for case_id, started in session.execute(own):
        opened(case_id, started)

    elements = emergency_elements(session)
    if elements:
        called = (select(HumanTask.instance_id, InstanceScope.case_id)
                  .join(InstanceScope, InstanceScope.instance_id == HumanTask.instance_id)
                  .join(ProcessInstance, ProcessInstance.id == HumanTask.instance_id)
                  .where(InstanceScope.municipality_id == municipality_id, InstanceScope.case_id.is_not(None),
                         HumanTask.status == "open", HumanTask.element_id.in_(elements),
                         ProcessInstance.process_key != EMERGENCY_PROCESS, ProcessInstance.status == "running")
                  .distinct())
        if cases is not None:
            called = called.where(InstanceScope.case_id.in_(cases))
        case_of = {instance_id: case_id for instance_id, case_id in session.execute(called)}
        if case_of:
            runs: dict[int, list[tuple[datetime, datetime | None]]] = {}
            for instance_id, status, created, finished in session.execute(
                    select(HumanTask.instance_id, HumanTask.status, HumanTask.created_at, HumanTask.completed_at)
                    .where(HumanTask.instance_id.in_(list(case_of)), HumanTask.element_id.in_(elements))):
                runs.setdefault(instance_id, []).append(
                    (created, None if status == "open" else max(created, finished or created)))
            for instance_id, case_id in case_of.items():
                opened(case_id, _run_start(runs.get(instance_id, ())))

    if not since:
        return []
    rows = session.execute(select(Case.id, Case.number, Family.name).join(Family, Family.id == Case.family_id)
                           .where(Case.id.in_(list(since)))).all()
    return sorted((OpenEmergency(case_id, number, family, since[case_id]) for case_id, number, family in rows),
                  key=lambda e: (e.since, e.case_id))


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
