"""Workflow state serialization with the spec kept apart: a version's spec is stored once, not per instance.

A deployed version is immutable, so its spec is also parsed once per process: `SpecCache` keeps the spec objects
of the versions used last, and loading an instance restores only its own state (tasks, data) against them. The
objects are shared by every instance of the version, in every thread, so running an instance must never change
them: the serializer restores stored specs into the classes of `specs.py` that leave them as they are.
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
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG

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
        """The instance state without its spec."""
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
        return self._registry.restore(dct, specs=self.specs(spec_json))

    def new_workflow(self, spec_json: str, script_engine) -> BpmnWorkflow:
        """A fresh workflow for a version's spec."""
        specs = self.specs(spec_json)
        return BpmnWorkflow(specs.spec, dict(specs.subprocess_specs), script_engine=script_engine)
