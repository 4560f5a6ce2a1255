"""Task specs with the Camunda 7 attributes Kurator executes, and their serializer converters."""

from __future__ import annotations

from SpiffWorkflow.bpmn.serializer.default.task_spec import SubWorkflowConverter
from SpiffWorkflow.bpmn.specs.defaults import EventSubprocess
from SpiffWorkflow.camunda.serializer.task_spec import UserTaskConverter
from SpiffWorkflow.camunda.specs.user_task import UserTask

# Camunda attributes of a userTask that the engine evaluates when the task becomes ready.
CAMUNDA_TASK_ATTRIBUTES = (
    "assignee",
    "candidateGroups",
    "candidateUsers",
    "dueDate",
    "followUpDate",
    "priority",
)


class KuratorUserTask(UserTask):
    """A user task with the Camunda assignment and deadline attributes kept on the spec."""

    def __init__(self, wf_spec, name, form, camunda=None, **kwargs):
        super().__init__(wf_spec, name, form, **kwargs)
        self.camunda: dict[str, str] = dict(camunda or {})


class KuratorUserTaskConverter(UserTaskConverter):
    """Serializes `KuratorUserTask` with its Camunda attributes."""

    def to_dict(self, spec):
        dct = super().to_dict(spec)
        dct["camunda"] = dict(spec.camunda)
        return dct

    def from_dict(self, dct):
        dct.setdefault("camunda", {})
        return super().from_dict(dct)


class KuratorEventSubprocess(EventSubprocess):
    """An event subprocess that knows whether its start event interrupts the enclosing process."""

    def __init__(self, wf_spec, bpmn_id, subworkflow_spec, interrupting: bool = True, **kwargs):
        super().__init__(wf_spec, bpmn_id, subworkflow_spec, **kwargs)
        self.interrupting = interrupting


class KuratorEventSubprocessConverter(SubWorkflowConverter):
    def to_dict(self, spec):
        dct = super().to_dict(spec)
        dct["interrupting"] = spec.interrupting
        return dct

    def from_dict(self, dct):
        dct.setdefault("interrupting", True)
        return super().from_dict(dct)
