"""Deployment: validation with element ids, warnings, content-hash versions, specs stored once."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from engine import ValidationFailed
from engine.models import ProcessDefinition, ProcessInstance, Resource

from .support import DIAGRAMS

HEADER = ('<?xml version="1.0" encoding="UTF-8"?>\n<bpmn:definitions '
          'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
          'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="t">')


def diagram(body: str, key: str = "p") -> tuple[str, str]:
    return (f"{key}.bpmn", f'{HEADER}<bpmn:process id="{key}" isExecutable="true">'
                           f'<bpmn:startEvent id="s"/>{body}</bpmn:process></bpmn:definitions>')


def single_task(attrs: str = "", extra: str = "") -> tuple[str, str]:
    return diagram(f'<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="t"/>'
                   f'<bpmn:userTask id="t" name="Task" {attrs}/>{extra}'
                   f'<bpmn:sequenceFlow id="f2" sourceRef="t" targetRef="e"/><bpmn:endEvent id="e"/>')


def refused(engine, *files) -> list:
    with pytest.raises(ValidationFailed) as err:
        engine.repository.deploy(list(files))
    return [p for p in err.value.problems if p.severity == "error"]


def test_unchanged_file_creates_nothing_changed_file_is_next_version(engine):
    first = engine.repository.deploy([DIAGRAMS / "lifecycle.bpmn", DIAGRAMS / "check_form.json"])
    assert {(i.key, i.version, i.created) for i in first.items} == {
        ("lifecycle", 1, True), ("plan_sub", 1, True), ("check_form", 1, True)}
    again = engine.repository.deploy([DIAGRAMS / "lifecycle.bpmn", DIAGRAMS / "check_form.json"])
    assert {(i.key, i.version, i.created) for i in again.items} == {
        ("lifecycle", 1, False), ("plan_sub", 1, False), ("check_form", 1, False)}
    changed = (DIAGRAMS / "lifecycle.bpmn").read_text().replace("Test lifecycle", "Test lifecycle v2")
    third = engine.repository.deploy([("lifecycle.bpmn", changed)])
    assert {(i.key, i.version, i.created) for i in third.items} == {("lifecycle", 2, True), ("plan_sub", 2, True)}
    with engine.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Resource)) == 2  # two contents of the BPMN file


def test_instance_state_does_not_embed_the_spec(deployed):
    instance_id = deployed.runtime.start("lifecycle", {"received": "2025-10-30", "curator": "curator"})
    with deployed.db.session() as session:
        state = json.loads(session.get(ProcessInstance, instance_id).state)
        spec_json = session.scalar(select(ProcessDefinition.spec_json).where(ProcessDefinition.key == "lifecycle"))
    assert "spec" not in state and "subprocess_specs" not in state
    assert "task_specs" in spec_json and "task_specs" not in json.dumps(state)


def test_start_a_given_version(engine):
    engine.repository.deploy([DIAGRAMS / "lifecycle.bpmn", DIAGRAMS / "check_form.json"])
    changed = (DIAGRAMS / "lifecycle.bpmn").read_text().replace('name="Check and conclusion"', 'name="Check v2"')
    engine.repository.deploy([("lifecycle.bpmn", changed)])
    new = engine.runtime.start("lifecycle", {"received": "2025-10-30"})
    old = engine.runtime.start("lifecycle", {"received": "2025-10-30"}, version=1)
    assert engine.tasks.query(instance_id=new)[0]["name"] == "Check v2"
    assert engine.tasks.query(instance_id=old)[0]["name"] == "Check and conclusion"
    assert engine.runtime.instance(old)["version"] == 1


@pytest.mark.parametrize("attrs, element, words", [
    ('camunda:formKey="no_such_form"', "t", "Form 'no_such_form'"),
    ('camunda:dueDate="${working_days(}"', "t", "camunda:dueDate"),
    ('camunda:assignee="${__import__(\'os\')}"', "t", "'_'"),
])
def test_user_task_errors_name_the_element(engine, attrs, element, words):
    problems = refused(engine, single_task(attrs))
    assert any(p.element_id == element and words in p.message for p in problems), problems


def test_bad_timer_and_condition_and_script_name_the_element(engine):
    timer = single_task(extra='<bpmn:boundaryEvent id="late" attachedToRef="t"><bpmn:timerEventDefinition>'
                              '<bpmn:timeDuration>P5X</bpmn:timeDuration></bpmn:timerEventDefinition>'
                              '</bpmn:boundaryEvent>')
    assert any(p.element_id == "late" and "ISO 8601" in p.message for p in refused(engine, timer))
    cron = single_task(extra='<bpmn:boundaryEvent id="cron" attachedToRef="t"><bpmn:timerEventDefinition>'
                             '<bpmn:timeCycle>0 0 9 * * ?</bpmn:timeCycle></bpmn:timerEventDefinition>'
                             '</bpmn:boundaryEvent>')
    assert any(p.element_id == "cron" and "cron" in p.message for p in refused(engine, cron))
    condition = diagram('<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="g"/>'
                        '<bpmn:exclusiveGateway id="g" default="f3"/>'
                        '<bpmn:sequenceFlow id="f2" sourceRef="g" targetRef="e"><bpmn:conditionExpression>'
                        '${x.__class__}</bpmn:conditionExpression></bpmn:sequenceFlow>'
                        '<bpmn:sequenceFlow id="f3" sourceRef="g" targetRef="e"/><bpmn:endEvent id="e"/>')
    assert any(p.element_id == "g" for p in refused(engine, condition))
    script = diagram('<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="sc"/>'
                     '<bpmn:scriptTask id="sc"><bpmn:script>import os</bpmn:script></bpmn:scriptTask>'
                     '<bpmn:sequenceFlow id="f2" sourceRef="sc" targetRef="e"/><bpmn:endEvent id="e"/>')
    assert any(p.element_id == "sc" and "import" in p.message.lower() for p in refused(engine, script))


def test_unassigned_user_task_is_a_warning_and_goes_to_admin(engine):
    result = engine.repository.deploy([single_task()])
    assert [w.element_id for w in result.warnings] == ["t"]
    assert "admin" in result.warnings[0].message
    instance_id = engine.runtime.start("p")
    assert engine.tasks.query(instance_id=instance_id)[0]["candidate_roles"] == ["admin"]


@pytest.mark.parametrize("name, content, words", [
    ("broken.bpmn", "<bpmn:definitions", "well-formed"),
    ("other.xml", "<html><body/></html>", "BPMN 2.0"),
    ("nonexec.bpmn", HEADER + '<bpmn:process id="x" isExecutable="false"><bpmn:startEvent id="s"/>'
                              '</bpmn:process></bpmn:definitions>', "isExecutable"),
    ("missing.bpmn", HEADER + '<bpmn:process id="x" isExecutable="true"><bpmn:startEvent id="s"/>'
                              '<bpmn:sequenceFlow id="f" sourceRef="s" targetRef="c"/>'
                              '<bpmn:callActivity id="c" calledElement="nowhere"/></bpmn:process>'
                              '</bpmn:definitions>', "nowhere"),
    ("form.json", '{"components": [{"key": "a"}, {"key": "a"}]}', "used twice"),
    ("xxe.bpmn", '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                 + HEADER + '<bpmn:process id="x" name="&x;" isExecutable="true"/></bpmn:definitions>', ""),
])
def test_bad_files_are_refused_and_nothing_is_stored(engine, name, content, words):
    problems = refused(engine, (name, content))
    assert problems and all(p.file == name or p.file is None for p in problems)
    assert words in " ".join(p.message for p in problems)
    with engine.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Resource)) == 0


def test_call_activity_to_a_process_deployed_earlier(engine):
    engine.repository.deploy([DIAGRAMS / "lifecycle.bpmn", DIAGRAMS / "check_form.json"])
    caller = diagram('<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="c"/>'
                     '<bpmn:callActivity id="c" calledElement="plan_sub"/>'
                     '<bpmn:sequenceFlow id="f2" sourceRef="c" targetRef="e"/><bpmn:endEvent id="e"/>', key="caller")
    engine.repository.deploy([caller])
    instance_id = engine.runtime.start("caller", {"curator": "curator", "plan_items": []})
    assert engine.tasks.query(instance_id=instance_id)[0]["assignee"] == "curator"


def test_a_flow_node_with_the_id_of_its_process_is_refused(engine):
    """bpmn-js resolves such an id to the process and draws none of the element's flows (the case file's diagram
    of `sop_materials` showed only its start and end): the file is refused, naming the element."""
    name, text = single_task('camunda:candidateGroups="admin"')
    text = text.replace('id="t"', 'id="p"').replace('targetRef="t"', 'targetRef="p"').replace('sourceRef="t"',
                                                                                                 'sourceRef="p"')
    problems = refused(engine, (name, text))
    assert [(p.element_id, p.file) for p in problems] == [("p", "p.bpmn")]
    assert "id of its process" in problems[0].message and "тот же id" in problems[0].message_ru
    with engine.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Resource)) == 0
    # the same task under an id of its own deploys
    assert engine.repository.deploy([single_task('camunda:candidateGroups="admin"')]).items
