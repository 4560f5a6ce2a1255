"""Workflow state serialization with the spec kept apart: a version's spec is stored once, not per instance."""

from __future__ import annotations

import json
from typing import Any

from SpiffWorkflow.bpmn.serializer import DEFAULT_CONFIG, BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG

from .specs import (
    KuratorEventSubprocess,
    KuratorEventSubprocessConverter,
    KuratorUserTask,
    KuratorUserTaskConverter,
)

_CONFIG = dict(CAMUNDA_CONFIG)
_CONFIG.pop(next(cls for cls in CAMUNDA_CONFIG if cls.__name__ == "UserTask"), None)
_CONFIG[KuratorUserTask] = KuratorUserTaskConverter
_CONFIG[KuratorEventSubprocess] = KuratorEventSubprocessConverter


class StateSerializer:
    """Converts specs and instance state to JSON text, and instance state plus spec back to a workflow."""

    def __init__(self) -> None:
        registry = BpmnWorkflowSerializer.configure(_CONFIG)
        # Plain BPMN message definitions (e.g. in collaborations) share their class name with Camunda's:
        # register them under a name of their own so that neither replaces the other.
        DEFAULT_CONFIG[MessageEventDefinition](MessageEventDefinition, registry, typename="BpmnMessageEventDefinition")
        self._serializer = BpmnWorkflowSerializer(registry)
        self._registry = self._serializer.registry

    def spec_to_json(self, spec, subprocess_specs: dict) -> str:
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

    def restore(self, state_json: str, spec_json: str) -> BpmnWorkflow:
        """A live workflow from stored state and its version's spec."""
        dct: dict[str, Any] = json.loads(state_json)
        specs = json.loads(spec_json)
        dct["spec"] = specs["spec"]
        dct["subprocess_specs"] = specs["subprocess_specs"]
        self._serializer.migrate(dct)
        return self._serializer.from_dict(dct)

    def new_workflow(self, spec_json: str, script_engine) -> BpmnWorkflow:
        """A fresh workflow for a version's spec."""
        specs = json.loads(spec_json)
        spec = self._registry.restore(specs["spec"])
        subprocess_specs = {name: self._registry.restore(sp) for name, sp in specs["subprocess_specs"].items()}
        return BpmnWorkflow(spec, subprocess_specs, script_engine=script_engine)
