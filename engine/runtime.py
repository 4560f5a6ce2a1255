"""RuntimeService: start instances, correlate messages and signals, read instance state."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import SignalEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import IntermediateCatchEvent, ReceiveTask
from SpiffWorkflow.bpmn.util import BpmnEvent
from SpiffWorkflow.camunda.specs.event_definitions import MessageEventDefinition
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import history
from .bpmn.pruning import completed_elements, completed_steps
from .errors import InvalidInput, NotFound
from .executor import Loaded, translate_errors
from .identity import DEFAULT_TIMEZONE, check_timezone
from .models import HumanTask, ProcessInstance

if TYPE_CHECKING:
    from . import ProcessEngine


def check_variables(variables: dict[str, Any] | None, what: str = "variables") -> dict[str, Any]:
    """Variables must be a JSON object whose names are identifiers not starting with '_'."""
    if variables is None:
        return {}
    if not isinstance(variables, dict):
        raise InvalidInput(f"The {what} must be a JSON object of name: value pairs", {what: "not an object"})
    errors = {name: "must be a name of Latin letters, digits and '_' not starting with '_'"
              for name in variables if not (isinstance(name, str) and name.isidentifier() and not name.startswith("_"))}
    if errors:
        raise InvalidInput(f"Invalid {what} name(s): {', '.join(map(str, errors))}", errors)
    try:
        json.dumps(variables)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"The {what} must be plain JSON values: {exc}", {what: "not JSON"}) from exc
    return dict(variables)


class RuntimeService:
    """Starts and moves process instances."""

    def __init__(self, engine: ProcessEngine):
        self._engine = engine

    def start(self, process_key: str, variables: dict[str, Any] | None = None, business_key: str | None = None,
              version: int | None = None, started_by: str | None = None, timezone: str | None = None,
              session: Session | None = None) -> int:
        """Start an instance of the latest (or given) version; returns the instance id.

        With `session`, the start joins the caller's transaction (e.g. with the case records it belongs to).
        """
        variables = check_variables(variables)
        definition = self._engine.repository.definition(process_key, version)
        if timezone is None and started_by:
            timezone = self._engine.identity.get_user(started_by).timezone
        tz = check_timezone(timezone or DEFAULT_TIMEZONE)
        executor = self._engine.executor
        with executor.clock_in_force(), self._engine.db.session(join=session) as session:
            now = self._engine.clock.now()
            with translate_errors():
                workflow = executor.new_workflow(definition.id, tz)
                for task in workflow.get_tasks(state=TaskState.READY):
                    task.data.update(variables)
            row = ProcessInstance(definition_id=definition.id, process_key=definition.key, business_key=business_key,
                                  status="running", state="", revision=0, timezone=tz, started_at=now,
                                  started_by=started_by)
            session.add(row)
            session.flush()
            self._engine.history.record(session, history.INSTANCE_STARTED, row.id, actor=started_by,
                                        data={"key": definition.key, "version": definition.version,
                                              "business_key": business_key, "variables": variables})
            loaded = Loaded(session=session, row=row, workflow=workflow, revision=0, actor=started_by)
            executor.advance(loaded)
            executor.save(loaded)
            return row.id

    def correlate_message(self, name: str, payload: Any = None, business_key: str | None = None,
                          instance_id: int | None = None, actor: str | None = None,
                          session: Session | None = None) -> list[int]:
        """Deliver a message to the instances waiting for it (one, by id or business key, or all)."""
        targets = self._waiting(f"message:{name}", business_key, instance_id)
        if not targets:
            raise NotFound(self._nobody_waits("message", name, business_key, instance_id))
        event = BpmnEvent(MessageEventDefinition(name), payload={"payload": payload, "result_var": None})
        return self._deliver(targets, event, history.MESSAGE_RECEIVED, name, payload, actor, session)

    def send_signal(self, name: str, payload: dict[str, Any] | None = None, business_key: str | None = None,
                    instance_id: int | None = None, actor: str | None = None,
                    session: Session | None = None) -> list[int]:
        """Broadcast a signal; its payload's variables are set on the catching event. Returns receivers."""
        payload = check_variables(payload, "payload")
        targets = self._waiting(f"signal:{name}", business_key, instance_id)
        if instance_id is not None and not targets:
            raise NotFound(self._nobody_waits("signal", name, business_key, instance_id))
        event = BpmnEvent(SignalEventDefinition(name), payload=payload)
        return self._deliver(targets, event, history.SIGNAL_RECEIVED, name, payload, actor, session)

    def _deliver(self, targets: list[int], event: BpmnEvent, event_type: str, name: str, payload: Any,
                 actor: str | None, session: Session | None = None) -> list[int]:
        executor = self._engine.executor
        for target in targets:
            with executor.operation(target, actor, what=f"{event_type} {name}", session=session) as loaded:
                loaded.workflow.catch(event)
                executor.advance(loaded)
                self._engine.history.record(loaded.session, event_type, target, actor=actor,
                                            data={"name": name, "payload": payload})
        return targets

    def _waiting(self, token: str, business_key: str | None, instance_id: int | None) -> list[int]:
        with self._engine.db.session() as session:  # committed state: who waits for what
            query = select(ProcessInstance.id).where(ProcessInstance.status == "running",
                                                     ProcessInstance.waiting_for.like(f"%|{token}|%"))
            if instance_id is not None:
                query = query.where(ProcessInstance.id == instance_id)
            if business_key is not None:
                query = query.where(ProcessInstance.business_key == business_key)
            return list(session.scalars(query.order_by(ProcessInstance.id)))

    def _nobody_waits(self, kind: str, name: str, business_key: str | None, instance_id: int | None) -> str:
        scope = (f"instance {instance_id}" if instance_id is not None
                 else f"business key '{business_key}'" if business_key else "any running instance")
        return f"No {kind} '{name}' is awaited by {scope}"

    # -- queries ----------------------------------------------------------------------------------------------

    def instance(self, instance_id: int) -> dict[str, Any]:
        """An instance's summary, variables and open tasks."""
        with self._engine.db.session() as session:
            row = session.get(ProcessInstance, instance_id)
            if row is None:
                raise NotFound(f"No process instance {instance_id}")
            loaded = self._engine.executor.load(session, row)
            workflow = loaded.workflow
            source = workflow.last_task or workflow.task_tree
            open_tasks = session.scalars(select(HumanTask.id).where(HumanTask.instance_id == instance_id,
                                                                    HumanTask.status == "open")).all()
            return {
                "id": row.id,
                "process_key": row.process_key,
                "version": row.definition.version,
                "business_key": row.business_key,
                "status": row.status,
                "timezone": row.timezone,
                "started_at": row.started_at.isoformat(),
                "ended_at": row.ended_at.isoformat() if row.ended_at else None,
                "next_wakeup": row.next_wakeup.isoformat() if row.next_wakeup else None,
                "waiting_for": [t for t in (row.waiting_for or "").split("|") if t],
                "revision": row.revision,
                "variables": dict(source.data) if source is not None else {},
                "open_tasks": list(open_tasks),
                "completed_elements": sorted(completed_elements(workflow)),
            }

    def activity_states(self, instance_id: int) -> dict[str, Any]:
        """Where an instance stands, like Camunda's activity instance tree flattened: `file` is the diagram file
        of the instance's process; `active` holds the
        (diagram file, element id) of ready user tasks, awaited events and every (sub)process or call activity
        around them; `completed` the steps done at least once (also those pruned from the stored state)."""
        with self._engine.db.session() as session:
            row = session.get(ProcessInstance, instance_id)
            if row is None:
                raise NotFound(f"No process instance {instance_id}")
            workflow = self._engine.executor.load(session, row).workflow
        active: set[tuple[str | None, str]] = set()
        for task in workflow.get_tasks(state=TaskState.READY | TaskState.WAITING):
            spec = task.task_spec
            awaited = task.state == TaskState.WAITING and isinstance(spec, (IntermediateCatchEvent, ReceiveTask))
            ready = task.state == TaskState.READY and getattr(spec, "manual", False)
            if not (awaited or ready):
                continue
            current = task
            while current is not None:  # the task itself and every subprocess or call activity around it
                if getattr(current.task_spec, "bpmn_id", None):
                    active.add((getattr(current.workflow.spec, "file", None), current.task_spec.bpmn_id))
                parent = current.workflow.parent_task_id
                current = workflow.get_task_from_id(parent) if parent is not None else None
        return {"file": getattr(workflow.spec, "file", None), "active": active,
                "completed": completed_steps(workflow)}

    def instances(self, process_key: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        with self._engine.db.session() as session:
            query = select(ProcessInstance)
            if process_key:
                query = query.where(ProcessInstance.process_key == process_key)
            if status:
                query = query.where(ProcessInstance.status == status)
            return [{"id": r.id, "process_key": r.process_key, "version": r.definition.version,
                     "business_key": r.business_key, "status": r.status, "started_at": r.started_at.isoformat(),
                     "next_wakeup": r.next_wakeup.isoformat() if r.next_wakeup else None}
                    for r in session.scalars(query.order_by(ProcessInstance.id)).unique()]
