"""Workflow state serialization with the spec kept apart: a version's spec is stored once, not per instance.

A deployed version is immutable, so its spec is also parsed once per process: `SpecCache` keeps the spec objects
of the versions used last, and loading an instance restores only its own state (tasks, data) against them. The
objects are shared by every instance of the version, in every thread, so running an instance must never change
them: the serializer restores stored specs into the classes of `specs.py` that leave them as they are.

Instance state is written compactly (`STATE_FORMAT`): what SpiffWorkflow can work out again is left out - a
task's id (its key in the task map), its parent (the task whose children list it), default values (not
triggered, no internal data, no children) and data equal to its parent's. States written before (SpiffWorkflow's
own layout) are read as they are.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple
from uuid import UUID

from SpiffWorkflow.bpmn.serializer import DEFAULT_CONFIG, BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.process_spec import AdHocSubprocessSpecConverter
from SpiffWorkflow.bpmn.serializer.default.task_spec import BpmnStartTaskConverter, MultiInstanceTaskConverter
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter
from SpiffWorkflow.bpmn.serializer.migration.version_migration import MIGRATIONS
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent
from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import SubWorkflowTask
from SpiffWorkflow.bpmn.util.subworkflow import BpmnSubWorkflow
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.deep_merge import DeepMerge
from SpiffWorkflow.util.task import TaskState

from .specs import (
    KuratorAdHocSubprocessSpec,
    KuratorEventSubprocess,
    KuratorEventSubprocessConverter,
    KuratorParallelMultiInstanceTask,
    KuratorSequentialMultiInstanceTask,
    KuratorStartTask,
    KuratorUserTask,
    KuratorUserTaskConverter,
)

# Versions whose parsed specs stay in memory (least recently used first out).
SPEC_CACHE_SIZE = 256
# The layout of stored instance state: 1 = compact (see the module's docstring); absent = SpiffWorkflow's own.
STATE_FORMAT_KEY = "kurator_format"
STATE_FORMAT = 1


class VersionSpecs(NamedTuple):
    """The restored specs of one process version: its process and the processes it calls or embeds."""

    spec: Any
    subprocess_specs: Mapping[str, Any]


class SpecCache:
    """Restored specs by the stored JSON text of their version, bounded, shared by all threads.

    The key is the text itself: two databases (or a cleared test database) may reuse a definition id for other
    content, and the text is the object the repository caches anyway (its hash is computed once per string).
    Entries are built outside the lock; if two threads build the same version at once, the first one kept wins.
    """

    def __init__(self, size: int = SPEC_CACHE_SIZE):
        self.size = size
        self._entries: OrderedDict[str, VersionSpecs] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, spec_json: str, build: Callable[[str], VersionSpecs]) -> VersionSpecs:
        with self._lock:
            entry = self._entries.get(spec_json)
            if entry is not None:
                self._entries.move_to_end(spec_json)
                return entry
        built = build(spec_json)
        with self._lock:
            entry = self._entries.setdefault(spec_json, built)
            self._entries.move_to_end(spec_json)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return entry

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


SPEC_CACHE = SpecCache()


class KuratorWorkflowConverter(BpmnWorkflowConverter):
    """SpiffWorkflow's workflow converter, which can also restore a state against spec objects built before."""

    def from_dict(self, dct, specs: VersionSpecs | None = None):
        if specs is None:
            return super().from_dict(dct)
        # BpmnWorkflowConverter.from_dict, minus the restoring of the specs
        dct.pop("spec", None)
        dct.pop("subprocess_specs", None)
        workflow = self.target_class(specs.spec, dict(specs.subprocess_specs), deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


_CONFIG = dict(CAMUNDA_CONFIG)
_CONFIG.pop(next(cls for cls in CAMUNDA_CONFIG if cls.__name__ == "UserTask"), None)
_CONFIG[KuratorUserTask] = KuratorUserTaskConverter
_CONFIG[KuratorEventSubprocess] = KuratorEventSubprocessConverter
_CONFIG[BpmnWorkflow] = KuratorWorkflowConverter

# Stored specs are restored into these classes, which do what SpiffWorkflow's do without writing to the spec.
# They keep SpiffWorkflow's type names, so a stored spec reads the same and serializes back to the same JSON.
_SPEC_PRESERVING = (
    (KuratorStartTask, BpmnStartTaskConverter, "BpmnStartTask"),
    (KuratorParallelMultiInstanceTask, MultiInstanceTaskConverter, "ParallelMultiInstanceTask"),
    (KuratorSequentialMultiInstanceTask, MultiInstanceTaskConverter, "SequentialMultiInstanceTask"),
    (KuratorAdHocSubprocessSpec, AdHocSubprocessSpecConverter, "AdHocSubprocessSpec"),
)


class StateSerializer:
    """Converts specs and instance state to JSON text, and instance state plus spec back to a workflow."""

    def __init__(self) -> None:
        registry = BpmnWorkflowSerializer.configure(_CONFIG)
        # Plain BPMN message definitions (e.g. in collaborations) share their class name with Camunda's:
        # register them under a name of their own so that neither replaces the other.
        DEFAULT_CONFIG[MessageEventDefinition](MessageEventDefinition, registry, typename="BpmnMessageEventDefinition")
        for cls, converter, typename in _SPEC_PRESERVING:
            converter(cls, registry, typename=typename)
        self._serializer = BpmnWorkflowSerializer(registry)
        self._registry = self._serializer.registry

    def spec_to_json(self, spec, subprocess_specs: Mapping) -> str:
        """The stored form of a process version: its spec and the specs of what it calls."""
        self._registry._encoder_mode = True
        try:
            dct = {
                "spec": self._registry.convert(spec),
                "subprocess_specs": {name: self._registry.convert(sp) for name, sp in subprocess_specs.items()},
            }
            return json.dumps(dct, cls=self._serializer._encoder_cls, separators=(",", ":"))
        finally:
            self._registry._encoder_mode = False

    def state_to_json(self, workflow: BpmnWorkflow) -> str:
        """The instance state without its spec, in the compact layout (`STATE_FORMAT`)."""
        registry = self._registry
        registry._encoder_mode = True
        try:
            dct = _workflow_to_dict(registry, workflow)
            dct["subprocesses"] = {str(task_id): _workflow_to_dict(registry, sp, subprocess=True)
                                   for task_id, sp in workflow.subprocesses.items()}
            if workflow.bpmn_events:
                dct["bpmn_events"] = registry.convert(workflow.bpmn_events)
            dct[self._serializer.VERSION_KEY] = self._serializer.VERSION
            dct[STATE_FORMAT_KEY] = STATE_FORMAT
            return json.dumps(dct, cls=self._serializer._encoder_cls, separators=(",", ":"))
        finally:
            registry._encoder_mode = False

    def legacy_state_to_json(self, workflow: BpmnWorkflow) -> str:
        """The state in SpiffWorkflow's own layout, as the engine wrote it before `STATE_FORMAT` (to test that
        such states still load)."""
        self._registry._encoder_mode = True
        try:
            dct = self._serializer.to_dict(workflow)
            dct.pop("spec", None)
            dct.pop("subprocess_specs", None)
            dct[self._serializer.VERSION_KEY] = self._serializer.VERSION
            return json.dumps(dct, cls=self._serializer._encoder_cls, separators=(",", ":"))
        finally:
            self._registry._encoder_mode = False

    def specs(self, spec_json: str) -> VersionSpecs:
        """The shared, read-only spec objects of a version (restored on first use, then from `SPEC_CACHE`)."""
        return SPEC_CACHE.get(spec_json, self._build_specs)

    def _build_specs(self, spec_json: str) -> VersionSpecs:
        specs = json.loads(spec_json)
        spec = self._registry.restore(specs["spec"])
        subprocess_specs = {name: self._registry.restore(sp) for name, sp in specs["subprocess_specs"].items()}
        return VersionSpecs(spec, MappingProxyType(subprocess_specs))

    def restore(self, state_json: str, spec_json: str) -> BpmnWorkflow:
        """A live workflow from stored state and its version's spec."""
        dct: dict[str, Any] = json.loads(state_json)
        if dct.get(self._serializer.VERSION_KEY) in MIGRATIONS:
            # an older serialization: SpiffWorkflow's migrations rewrite the specs as well, so restore all of it
            specs = json.loads(spec_json)
            dct["spec"] = specs["spec"]
            dct["subprocess_specs"] = specs["subprocess_specs"]
            self._serializer.migrate(dct)
            return self._serializer.from_dict(dct)
        dct.pop(self._serializer.VERSION_KEY, None)
        if dct.pop(STATE_FORMAT_KEY, None) == STATE_FORMAT:
            return _workflow_from_dict(self._registry, dct, self.specs(spec_json))
        return self._registry.restore(dct, specs=self.specs(spec_json))

    def new_workflow(self, spec_json: str, script_engine) -> BpmnWorkflow:
        """A fresh workflow for a version's spec."""
        specs = self.specs(spec_json)
        return BpmnWorkflow(specs.spec, dict(specs.subprocess_specs), script_engine=script_engine)


# -- the compact state layout ------------------------------------------------------------------------------------


def _workflow_to_dict(registry, workflow, subprocess: bool = False) -> dict[str, Any]:
    """A (sub)process's tasks and attributes; defaults are left out (see `_workflow_from_dict`)."""
    dct: dict[str, Any] = {}
    data = registry.convert(registry.clean(workflow.data))
    if data:
        dct["data"] = data
    if workflow.correlations:
        dct["correlations"] = workflow.correlations
    if workflow.last_task is not None:
        dct["last_task"] = str(workflow.last_task.id)
    if not workflow.success:
        dct["success"] = False
    if workflow.completed:
        dct["completed"] = True
    dct["root"] = str(workflow.task_tree.id)
    if subprocess:
        dct["spec"] = workflow.spec.name
    dct["tasks"] = {str(task.id): _task_to_dict(registry, task) for task in workflow.tasks.values()}
    return dct


def _task_to_dict(registry, task) -> dict[str, Any]:
    """One task: its spec, state and time of the last change, then only what differs from the defaults.

    The parent is written only when its children list does not name the task. Data is written as SpiffWorkflow
    does, as the changes from the parent's data (`delta`), or whole (`data`) when that is shorter (a task not yet
    reached has none) or when the task has no parent; data equal to the parent's is not written at all."""
    dct: dict[str, Any] = {"task_spec": task.task_spec.name, "state": task.state,
                           "last_state_change": task.last_state_change}
    if task._children:
        dct["children"] = [str(child) for child in task._children]
    parent = task.parent
    if parent is not None and task.id not in parent._children:
        dct["parent"] = str(parent.id)
    if task.triggered:
        dct["triggered"] = True
    if task.internal_data:
        dct["internal_data"] = registry.convert(task.internal_data)
    if parent is None:
        if task.data:
            dct["data"] = task.data
    elif task.data != parent.data:
        updates = DeepMerge.get_updated_keys(parent.data, task.data)
        deletions = DeepMerge.get_deleted_keys(parent.data, task.data)
        if len(deletions) > len(task.data):
            dct["data"] = task.data
        else:
            delta: dict[str, Any] = {}
            if updates:
                delta["updates"] = updates
            if deletions:
                delta["deletions"] = deletions
            dct["delta"] = delta
    return dct


def _workflow_from_dict(registry, dct: dict[str, Any], specs: VersionSpecs) -> BpmnWorkflow:
    """A live workflow from the compact layout, against the version's shared spec objects."""
    workflow = BpmnWorkflow(specs.spec, dict(specs.subprocess_specs), deserializing=True)
    _tasks_from_dict(registry, workflow, dct)
    _subprocesses_from_dict(registry, dct.get("subprocesses", {}), workflow)
    workflow.bpmn_events = registry.restore(dct.get("bpmn_events", []))
    return workflow


def _subprocesses_from_dict(registry, subprocesses: dict[str, Any], top_workflow) -> None:
    """Each subprocess once the task that calls it is restored, in the stored order where it allows."""
    waiting = dict(subprocesses)
    while waiting:
        progress = False
        for key, found in list(waiting.items()):
            task_id = UUID(key)
            task = next((wf.tasks[task_id] for wf in [top_workflow, *top_workflow.subprocesses.values()]
                         if task_id in wf.tasks), None)
            if task is None:
                continue  # its caller is in a subprocess not restored yet
            del waiting[key]
            progress = True
            if not isinstance(task.task_spec, SubWorkflowTask):
                continue
            spec = top_workflow.subprocess_specs.get(task.task_spec.spec)
            subprocess = BpmnSubWorkflow(spec, task.id, top_workflow, deserializing=True)
            _tasks_from_dict(registry, subprocess, found)
            top_workflow.subprocesses[task.id] = subprocess
            subprocess.completed_event.connect(task.task_spec._on_subworkflow_completed, task)
        if not progress:
            return  # subprocesses of tasks that are gone: SpiffWorkflow drops them as well


def _tasks_from_dict(registry, workflow, dct: dict[str, Any]) -> None:
    tasks = dct["tasks"]
    parents: dict[str, str] = {}
    for task_id, task_dct in tasks.items():
        for child in task_dct.get("children", ()):
            parents[child] = task_id
    specs = workflow.spec.task_specs
    events = workflow.top_workflow.event_manager if hasattr(workflow, "top_workflow") else workflow.event_manager
    for task_id, task_dct in tasks.items():
        task = Task(workflow, specs.get(task_dct["task_spec"]), state=task_dct["state"], id=UUID(task_id))
        parent = task_dct.get("parent") or parents.get(task_id)
        task._parent = UUID(parent) if parent is not None else None
        task._children = [UUID(child) for child in task_dct.get("children", ())]
        task.last_state_change = task_dct["last_state_change"]
        task.triggered = task_dct.get("triggered", False)
        task.internal_data = registry.restore(task_dct["internal_data"]) if "internal_data" in task_dct else {}
        if isinstance(task.task_spec, CatchingEvent) and task.has_state(TaskState.WAITING):
            events.add_task(task)
    workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
    # data from the root down: a task's data is its parent's with its own changes
    done: set = set()
    stack = [workflow.task_tree] if workflow.task_tree is not None else []
    while stack:
        task = stack.pop()
        done.add(task.id)
        _task_data(registry, task, tasks[str(task.id)])
        stack.extend(child for child in (workflow.tasks.get(c) for c in task._children)
                     if child is not None and child.id not in done)
    for task in workflow.tasks.values():  # a task out of the root's reach (none is expected): its own data only
        if task.id not in done:
            task.data = registry.restore(tasks[str(task.id)].get("data", {}))
    workflow.success = dct.get("success", True)
    workflow.completed = dct.get("completed", False)
    workflow.correlations = dct.get("correlations", {})
    last_task = dct.get("last_task")
    workflow.last_task = workflow.tasks.get(UUID(last_task)) if last_task else None
    workflow.data = registry.restore(dct.get("data", {}))


def _task_data(registry, task, dct: dict[str, Any]) -> None:
    parent = task.parent
    if "data" in dct or parent is None:
        task.data = registry.restore(dct.get("data", {}))
        return
    data = DeepMerge.merge({}, parent.data)
    delta = dct.get("delta")
    if delta:
        data.update(registry.restore(delta.get("updates", {})))
        for key in delta.get("deletions", ()):
            data.pop(key, None)
    task.data = data
