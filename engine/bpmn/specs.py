"""Task specs with the Camunda 7 attributes Kurator executes, and their serializer converters.

The specs restored from a stored version are shared by every instance of that version in the process (see
`serializer.SpecCache`), so running an instance must never change them. SpiffWorkflow 3.2 does in four places;
the classes at the end of this module do the same work without writing to the spec.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

from SpiffWorkflow.bpmn.exceptions import WorkflowDataException
from SpiffWorkflow.bpmn.serializer.default.task_spec import SubWorkflowConverter
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import AdHocSubprocessSpec
from SpiffWorkflow.bpmn.specs.control import BpmnStartTask
from SpiffWorkflow.bpmn.specs.data_spec import TaskDataReference
from SpiffWorkflow.bpmn.specs.defaults import EventSubprocess
from SpiffWorkflow.bpmn.specs.defaults import ParallelMultiInstanceTask as BpmnParallelMultiInstanceTask
from SpiffWorkflow.bpmn.specs.defaults import SequentialMultiInstanceTask as BpmnSequentialMultiInstanceTask
from SpiffWorkflow.bpmn.specs.mixins.bpmn_spec_mixin import BpmnSpecMixin
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import MultiInstanceTask, StandardLoopTask
from SpiffWorkflow.camunda.serializer.task_spec import UserTaskConverter
from SpiffWorkflow.camunda.specs.multiinstance_task import ParallelMultiInstanceTask, SequentialMultiInstanceTask
from SpiffWorkflow.camunda.specs.user_task import UserTask
from SpiffWorkflow.specs.MultiChoice import MultiChoice
from SpiffWorkflow.util.deep_merge import DeepMerge
from SpiffWorkflow.util.task import TaskState

# Camunda attributes of a userTask that the engine evaluates when the task becomes ready.
CAMUNDA_TASK_ATTRIBUTES = (
    "assignee",
    "candidateGroups",
    "candidateUsers",
    "dueDate",
    "followUpDate",
    "priority",
)
# Extension properties (`camunda:properties/camunda:property`) of a userTask that the engine evaluates too:
# `agency` addresses the task to an agency (an expression giving its id, or a {"id": …} object), and
# `agencyFallbackGroups` names the roles offered the task when that expression finds no agency.
KURATOR_TASK_PROPERTIES = ("agency", "agencyFallbackGroups")


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
    """An event subprocess that knows whether its start event interrupts the enclosing process.

    One started by a message or a signal is not linked to the process's start and end in the spec (see
    `KuratorStartTask`): it needs no incoming link, and ends at the process's end by itself.
    """

    def __init__(self, wf_spec, bpmn_id, subworkflow_spec, interrupting: bool = True, **kwargs):
        super().__init__(wf_spec, bpmn_id, subworkflow_spec, **kwargs)
        self.interrupting = interrupting

    def test(self):
        """No incoming link required (SpiffWorkflow's check would want the one `trigger_wf` adds)."""

    def _predict_hook(self, my_task):
        outputs = self.outputs or [self._wf_spec.end]  # the link to the end SpiffWorkflow adds on triggering
        state = TaskState.FUTURE if my_task.has_state(TaskState.DEFINITE_MASK) else my_task.state
        my_task._sync_children(outputs, state)


class KuratorEventSubprocessConverter(SubWorkflowConverter):
    def to_dict(self, spec):
        dct = super().to_dict(spec)
        dct["interrupting"] = spec.interrupting
        return dct

    def from_dict(self, dct):
        dct.setdefault("interrupting", True)
        return super().from_dict(dct)


# -- specs that stay unchanged while instances run -------------------------------------------------------------
# The serializer restores stored specs into these classes under SpiffWorkflow's own type names, so the stored
# JSON stays as it is and versions deployed before keep working.


class KuratorStartTask(BpmnStartTask):
    """A process start that starts an event subprocess without linking it to the spec.

    SpiffWorkflow's `trigger_wf` connects the triggered event subprocess to the process's start and end on the
    spec (`start.connect(spec)`, `spec.connect(end)`); on a shared spec every other instance would then predict
    the event subprocess as a child of Start. `KuratorEventSubprocess` finds its way to the end by itself.
    """

    def trigger_wf(self, my_task, spec_name):
        spec = self._wf_spec.task_specs.get(spec_name)
        child = my_task._add_child(spec, TaskState.FUTURE)
        child.triggered = True
        child.task_spec._update(child)
        return child.id


# Marks a multi-instance task whose loopCardinality gave a collection (kept in the task's internal data).
MI_COLLECTION_KEY = "kurator_mi_collection"


class _SpecPreservingMultiInstance:
    """Camunda multi-instance without SpiffWorkflow's run-time rewrite of the spec.

    SpiffWorkflow's Camunda `update_task_spec` decides when the task starts whether `loopCardinality` is a
    number or a collection and writes the answer to the spec (`data_input`, `input_item`, `cardinality`). Here
    the same answer goes to a private copy of the spec used for that call only (`_view`), and is remembered in
    the task so that the merge of each finished child sees it too. Children are merged through the
    `merge_child` the serializer connected when it restored the spec (never connected again here).
    """

    _spiff_class: type  # SpiffWorkflow's BPMN class (the one below Camunda's)

    def _view(self, my_task, evaluate: bool = False):
        view = copy.copy(self)
        if self.cardinality is None:
            view.data_input = TaskDataReference(self.data_output.bpmn_id)
            view.input_item = TaskDataReference(self.output_item.bpmn_id)
            return view
        if evaluate:
            cardinality = my_task.workflow.script_engine.evaluate(my_task, self.cardinality)
            collection = not isinstance(cardinality, int)
            if collection:
                my_task.internal_data[MI_COLLECTION_KEY] = True
            else:
                my_task.internal_data.pop(MI_COLLECTION_KEY, None)
        else:
            collection = bool(my_task.internal_data.get(MI_COLLECTION_KEY))
        if collection:
            view.data_input = TaskDataReference(self.cardinality)
            view.cardinality = None
        view.input_item = TaskDataReference(self.output_item.bpmn_id) if self.output_item is not None else None
        return view

    def _update_hook(self, my_task):
        if my_task.state != TaskState.WAITING:
            BpmnSpecMixin._update_hook(self, my_task)
            my_task._set_state(TaskState.WAITING)
        view = self._view(my_task, evaluate=True)
        _check_collection(view, my_task)
        return self._spiff_class._update_hook(view, my_task)

    def merge_child(self, workflow, child):
        return self._spiff_class.merge_child(self._view(child.parent), workflow, child)

    def create_child(self, my_task, item, key_or_index=None):
        # MultiInstanceTask.create_child without `completed_event.connect(self.merge_child)`
        task_spec = my_task.workflow.spec.task_specs[self.task_spec]
        child = my_task._add_child(task_spec, TaskState.WAITING)
        child.triggered = True
        if self.input_item is not None and self.input_item.exists(my_task):
            raise WorkflowDataException(f"Multiinstance input item {self.input_item.bpmn_id} already exists.",
                                        my_task)
        if self.output_item is not None and self.output_item.exists(my_task):
            raise WorkflowDataException(f"Multiinstance output item {self.output_item.bpmn_id} already exists.",
                                        my_task)
        if self.input_item is not None:
            self.input_item.set(child, copy.deepcopy(item))
        if key_or_index is not None:
            child.internal_data["key_or_index"] = key_or_index
        else:
            child.internal_data["item"] = item
        child.task_spec._update(child)


def _check_collection(view, my_task) -> None:
    """A multi-instance task over a collection needs that collection when it starts: a missing variable (or
    a value that is not a collection) is a data error naming the element and the variable, never a failure
    deep inside SpiffWorkflow."""
    reference = view.data_input
    if reference is None:
        return
    value = reference.get(my_task)
    label = f"Multi-instance task '{view.bpmn_name}'" if view.bpmn_name else "Multi-instance task"
    if value is None:
        raise WorkflowDataException(f"{label}: its collection variable '{reference.bpmn_id}' is not set; give "
                                    f"the process a list in '{reference.bpmn_id}' before this step", my_task)
    if not isinstance(value, Iterable):
        raise WorkflowDataException(f"{label}: its collection variable '{reference.bpmn_id}' must be a list, "
                                    f"not {type(value).__name__}", my_task)


class KuratorParallelMultiInstanceTask(_SpecPreservingMultiInstance, ParallelMultiInstanceTask):
    _spiff_class = BpmnParallelMultiInstanceTask


class KuratorSequentialMultiInstanceTask(_SpecPreservingMultiInstance, SequentialMultiInstanceTask):
    _spiff_class = BpmnSequentialMultiInstanceTask


class KuratorAdHocSubprocessSpec(AdHocSubprocessSpec):
    """An ad hoc subprocess that starts a conditional path without linking it to the spec's start.

    SpiffWorkflow's `add_path` connects the path to Start on the spec, so that the new task passes the input
    check of `_on_ready`; on a shared spec every later instance would then start that path unconditionally.
    """

    def add_path(self, workflow, task_spec):
        trigger = False
        if isinstance(task_spec, MultiChoice):
            for cond, _output in task_spec.cond_task_specs:
                if cond is None or self.check_condition(cond.args[0], workflow):
                    trigger = True
                    break
        elif isinstance(task_spec, StandardLoopTask):
            trigger = task_spec.condition is not None and self.check_condition(task_spec.condition, workflow)
        elif isinstance(task_spec, MultiInstanceTask):
            trigger = task_spec.condition is not None and not self.check_condition(task_spec.condition, workflow)
        if trigger:
            child = workflow.task_tree._add_child(task_spec, TaskState.FUTURE)
            child.triggered = True
            # `_ready()` without the spec's `test()`, which wants an incoming link
            child._set_state(TaskState.READY)
            for assignment in task_spec.pre_assign:
                assignment.assign(child, child)
            task_spec._on_ready_hook(child)
            task_spec._predict(child, mask=TaskState.NOT_FINISHED_MASK)
            DeepMerge.merge(child.data, workflow.data)
            child.data.pop("data_objects")
