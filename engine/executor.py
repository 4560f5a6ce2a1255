"""Loads an instance, lets SpiffWorkflow advance it, and saves state, human tasks, timers and history at once.

This is the one place where instance state is read and written. Every change goes through `operation()`:
one transaction, the engine clock in force, and an optimistic lock on the instance's `revision`.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from SpiffWorkflow.bpmn.specs.event_definitions.timer import CycleTimerEventDefinition, TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import MultiInstanceTask
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException, WorkflowException
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import bindparam, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.util import identity_key

from . import history
from .bpmn.pruning import prune
from .bpmn.script_engine import CURRENT_CLOCK, KuratorScriptEngine
from .bpmn.serializer import StateSerializer
from .bpmn.specs import KuratorEventSubprocess
from .bpmn.validation import resolve_role
from .calendar import CalendarCoverageError
from .clock import parse_instant
from .db import (
    CONCURRENT_CHANGE,
    CURRENT_SESSION,
    Database,
    is_concurrent_change,
    note_row_locked,
    row_locked,
)
from .errors import Conflict, ExecutionError, KuratorError, NotFound
from .instance_cache import InstanceCache, stamp_of
from .models import Agency, HumanTask, ProcessInstance
from .sandbox import Sandbox, SandboxError
from .task_query import candidates_token

if TYPE_CHECKING:
    from . import ProcessEngine

log = logging.getLogger(__name__)

# Tests set this: a kept live workflow taken for a change is first compared with the stored state, which it must
# serialize to exactly (a write of the state that bypassed the executor would show up here).
CHECK_KEPT_WORKFLOWS = os.environ.get("KURATOR_INSTANCE_CACHE_CHECK") == "1"

ADMIN_ROLE = "admin"
# Camunda attributes that are plain text unless written as ${...}; dueDate and followUpDate are expressions.
LITERAL_ATTRIBUTES = ("assignee", "candidateGroups", "candidateUsers")


@dataclass
class Loaded:
    """An instance row and its live workflow, inside one transaction."""

    session: Session
    row: ProcessInstance
    workflow: BpmnWorkflow
    revision: int
    actor: str | None = None
    completed_task_ids: set[str] = field(default_factory=set)
    # the timers as loaded (`timer_marks`), to find those that fire in this change; empty for a new instance
    timers: dict[UUID, TimerMark] = field(default_factory=dict)
    timers_of: BpmnWorkflow | None = None  # the workflow `timers` was taken from
    # the instance's open inbox rows, when the caller has read them in this transaction (else `save` reads them)
    open_rows: list[Any] | None = None


@dataclass
class SavePlan:
    """What `Executor.save` writes for one instance (`plan_save`), before anything is written."""

    loaded: Loaded
    now: datetime
    values: dict[str, Any]  # the instance row's new columns
    fired: list[str]  # element ids of the timers that fired
    completed: bool
    status_before: str
    cancelled: list[Any] = field(default_factory=list)  # open inbox rows whose task is no longer ready
    opened: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (task id, inbox row columns)
    municipality_id: int | None = None
    municipality_known: bool = False
    new_rows: list[dict[str, Any]] = field(default_factory=list)  # the inbox rows to write (`write_task_rows`)


class Executor:
    """The engine's single path for changing instance state."""

    def __init__(self, engine: ProcessEngine):
        self._engine = engine
        self.serializer = StateSerializer()
        # the sandbox keeps only its limits and guarded builtins (costly to build): one for every script engine
        self.sandbox = Sandbox()
        self.instances = InstanceCache()  # live workflows of the instances changed last (`instance_cache`)

    # -- script engines ---------------------------------------------------------------------------------------

    def script_engine(self, tz: str) -> KuratorScriptEngine:
        functions = {**self._engine.calendar.functions(tz), **self._engine.identity.functions()}
        return KuratorScriptEngine(functions, tz=tz, sandbox=self.sandbox, providers=self._engine.function_providers,
                                   now=self._engine.clock.now)

    @contextmanager
    def clock_in_force(self) -> Iterator[None]:
        token = CURRENT_CLOCK.set(self._engine.clock)
        try:
            yield
        finally:
            CURRENT_CLOCK.reset(token)

    # -- loading and saving -----------------------------------------------------------------------------------

    def new_workflow(self, definition_id: int, tz: str) -> BpmnWorkflow:
        spec_json = self._engine.repository.spec_json(definition_id)
        return self.serializer.new_workflow(spec_json, self.script_engine(tz))

    def load(self, session: Session, row: ProcessInstance, actor: str | None = None, for_change: bool = False
             ) -> Loaded:
        """The instance's state restored against its version's spec objects, which are shared and read-only
        (parsed once per process, see `bpmn.serializer.SpecCache`).

        `for_change`: the caller will change and save it, so the live workflow kept from the instance's last change
        in this process is taken when the row still matches it (`instance_cache`); the stored state is then not
        even read."""
        workflow = self.instances.take(row.id, stamp_of(row)) if for_change else None
        if workflow is not None and CHECK_KEPT_WORKFLOWS and self.serializer.state_to_json(workflow) != row.state:
            raise AssertionError(f"instance {row.id}: the kept workflow differs from the stored state")
        if workflow is None:
            state = _state_of(session, row)
            workflow = self.serializer.restore(state, self._engine.repository.spec_json(row.definition_id))
            workflow.script_engine = self.script_engine(row.timezone)
        return Loaded(session=session, row=row, workflow=workflow, revision=row.revision, actor=actor,
                      timers=timer_marks(workflow), timers_of=workflow)

    @contextmanager
    def operation(self, instance_id: int, actor: str | None = None, what: str = "change",
                  session: Session | None = None) -> Iterator[Loaded]:
        """Load an instance for a change and save everything in one transaction, or nothing at all
        (the caller's transaction when `session` is given)."""
        try:
            with self.clock_in_force(), self._engine.db.session(join=session) as session:
                with self.change(session, instance_id, actor) as loaded:
                    yield loaded
        except Conflict as exc:
            self.record_conflict(instance_id, actor, what, exc)
            raise

    @contextmanager
    def change(self, session: Session, instance_id: int, actor: str | None = None,
               open_rows: list[Any] | None = None) -> Iterator[Loaded]:
        """`operation` inside the caller's transaction, with the clock already in force, and leaving a `Conflict`
        to the caller (who records it with `record_conflict` once its transaction is rolled back). An instance
        row already in the session (read with the caller's other rows) is not read again, nor are its open inbox
        rows when the caller gives them (`open_rows`, read in this transaction)."""
        row = session.identity_map.get(identity_key(ProcessInstance, instance_id))
        if self._engine.db.is_postgresql and not row_locked(session, ProcessInstance, instance_id):
            # the row locked for the change (read again if the session had it): another change of the instance
            # (the scheduler's sweep, a person's completion) is waited for, and this one starts from what it left
            row = session.get(ProcessInstance, instance_id, with_for_update={"key_share": True, "of": ProcessInstance},
                              populate_existing=True)
            if row is not None:
                note_row_locked(session, ProcessInstance, instance_id)
        elif row is None:
            row = session.get(ProcessInstance, instance_id)
        if row is None:
            raise NotFound(f"No process instance {instance_id}")
        loaded = self.load(session, row, actor, for_change=True)
        loaded.open_rows = open_rows
        token = CURRENT_SESSION.set(session)
        db = self._engine.db
        try:
            # the change's writes (its task row, the state, the inbox rows, its events in one INSERT) go out
            # together at the end, in one round trip on PostgreSQL (`Database.send_queued`)
            with db.write_queue(session):
                with self._engine.history.deferred(session):
                    with translate_errors():
                        yield loaded
                    self.save(loaded)
                with translate_errors():
                    db.send_queued(session)
        finally:
            CURRENT_SESSION.reset(token)

    @staticmethod
    def instance_row(session: Session, columns: Any) -> ProcessInstance:
        """The instance's row in the session, from its columns read with other rows (`instance_id`, `revision`,
        `definition_id`, `timezone`, `instance_status`, `process_key`, `instance_municipality_id`,
        `instance_business_key`) instead of a SELECT of its own; the one the session holds already, if any. Its
        other columns load when first read. A row the session read earlier in the transaction, before a change
        that has committed since, is expired, so that what the caller reads of it is the change's result."""
        held = session.identity_map.get(identity_key(ProcessInstance, columns.instance_id))
        if held is not None:
            if held.revision != columns.revision:
                session.expire(held)
            return held
        row = ProcessInstance(id=columns.instance_id, revision=columns.revision, definition_id=columns.definition_id,
                              timezone=columns.timezone, status=columns.instance_status,
                              process_key=columns.process_key, municipality_id=columns.instance_municipality_id,
                              business_key=columns.instance_business_key)
        make_transient_to_detached(row)
        session.add(row)
        return row

    def record_conflict(self, instance_id: int, actor: str | None, what: str, exc: Conflict) -> None:
        """The `conflict_rejected` event of a refused change, in a transaction of its own."""
        self._engine.history.record_now(history.CONFLICT_REJECTED, instance_id, actor=actor,
                                        data={"attempt": what, "message": exc.message})

    def advance(self, loaded: Loaded) -> None:
        """Run every engine step that is ready (scripts, gateways, events, timers that are due)."""
        with translate_errors():
            loaded.workflow.do_engine_steps()
            while interrupt_for_event_subprocesses(loaded.workflow):
                loaded.workflow.do_engine_steps()

    def fire_due_timers(self, loaded: Loaded) -> list[str]:
        """Fire the timers that are due on the engine clock; returns the element ids of those that fired (their
        history is written by `save`, as for timers that fire in any other change)."""
        workflow = loaded.workflow
        before = timer_marks(workflow)
        with translate_errors():
            workflow.refresh_timers()
            workflow.do_engine_steps()
            while interrupt_for_event_subprocesses(workflow):
                workflow.do_engine_steps()
        return fired_timers(workflow, before)

    def save(self, loaded: Loaded) -> None:
        """Write state, human tasks, next wake-up and history; the revision check comes first."""
        plan = self.plan_save(loaded)
        instance_id = loaded.row.id

        def one_row(count: int) -> None:
            if count != 1:
                raise Conflict(f"Process instance {instance_id} was changed by someone else at the same time; "
                               f"reload and try again")

        self._engine.db.queue(loaded.session, _instance_update(tuple(plan.values)),
                              {"iw_id": instance_id, "iw_revision": loaded.revision,
                               **{f"iv_{name}": value for name, value in plan.values.items()}}, check=one_row)
        self.keep_after_commit(plan)
        self.apply_save(plan)

    def keep_after_commit(self, plan: SavePlan) -> None:
        """Keep the saved live workflow for the instance's next change once this transaction commits (not from
        a savepoint, which may still be rolled back alone)."""
        loaded = plan.loaded
        if loaded.session.in_nested_transaction() or self.instances.size <= 0:
            return
        instance_id, workflow = loaded.row.id, loaded.workflow
        stamp = stamp_of(loaded.row, plan.values["revision"])
        self._engine.db.after_commit(loaded.session, lambda: self.instances.keep(instance_id, stamp, workflow))

    def save_many(self, session: Session, plans: list[SavePlan]) -> None:
        """`save` for several instances at once (the timer sweep): one statement writes every state, each with
        its revision check; a `Conflict` when any of them changed meanwhile (the caller then saves one by one)."""
        if not plans:
            return
        table = ProcessInstance.__table__
        statement = (update(table).where(table.c.id == bindparam("w_id"), table.c.revision == bindparam("w_revision"))
                     .values({name: bindparam(f"v_{name}") for name in plans[0].values}))
        with session.no_autoflush:
            result = session.execute(statement, [
                {"w_id": plan.loaded.row.id, "w_revision": plan.loaded.revision,
                 **{f"v_{name}": value for name, value in plan.values.items()}} for plan in plans])
        if result.rowcount != len(plans):
            raise Conflict(f"{len(plans) - result.rowcount} of {len(plans)} process instances were changed by "
                           f"someone else at the same time")
        for plan in plans:
            self.apply_save(plan, write_rows=False)
        self.write_task_rows(session, [row for plan in plans for row in plan.new_rows])
        for plan in plans:
            plan.new_rows.clear()

    def plan_save(self, loaded: Loaded, task_rows: list[HumanTask] | None = None,
                  municipality_known: bool = False, ready: dict[str, Any] | None = None) -> SavePlan:
        """What saving an instance writes, worked out before anything is written: the instance row's columns,
        the timers that fired, the inbox rows to cancel and to open (their Camunda attributes evaluated).

        `task_rows` are the instance's open inbox rows, when the caller read them for several instances at once
        (with `ready`, the ready user tasks it found); `municipality_known` says that `loaded.row` was read in this
        transaction and its municipality can be copied to new rows as it is (else each INSERT reads it)."""
        session, row, workflow = loaded.session, loaded.row, loaded.workflow
        now = self._engine.clock.now()
        # every timer that fired in this change, whatever moved the instance: the scheduler's sweep, or a
        # completion, message or start whose engine steps reached (or refreshed) a timer already due. A workflow
        # put in place of the loaded one (a migration revert restores a saved state) fired nothing.
        fired = fired_timers(workflow, loaded.timers) if loaded.timers_of in (None, workflow) else []
        prune(workflow)
        # not `workflow.is_completed()`: SpiffWorkflow's walk stops 1,000 tasks deep and would call a long,
        # unpruned instance (saved before pruning existed) completed
        completed = not any(not t.has_state(TaskState.FINISHED_MASK) for t in workflow.tasks.values())
        next_wakeup, waiting_for = (None, None) if completed else pending_events(workflow)
        values = {"state": self.serializer.state_to_json(workflow), "revision": loaded.revision + 1,
                  "next_wakeup": next_wakeup, "waiting_for": waiting_for,
                  "status": "completed" if completed else "running", "error": None,
                  "ended_at": now if completed else None}
        if ready is None:
            ready = self.ready_user_tasks(workflow)
        if task_rows is None:
            task_rows = self.task_rows_of(session, [row.id]) if loaded.open_rows is None else loaded.open_rows
        open_rows = [r for r in task_rows if r.instance_id == row.id and r.status == "open"]
        plan = SavePlan(loaded, now, values, fired, completed, row.status,
                        cancelled=[r for r in open_rows if r.id not in ready])
        open_ids = {r.id for r in open_rows}
        roles = self._engine.role_titles()
        for task_id, task in ready.items():
            if task_id not in open_ids:
                plan.opened.append((task_id, self.human_task_values(loaded, task, roles)))
        plan.municipality_id = row.municipality_id if municipality_known else None
        plan.municipality_known = municipality_known
        return plan

    @staticmethod
    def ready_user_tasks(workflow: BpmnWorkflow) -> dict[str, Any]:
        return {str(t.id): t for t in workflow.get_tasks(state=TaskState.READY, manual=True)}

    @staticmethod
    def task_rows_of(session: Session, instance_ids: list[int]) -> list[HumanTask]:
        """One read: the open inbox rows of the instances. History events added so far are not flushed for it;
        task rows added earlier in the transaction (not yet written) are."""
        where = HumanTask.instance_id == instance_ids[0] if len(instance_ids) == 1 else \
            HumanTask.instance_id.in_(instance_ids)
        query = select(HumanTask).where(where, HumanTask.status == "open")
        if any(isinstance(pending, HumanTask) for pending in session.new):
            return list(session.scalars(query))
        with session.no_autoflush:
            return list(session.scalars(query))

    def apply_save(self, plan: SavePlan, write_rows: bool = True) -> None:
        """After the instance row is written: history events, inbox rows (written here, or by the caller with
        those of other instances when not `write_rows`), and the row expired for re-reading."""
        loaded, now = plan.loaded, plan.now
        session, row, record = loaded.session, loaded.row, self._engine.history.record
        for element in plan.fired:
            record(session, history.TIMER_FIRED, row.id, actor=loaded.actor, data={"element": element})
        if plan.cancelled:
            ids = [task_row.id for task_row in plan.cancelled]
            self._engine.db.queue(session, _CANCEL_TASKS, {"c_ids": ids, "c_at": now}, touches=task_keys(ids))
            expire_task_rows(session, ids)
        for task_row in plan.cancelled:
            record(session, history.TASK_CANCELLED, row.id, task_id=task_row.id,
                   data={"element": task_row.element_id, "name": task_row.name})
        # the instance's municipality: copied when known, else taken by the INSERT itself (`write_task_rows`)
        municipality = {"municipality_id": plan.municipality_id} if plan.municipality_known else {}
        created = []
        for task_id, values in plan.opened:
            agency_missing = values.pop("agency_missing")
            # a task ready again (e.g. after a migration back) has its row already: the INSERT updates it
            plan.new_rows.append({"id": task_id, "instance_id": row.id, "created_at": now, "status": "open",
                                  **municipality, "completed_at": None, "completed_by": None, "data": None,
                                  **values})
            event = {"element": values["element_id"], "name": values["name"],
                     "candidate_roles": values["candidate_roles"], "assignee": values["assignee"],
                     "agency_id": values["agency_id"], "due": values["due"].isoformat() if values["due"] else None}
            if agency_missing:
                event["agency_missing"] = True
            created.append((task_id, event))
        if write_rows:  # the rows before their events: a listener of the event may read them
            self.write_task_rows(session, plan.new_rows)
            plan.new_rows.clear()
        for task_id, event in created:
            record(session, history.TASK_CREATED, row.id, task_id=task_id, data=event)
        if plan.completed and plan.status_before != "completed":
            record(session, history.INSTANCE_COMPLETED, row.id, actor=loaded.actor)
        session.expire(row)

    def write_task_rows(self, session: Session, rows: list[dict[str, Any]]) -> None:
        """Insert new inbox rows in one statement (a row that exists is brought up to date), and clear `rows`.
        A row without `municipality_id` takes its instance's, in the statement itself."""
        if not rows:
            return
        ids = [row["id"] for row in rows]
        db = self._engine.db
        with session.no_autoflush:
            known = [row for row in rows if "municipality_id" in row]
            if known:
                db.queue(session, *db.insert_rows(HumanTask.__table__, known, key=("id",), prefix="t"),
                         touches=task_keys([row["id"] for row in known]))
            unknown = [row for row in rows if "municipality_id" not in row]
            if unknown:  # the instance's municipality, read by the INSERT itself
                db.queue(session, *db.insert_rows(HumanTask.__table__, unknown, key=("id",), prefix="u",
                                                  derived={"municipality_id": ("instance_id", _municipality_of)}),
                         touches=task_keys([row["id"] for row in unknown]))
        expire_task_rows(session, ids)

    # -- human tasks ------------------------------------------------------------------------------------------

    def human_task_values(self, loaded: Loaded, task, roles: dict[str, str]) -> dict[str, Any]:
        """Evaluate a ready task's Camunda attributes into the columns of its inbox row."""
        spec = task.task_spec
        attrs: dict[str, str] = getattr(spec, "camunda", {}) or {}
        engine = loaded.workflow.script_engine
        element = spec.bpmn_id or spec.name

        def evaluate(name: str) -> Any:
            expression = attrs.get(name)
            if not expression:
                return None
            if name in LITERAL_ATTRIBUTES and "${" not in expression and "#{" not in expression:
                return expression
            try:
                return engine.evaluate_value(expression, task.data)
            except (SandboxError, CalendarCoverageError, ValueError, TypeError) as exc:
                raise ExecutionError(f"camunda:{name} '{expression}' could not be evaluated: {exc}",
                                     element) from exc

        candidate_roles = _as_list(evaluate("candidateGroups")) if "candidateGroups" in attrs else []
        if not candidate_roles and spec.lane:
            candidate_roles = [resolve_role(spec.lane, roles) or spec.lane.strip()]
        agency = _agency(loaded.session, evaluate("agency"), element) if "agency" in attrs else None
        agency_missing = "agency" in attrs and agency is None
        if agency_missing and attrs.get("agencyFallbackGroups"):
            candidate_roles = _as_list(attrs["agencyFallbackGroups"])
        candidate_users = _as_list(evaluate("candidateUsers"))
        assignee = evaluate("assignee")
        assignee = str(assignee).strip() if assignee not in (None, "") else None
        if not candidate_roles and not candidate_users and not assignee:
            candidate_roles = [ADMIN_ROLE]
        priority = evaluate("priority")
        form = getattr(spec, "form", None)
        name = spec.bpmn_name or element
        if agency is not None and _in_multi_instance(task):
            name = f"{name} — {agency.name}"  # one row per agency: say whose it is
        return {
            "candidates": candidates_token(candidate_roles, candidate_users),
            "agency_id": agency.id if agency is not None else None,
            "agency_missing": agency_missing,
            "process_key": loaded.row.process_key,
            "element_id": element,
            "name": name[:300],
            "lane": spec.lane,
            "candidate_roles": candidate_roles,
            "candidate_users": candidate_users,
            "assignee": assignee,
            "form_key": (form.key or None) if form is not None else None,
            "due": _as_instant(evaluate("dueDate"), element, "dueDate"),
            "follow_up": _as_instant(evaluate("followUpDate"), element, "followUpDate"),
            "priority": int(priority) if priority not in (None, "") else None,
            "overdue": False,
        }


def _state_of(session: Session | None, row: ProcessInstance) -> str:
    """The stored state of an instance row whose other columns were read before: read with its revision and
    version, which must still be the row's (another transaction may have committed a change in between, and a
    state restored against another version's spec would not even load)."""
    if "state" not in sa_inspect(row).unloaded or session is None:
        return row.state
    state, revision, definition_id = session.execute(
        select(ProcessInstance.state, ProcessInstance.revision, ProcessInstance.definition_id)
        .where(ProcessInstance.id == row.id)).one()
    if (revision, definition_id) != (row.revision, row.definition_id):
        raise Conflict(f"Process instance {row.id} was changed by someone else at the same time; reload and try "
                       f"again")
    return state


def _municipality_of(instance_id: Any):
    """The municipality of an instance (an id or the parameter that gives it), read by the statement using it."""
    return select(ProcessInstance.municipality_id).where(ProcessInstance.id == instance_id).scalar_subquery()


_CANCEL_TASKS = (update(HumanTask.__table__)
                 .where(HumanTask.id.in_(bindparam("c_ids", expanding=True)), HumanTask.status == "open")
                 .values(status="cancelled", completed_at=bindparam("c_at")))


@functools.cache
def _instance_update(names: tuple[str, ...]):
    """The UPDATE of an instance row's columns `names` under its revision check, built once per set of columns."""
    table = ProcessInstance.__table__
    return (update(table).where(table.c.id == bindparam("iw_id"), table.c.revision == bindparam("iw_revision"))
            .values({name: bindparam(f"iv_{name}", type_=table.c[name].type) for name in names}))


def task_keys(task_ids: list[str]) -> list[tuple[str, str]]:
    """The keys of inbox rows a queued write changes (`Database.queue`'s `touches`)."""
    return [("human_task", task_id) for task_id in task_ids]


def expire_task_rows(session: Session, task_ids: list[str]) -> None:
    """Inbox rows written with a statement of their own: the session's objects of them (if any) read them again."""
    for task_id in task_ids:
        held = session.identity_map.get(identity_key(HumanTask, task_id))
        if held is not None:
            session.expire(held)


def _in_multi_instance(task) -> bool:
    """Whether the task runs inside a multi-instance body (directly, or in an embedded subprocess of one)."""
    current = task
    while current is not None:
        if isinstance(getattr(current.parent, "task_spec", None), MultiInstanceTask):
            return True
        parent_id = current.workflow.parent_task_id
        current = current.workflow.top_workflow.get_task_from_id(parent_id) if parent_id is not None else None
    return False


def _agency(session: Session, value: Any, element: str) -> Agency | None:
    """The agency an `agency` property names: an id, a numeric string or an object with an `id`."""
    if isinstance(value, dict):
        value = value.get("id")
    if value in (None, "", 0):
        return None
    try:
        agency_id = int(value)
    except (TypeError, ValueError) as exc:
        raise ExecutionError(f"The agency property gave '{value}', which is not an agency id", element) from exc
    # agencies are not among the tables the change's queued writes touch: they stay queued, to go out together
    agency = session.get(Agency, agency_id, execution_options={Database.READS_NO_QUEUED_TABLE: True}) \
        if 0 < agency_id < 2**31 else None
    if agency is None:
        raise ExecutionError(f"The agency property names agency {agency_id}, which does not exist", element)
    return agency


def pending_events(workflow: BpmnWorkflow) -> tuple[datetime | None, str | None]:
    """The next timer wake-up, and the messages and signals the instance waits for ('|kind:name|…')."""
    wakeup: datetime | None = None
    names: set[str] = set()
    for event in workflow.waiting_events():
        kind = event.event_type
        if "Timer" in kind or "TimeDate" in kind:
            value = event.value
            if isinstance(value, dict):
                value = value.get("next")
            if value:
                at = parse_instant(value)
                wakeup = at if wakeup is None or at < wakeup else wakeup
        elif event.name:
            names.add(f"{_event_kind(kind)}:{event.name}")
    names.update(_event_subprocess_triggers(workflow))
    return wakeup, ("|" + "|".join(sorted(names)) + "|") if names else None


def reconnect_event_subprocesses(workflow: BpmnWorkflow) -> None:
    """Nothing to do any more; kept for callers.

    SpiffWorkflow connects a triggered event subprocess to its process's start and end on the spec, and this
    re-created those links after every load. Specs are now shared by all instances of a version and never
    changed: `bpmn.specs.KuratorStartTask` starts an event subprocess without linking it, and
    `KuratorEventSubprocess` needs no links.
    """


def interrupt_for_event_subprocesses(workflow: BpmnWorkflow) -> bool:
    """Cancel the rest of a (sub)process when an interrupting event subprocess has started in it.

    SpiffWorkflow 3.2 runs every event subprocess beside the main flow; BPMN says an interrupting one
    (the default) ends the enclosing flow. Returns whether anything was cancelled.
    """
    changed = False
    for task in workflow.get_tasks(spec_class=KuratorEventSubprocess):
        if not task.task_spec.interrupting or task.internal_data.get("interrupted"):
            continue
        if not task.has_state(TaskState.STARTED | TaskState.READY | TaskState.COMPLETED | TaskState.WAITING):
            continue
        task.internal_data["interrupted"] = True
        victims = []
        for sibling in task.parent.children if task.parent is not None else []:
            if sibling is not task:
                victims.extend(t for t in sibling if not t.has_state(TaskState.FINISHED_MASK))
        for victim in sorted(victims, key=lambda t: t.depth, reverse=True):
            if not victim.has_state(TaskState.FINISHED_MASK):
                victim.cancel()
        changed = changed or bool(victims)
    return changed


def _event_kind(type_name: str) -> str:
    return "message" if "Message" in type_name else "signal" if "Signal" in type_name else type_name.lower()


def _event_subprocess_triggers(workflow: BpmnWorkflow) -> set[str]:
    """Signals and messages that start event subprocesses (SpiffWorkflow does not list them as waiting)."""
    tokens: set[str] = set()
    for wf in [workflow, *workflow.get_active_subprocesses()]:
        for name in getattr(wf.spec.start, "trigger_specs", []):
            sp_spec = workflow.subprocess_specs.get(name)
            for start_event in getattr(sp_spec, "bpmn_start_events", []) if sp_spec is not None else []:
                definition = start_event.event_definition
                if getattr(definition, "name", None):
                    tokens.add(f"{_event_kind(type(definition).__name__)}:{definition.name}")
    return tokens


def _is_timer(task) -> bool:
    return isinstance(getattr(task.task_spec, "event_definition", None), TimerEventDefinition)


@dataclass(frozen=True)
class TimerMark:
    """What a timer event had done when an instance was loaded: finished (fired, or cancelled), and for a cycle
    timer the ids of the paths its cycles started."""

    finished: bool
    cycle_children: frozenset = frozenset()


def _timer_tasks(workflow: BpmnWorkflow) -> Iterator:
    for wf in [workflow, *workflow.subprocesses.values()]:
        yield from (task for task in wf.tasks.values() if _is_timer(task))


def timer_marks(workflow: BpmnWorkflow) -> dict[UUID, TimerMark]:
    """The timer events of an instance and its subprocesses, to compare with later (`fired_timers`)."""
    return {task.id: TimerMark(task.has_state(TaskState.FINISHED_MASK),
                               frozenset(child.id for child in task.children)
                               if isinstance(task.task_spec.event_definition, CycleTimerEventDefinition)
                               else frozenset())
            for task in _timer_tasks(workflow)}


def fired_timers(workflow: BpmnWorkflow, before: dict[UUID, TimerMark]) -> list[str]:
    """Element ids of the timers that fired since `before`, once per firing: a timer event that completed (a
    cancelled one did not fire), and a cycle timer once per path a cycle started."""
    fired = []
    for task in _timer_tasks(workflow):
        mark = before.get(task.id)
        element = task.task_spec.bpmn_id or task.task_spec.name
        if isinstance(task.task_spec.event_definition, CycleTimerEventDefinition):
            outputs = max(1, len(task.task_spec.outputs))
            started = [c for c in task.children if mark is None or c.id not in mark.cycle_children]
            fired.extend([element] * (len(started) // outputs))
        elif task.state == TaskState.COMPLETED and (mark is None or not mark.finished):
            fired.append(element)
    return fired


def _as_list(value: Any) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, (list, tuple, set)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [str(value)]


def _as_instant(value: Any, element: str, name: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        return parse_instant(value) if isinstance(value, (str, datetime)) else None
    except ValueError as exc:
        raise ExecutionError(f"camunda:{name} gave '{value}', which is not a date and time", element) from exc


@contextmanager
def translate_errors() -> Iterator[None]:
    """SpiffWorkflow and sandbox failures become `ExecutionError`s that name the diagram element."""
    try:
        yield
    except KuratorError:
        raise
    except (WorkflowException, SpiffWorkflowException) as exc:
        spec = getattr(exc, "task_spec", None)
        element = getattr(spec, "bpmn_id", None) or getattr(spec, "name", None)
        raise ExecutionError(_message(exc), element) from exc
    except (SandboxError, CalendarCoverageError) as exc:
        raise ExecutionError(str(exc)) from exc
    except IntegrityError as exc:  # a unique key another transaction took first: a concurrent change, not bad data
        raise Conflict("The same record was saved by someone else at the same time; reload and try again") from exc
    except SQLAlchemyError as exc:  # e.g. a value too long for its column: no database text for the user
        if is_concurrent_change(exc):  # another transaction got in the way: nothing wrong with the step
            raise Conflict(CONCURRENT_CHANGE) from exc
        log.exception("database refused a step")
        raise ExecutionError("The data could not be saved: a value is too long or out of range; check the form "
                             "and try again") from exc
    except Exception as exc:  # a failure inside SpiffWorkflow on an odd diagram: refuse, never a traceback
        log.exception("unexpected engine failure")
        raise ExecutionError(f"The engine could not execute this step ({exc.__class__.__name__}: {exc}); "
                             f"the diagram may use a construct the engine does not support") from exc


def _message(exc: Exception) -> str:
    text = str(exc.args[0]) if exc.args else exc.__class__.__name__
    cause = exc.__cause__ or getattr(exc, "exception", None)
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text}: {cause}"
    return text


def task_uuid(task_id: str) -> UUID:
    return UUID(task_id)
