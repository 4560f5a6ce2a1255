"""BPMN parsing: SpiffWorkflow's Camunda parser extended with the attributes Kurator needs."""

from __future__ import annotations

from lxml import etree
from SpiffWorkflow.bpmn.parser.BpmnParser import full_tag
from SpiffWorkflow.bpmn.parser.task_parsers import SubprocessParser
from SpiffWorkflow.bpmn.specs.data_spec import TaskDataReference
from SpiffWorkflow.camunda.parser.CamundaParser import CamundaParser
from SpiffWorkflow.camunda.parser.task_spec import CAMUNDA_MODEL_NS, SubWorkflowParser, UserTaskParser
from SpiffWorkflow.camunda.specs.multiinstance_task import ParallelMultiInstanceTask, SequentialMultiInstanceTask

from .specs import CAMUNDA_TASK_ATTRIBUTES, KURATOR_TASK_PROPERTIES, KuratorEventSubprocess, KuratorUserTask


class KuratorUserTaskParser(UserTaskParser):
    """Reads `camunda:assignee`, `camunda:candidateGroups`, `camunda:dueDate` and friends."""

    def create_task(self):
        form = self.get_form()
        camunda = {}
        for name in CAMUNDA_TASK_ATTRIBUTES:
            value = self.node.get(f"{{{CAMUNDA_MODEL_NS}}}{name}")
            if value is not None and value.strip():
                camunda[name] = value.strip()
        for node in self.xpath("./bpmn:extensionElements/camunda:properties/camunda:property"):
            name, value = node.get("name"), node.get("value")
            if name in KURATOR_TASK_PROPERTIES and value is not None and value.strip():
                camunda[name] = value.strip()
        return self.spec_class(self.spec, self.bpmn_id, form=form, camunda=camunda, **self.bpmn_attributes)


class KuratorSubWorkflowParser(SubWorkflowParser):
    """Embedded subprocesses; `triggeredByEvent="true"` makes an event subprocess (SpiffWorkflow's Camunda
    parser treats those as plain subprocesses, so they would never start)."""

    def create_task(self):
        subworkflow_spec = SubprocessParser.get_subprocess_spec(self)
        if (self.node.get("triggeredByEvent") or "").strip().lower() != "true":
            return self.spec_class(self.spec, self.bpmn_id, subworkflow_spec=subworkflow_spec,
                                   **self.bpmn_attributes)
        starts = [n for n in self.node if etree.QName(n).localname == "startEvent"]
        interrupting = all((n.get("isInterrupting") or "true").strip().lower() != "false" for n in starts)
        return KuratorEventSubprocess(self.spec, self.bpmn_id, subworkflow_spec=subworkflow_spec,
                                      interrupting=interrupting, **self.bpmn_attributes)


def settle_multi_instance(spec) -> None:
    """Fix, at parse time, what SpiffWorkflow's Camunda multi-instance sets on the spec when the task starts.

    With `camunda:collection` and no cardinality, the collection is both the input and the output (and the
    element variable both items). SpiffWorkflow assigns that on the spec at run time; our stored spec is the
    deploy-time one, reloaded at every step, so it must already say so.
    """
    for task_spec in spec.task_specs.values():
        if isinstance(task_spec, (SequentialMultiInstanceTask, ParallelMultiInstanceTask)) \
                and task_spec.cardinality is None and task_spec.data_output is not None:
            task_spec.data_input = TaskDataReference(task_spec.data_output.bpmn_id)
            if task_spec.output_item is not None:
                task_spec.input_item = TaskDataReference(task_spec.output_item.bpmn_id)


class KuratorParser(CamundaParser):
    """The parser used for every deployment."""

    OVERRIDE_PARSER_CLASSES = {
        **CamundaParser.OVERRIDE_PARSER_CLASSES,
        full_tag("userTask"): (KuratorUserTaskParser, KuratorUserTask),
        full_tag("subProcess"): (KuratorSubWorkflowParser, CamundaParser.OVERRIDE_PARSER_CLASSES[
            full_tag("subProcess")][1]),
    }

    def get_spec(self, process_id, required=True):
        spec = super().get_spec(process_id, required)
        if spec is not None:
            settle_multi_instance(spec)
        return spec
