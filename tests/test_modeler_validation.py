"""Validation before deploy, as the modeler runs it: the engine's checks and the bpmnlint rules, each problem tied
to the element and explained in Russian; a diagram with errors is refused and nothing is stored. Diagrams saved by
Camunda Modeler deploy and run here, and ours keep what Camunda Modeler needs to open them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import func, select

from engine import ValidationFailed
from engine.bpmn.lint import RECOMMENDED, lint
from engine.models import ProcessDefinition, Resource

from .support import DIAGRAMS
from .test_lint import CASES
from .test_web_modeler import app, method, post_json, versions  # noqa: F401 - fixtures of the modeler pages

WORKFLOWS = Path(__file__).resolve().parent.parent / "workflows"
ROUNDTRIP = DIAGRAMS / "camunda_modeler_roundtrip.bpmn"
CHECK_FORM = DIAGRAMS / "check_form.json"
CYRILLIC = re.compile("[а-яА-Я]{3,}")

NS = {
    "bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
    "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
    "dc": "http://www.omg.org/spec/DD/20100524/DC",
    "di": "http://www.omg.org/spec/DD/20100524/DI",
    "camunda": "http://camunda.org/schema/1.0/bpmn",
    "modeler": "http://camunda.org/schema/modeler/1.0",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
}

# A lint-clean diagram (names, connections, DI) with one user task `t`; the tests break one thing in it.
TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" xmlns:dc="http://www.omg.org/spec/DD/20100524/DC"
    xmlns:di="http://www.omg.org/spec/DD/20100524/DI" xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" id="d" targetNamespace="t">
  <bpmn:process id="p" name="Проверка" isExecutable="true">
    <bpmn:startEvent id="s" name="Начало"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="t" name="Задача" TASK_ATTRS><bpmn:incoming>f1</bpmn:incoming>
      <bpmn:outgoing>f2</bpmn:outgoing></bpmn:userTask>
    <bpmn:endEvent id="e" name="Конец"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:boundaryEvent id="late" name="Просрочено" attachedToRef="t" cancelActivity="false">
      <bpmn:outgoing>f3</bpmn:outgoing>
      <bpmn:timerEventDefinition><TIMER_KIND xsi:type="bpmn:tFormalExpression">TIMER</TIMER_KIND>
      </bpmn:timerEventDefinition></bpmn:boundaryEvent>
    <bpmn:endEvent id="late_end" name="Просрочка отмечена"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="TARGET" />
    <bpmn:sequenceFlow id="f2" sourceRef="t" targetRef="e" />
    <bpmn:sequenceFlow id="f3" sourceRef="late" targetRef="late_end" />
  </bpmn:process>
  <bpmndi:BPMNDiagram id="dia">
    <bpmndi:BPMNPlane id="plane" bpmnElement="p">
      <bpmndi:BPMNShape id="s_di" bpmnElement="s"><dc:Bounds x="100" y="100" width="36" height="36" />
      </bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="t_di" bpmnElement="t"><dc:Bounds x="200" y="78" width="100" height="80" />
      </bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="e_di" bpmnElement="e"><dc:Bounds x="400" y="100" width="36" height="36" />
      </bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="late_di" bpmnElement="late"><dc:Bounds x="232" y="140" width="36" height="36" />
      </bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="late_end_di" bpmnElement="late_end"><dc:Bounds x="400" y="220" width="36" height="36" />
      </bpmndi:BPMNShape>
      <bpmndi:BPMNEdge id="f1_di" bpmnElement="f1"><di:waypoint x="136" y="118" /><di:waypoint x="200" y="118" />
      </bpmndi:BPMNEdge>
      <bpmndi:BPMNEdge id="f2_di" bpmnElement="f2"><di:waypoint x="300" y="118" /><di:waypoint x="400" y="118" />
      </bpmndi:BPMNEdge>
      <bpmndi:BPMNEdge id="f3_di" bpmnElement="f3"><di:waypoint x="250" y="176" /><di:waypoint x="250" y="238" />
        <di:waypoint x="400" y="238" /></bpmndi:BPMNEdge>
    </bpmndi:BPMNPlane>
  </bpmndi:BPMNDiagram>
</bpmn:definitions>
"""
GOOD_TASK = 'camunda:candidateGroups="commission_secretary" camunda:dueDate="${working_days(5)}"'


def make(task: str = GOOD_TASK, timer: str = "${working_days(5)}", kind: str = "bpmn:timeDate",
         target: str = "t") -> tuple[str, str]:
    xml = (TEMPLATE.replace("TASK_ATTRS", task).replace("TIMER_KIND", kind).replace("TIMER", timer)
           .replace("TARGET", target))
    return ("p.bpmn", xml)


def refused(engine, *files) -> list:
    with pytest.raises(ValidationFailed) as err:
        engine.repository.deploy(list(files), lint=True)
    return err.value.problems


def stored(engine) -> tuple[int, int]:
    with engine.db.session() as session:
        return (session.scalar(select(func.count()).select_from(ProcessDefinition)),
                session.scalar(select(func.count()).select_from(Resource)))


def assert_russian(problem) -> None:
    assert problem.message_ru and CYRILLIC.search(problem.message_ru), problem
    assert problem.message  # the English one stays for the command line


# -- a diagram saved by Camunda Modeler -------------------------------------------------------------------------

def test_the_camunda_modeler_file_is_written_in_that_dialect():
    root = etree.parse(str(ROUNDTRIP)).getroot()
    assert root.get("exporter") == "Camunda Modeler" and root.get("exporterVersion").startswith("5.")
    assert root.get(f"{{{NS['modeler']}}}executionPlatform") == "Camunda Platform"
    assert root.get(f"{{{NS['modeler']}}}executionPlatformVersion").startswith("7.")
    assert root.find("bpmn:collaboration/bpmn:participant", NS) is not None
    assert len(root.findall(".//bpmn:lane", NS)) == 2
    assert root.find(".//bpmn:boundaryEvent/bpmn:timerEventDefinition", NS) is not None
    assert root.find(".//camunda:properties/camunda:property", NS) is not None
    condition = root.find(".//bpmn:conditionExpression", NS)
    assert condition.get(f"{{{NS['xsi']}}}type") == "bpmn:tFormalExpression"
    assert root.findall(".//bpmndi:BPMNEdge/di:waypoint", NS) and root.findall(".//bpmndi:BPMNLabel/dc:Bounds", NS)


def test_the_camunda_modeler_file_has_no_lint_problems():
    assert lint(ROUNDTRIP.read_text(encoding="utf-8"), ROUNDTRIP.name) == []


def test_the_camunda_modeler_file_deploys_and_runs_every_path(engine):
    result = engine.repository.deploy([ROUNDTRIP, CHECK_FORM], lint=True)
    assert result.warnings == []
    assert {(i.key, i.created) for i in result.items} == {("roundtrip_check", True), ("check_form", True)}
    with engine.db.session() as session:
        spec_json = session.scalar(select(ProcessDefinition.spec_json)
                                   .where(ProcessDefinition.key == "roundtrip_check"))
    assert "004 п. 4.6" in json.dumps(json.loads(spec_json), ensure_ascii=False)  # camunda:properties are kept
    engine.identity.add_user("secretary", ["commission_secretary"])
    engine.identity.add_user("chair", ["commission"])
    engine.identity.add_user("boss", ["manager"])
    start = {"received": "2025-10-30", "curator": "chair"}

    def only_task(instance_id):
        tasks = engine.tasks.query(instance_id=instance_id)
        assert len(tasks) == 1, tasks
        return tasks[0]

    # the gateway, "Да": the plan goes to the curator named by ${curator}
    yes = engine.runtime.start("roundtrip_check", start)
    check = only_task(yes)
    assert check["candidate_roles"] == ["commission_secretary"] and check["element_id"] == "Activity_check"
    assert check["due"] == "2025-11-07T20:59:59+00:00"  # ${working_days(5, received)}: 5 working days, MSK
    engine.tasks.complete(check["id"], "secretary", {"sop_confirmed": True, "danger_level": "high",
                                                     "curator": "chair"})
    plan = only_task(yes)
    assert plan["element_id"] == "Activity_plan" and plan["assignee"] == "chair"
    assert plan["due"] == "2025-11-14T20:59:59+00:00"  # ${calendar_days(15)} from 30.10
    engine.tasks.complete(plan["id"], "chair", {})
    assert engine.runtime.instance(yes)["status"] == "completed"
    assert "Event_done" in engine.runtime.instance(yes)["completed_elements"]

    # the gateway, "Нет"
    no = engine.runtime.start("roundtrip_check", start)
    engine.tasks.complete(only_task(no)["id"], "secretary", {"sop_confirmed": False, "danger_level": "low"})
    assert engine.runtime.instance(no)["status"] == "completed"
    assert "Event_rejected" in engine.runtime.instance(no)["completed_elements"]

    # the boundary timer fires once the clock passes the deadline; the check stays open (non-interrupting)
    late = engine.runtime.start("roundtrip_check", start)
    engine.clock.set("2025-11-07T23:00:00+03:00")
    assert engine.management.sweep().timers_fired == 0
    engine.clock.set("2025-11-08T09:00:00+03:00")
    assert engine.management.sweep().timers_fired == 1
    tasks = {t["element_id"]: t for t in engine.tasks.query(instance_id=late)}
    assert set(tasks) == {"Activity_check", "Activity_escalate"}
    assert tasks["Activity_escalate"]["candidate_roles"] == ["manager"] and tasks["Activity_check"]["overdue"]
    engine.tasks.complete(tasks["Activity_escalate"]["id"], "boss", {})
    engine.tasks.complete(tasks["Activity_check"]["id"], "secretary", {"sop_confirmed": False,
                                                                        "danger_level": "low"})
    info = engine.runtime.instance(late)
    assert info["status"] == "completed" and {"Event_escalated", "Event_rejected"} <= set(info["completed_elements"])


def test_the_camunda_modeler_file_deploys_through_the_modeler(app, method):  # noqa: F811
    app.extensions["kurator"].repository.deploy([CHECK_FORM])
    xml = ROUNDTRIP.read_text(encoding="utf-8")
    assert post_json(method, "/modeler/validate", {"xml": xml}).get_json() == []
    response = post_json(method, "/modeler/deploy", {"xml": xml, "comment": "Из Camunda Modeler"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["warnings"] == []
    assert [(v.version, v.comment) for v in versions(app, "roundtrip_check")] == [(1, "Из Camunda Modeler")]


# -- our diagrams, as Camunda Modeler needs them ----------------------------------------------------------------

SHIPPED = sorted(WORKFLOWS.glob("*.bpmn"))
FLOW_NODES = {"startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent",
              "userTask", "scriptTask", "serviceTask", "task", "manualTask", "sendTask", "receiveTask",
              "businessRuleTask", "callActivity", "subProcess", "exclusiveGateway", "inclusiveGateway",
              "parallelGateway", "eventBasedGateway"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_diagrams_have_complete_di(path):
    root = etree.parse(str(path)).getroot()
    shapes = {s.get("bpmnElement"): s for s in root.iterfind(".//bpmndi:BPMNShape", NS)}
    edges = {e.get("bpmnElement"): e for e in root.iterfind(".//bpmndi:BPMNEdge", NS)}
    nodes = [e for e in root.iter(f"{{{NS['bpmn']}}}*") if etree.QName(e).localname in FLOW_NODES]
    flows = root.findall(".//bpmn:sequenceFlow", NS)
    assert nodes and flows
    for node in nodes:
        bounds = shapes[node.get("id")].find("dc:Bounds", NS)
        assert all(float(bounds.get(a)) >= 0 for a in ("x", "y")) and float(bounds.get("width")) > 0, node.get("id")
    for flow in flows:
        assert len(edges[flow.get("id")].findall("di:waypoint", NS)) >= 2, flow.get("id")
    for pool in root.iterfind(".//bpmn:participant", NS):
        assert pool.get("id") in shapes
    for lane in root.iterfind(".//bpmn:lane", NS):
        assert lane.get("id") in shapes


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_diagrams_use_only_the_namespaces_camunda_modeler_knows(path):
    root = etree.parse(str(path)).getroot()
    allowed = set(NS.values())
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        assert etree.QName(element).namespace in allowed, element.tag
        for attribute in element.attrib:
            namespace = etree.QName(attribute).namespace
            assert namespace is None or namespace in allowed, attribute
    assert set(root.nsmap.values()) <= allowed


@pytest.mark.parametrize("path", [*SHIPPED, ROUNDTRIP], ids=lambda p: p.name)
def test_a_parse_and_serialize_round_trip_loses_nothing(path):
    text = path.read_bytes()
    tree = etree.fromstring(text, etree.XMLParser(resolve_entities=False, no_network=True))
    again = etree.fromstring(etree.tostring(tree, xml_declaration=True, encoding="UTF-8"))
    assert etree.tostring(again, method="c14n") == etree.tostring(tree, method="c14n")
    assert sum(1 for _ in again.iter()) == sum(1 for _ in tree.iter())
    # and the engine reads the same diagram from both
    assert lint(etree.tostring(again, encoding="unicode"), path.name) == lint(text.decode("utf-8"), path.name)


# -- each kind of error is refused with the element and a Russian message ---------------------------------------

def test_the_template_is_clean(engine):
    assert lint(make()[1]) == []
    assert engine.repository.validate([make()], lint=True) == []


def test_xml_not_well_formed(engine):
    problems = refused(engine, ("broken.bpmn", make()[1][:-30]))
    assert len(problems) == 1 and problems[0].file == "broken.bpmn" and problems[0].severity == "error"
    assert_russian(problems[0])
    assert "XML" in problems[0].message_ru
    assert stored(engine) == (0, 0)


def test_parser_error_a_flow_to_a_missing_element(engine):
    problems = refused(engine, make(target="nowhere"))
    parser = [p for p in problems if p.rule is None]
    assert parser and parser[0].element_id == "s" and "«nowhere»" in parser[0].message_ru
    assert_russian(parser[0])
    assert "Подробности:" in parser[0].message_ru  # the parser's own words follow the Russian lead
    assert stored(engine) == (0, 0)


def test_parser_error_a_call_to_a_missing_process_names_the_call_activity(engine):
    xml = make()[1].replace('<bpmn:userTask id="t" name="Задача" ' + GOOD_TASK + '>',
                            '<bpmn:callActivity id="t" name="Задача" calledElement="nowhere">') \
        .replace("</bpmn:userTask>", "</bpmn:callActivity>")
    problems = refused(engine, ("p.bpmn", xml))
    assert [(p.element_id, "«nowhere»" in p.message_ru) for p in problems] == [("t", True)]


@pytest.mark.parametrize("task, words", [
    ('camunda:candidateGroups="commission_secretary" camunda:formKey="no_such_form"', "Форма «no_such_form»"),
    ('camunda:candidateGroups="commission_secretary" camunda:dueDate="${working_days(}"', "Срок (camunda:dueDate)"),
    ('camunda:candidateGroups="commission_secretary" camunda:assignee="${__import__(\'os\')}"',
     "Исполнитель (camunda:assignee)"),
    ('camunda:candidateGroups="commission_secretary" camunda:dueDate="${x.__class__}"', "Срок (camunda:dueDate)"),
])
def test_user_task_errors(engine, task, words):
    problems = refused(engine, make(task))
    errors = [p for p in problems if p.severity == "error"]
    assert [p.element_id for p in errors] == ["t"]
    assert words in errors[0].message_ru and "«Задача»" in errors[0].message_ru
    assert_russian(errors[0])
    assert stored(engine) == (0, 0)


@pytest.mark.parametrize("timer, kind, words", [
    ("P5X", "bpmn:timeDuration", "ISO 8601"),
    ("2026-13-45T09:00:00", "bpmn:timeDate", "ISO 8601"),
    ("0 0 9 * * ?", "bpmn:timeCycle", "cron"),
    ("${working_days(}", "bpmn:timeDate", "Таймер «Просрочено»"),
])
def test_bad_timers(engine, timer, kind, words):
    problems = refused(engine, make(timer=timer, kind=kind))
    errors = [p for p in problems if p.severity == "error"]
    assert [p.element_id for p in errors] == ["late"] and words in errors[0].message_ru
    assert_russian(errors[0])


def test_a_script_forbidden_by_the_sandbox(engine):
    xml = make()[1].replace('<bpmn:userTask id="t" name="Задача" ' + GOOD_TASK + '>',
                            '<bpmn:scriptTask id="t" name="Задача" scriptFormat="python">') \
        .replace("</bpmn:userTask>", "<bpmn:script>import os</bpmn:script></bpmn:scriptTask>")
    problems = refused(engine, ("p.bpmn", xml))
    assert [p.element_id for p in problems] == ["t"] and "Скрипт задачи «Задача»" in problems[0].message_ru


def test_role_warnings_are_reported_in_russian_and_do_not_refuse(engine):
    result = engine.repository.deploy([make('camunda:candidateGroups="no_such_role"')], lint=True)
    assert [w.element_id for w in result.warnings] == ["t"]
    assert "«no_such_role»" in result.warnings[0].message_ru and "роль" in result.warnings[0].message_ru
    nobody = engine.repository.validate([make("")], lint=True)
    assert [p.element_id for p in nobody] == ["t"] and "admin" in nobody[0].message_ru


ERROR_RULES = sorted(rule for rule, severity in RECOMMENDED.items() if severity == "error")


@pytest.mark.parametrize("rule", ERROR_RULES)
def test_each_lint_error_refuses_the_deployment(engine, rule):
    bad, ids, _good = CASES[rule]
    problems = refused(engine, ("lint.bpmn", bad))
    lint_errors = [p for p in problems if p.rule == rule]
    assert {p.element_id for p in lint_errors} == ids
    assert all(p.severity == "error" and p.file == "lint.bpmn" for p in lint_errors)
    for problem in lint_errors:
        assert_russian(problem)
    assert stored(engine) == (0, 0)


def test_lint_is_off_by_default_so_the_command_line_and_foreign_files_behave_as_before(engine):
    bad, _ids, _good = CASES["label-required"]
    assert all(p.rule is None for p in engine.repository.validate([("x.bpmn", bad)]))
    assert any(p.rule == "label-required" for p in engine.repository.validate([("x.bpmn", bad)], lint=True))


def test_engine_problems_come_before_lint_problems(engine):
    problems = engine.repository.validate([make(target="nowhere")], lint=True)
    rules = [p.rule for p in problems]
    assert rules[0] is None and rules == sorted(rules, key=lambda r: r is not None)


def test_form_problems_are_in_russian_too(engine):
    problems = refused(engine, ("bad.json", '{"components": [{"key": "a"}, {"key": "a"}]}'),
                       ("worse.json", "{nope"), ("shape.json", "[]"))
    assert len(problems) == 3 and all(p.message_ru for p in problems)
    assert "встречается дважды" in problems[0].message_ru


# -- the modeler endpoints --------------------------------------------------------------------------------------

def test_the_modeler_validates_with_lint_and_russian_messages(app, method):  # noqa: F811
    xml = make(target="nowhere")[1].replace(' name="Конец"', "")
    problems = post_json(method, "/modeler/validate", {"xml": xml}).get_json()
    assert problems[0]["element_id"] == "s" and problems[0]["rule"] is None
    assert CYRILLIC.search(problems[0]["message_ru"]) and problems[0]["message"] != problems[0]["message_ru"]
    assert [(p["rule"], p["element_id"]) for p in problems[1:]] == [("label-required", "e")]
    assert "Конечное событие e не имеет названия" in problems[1]["message_ru"]
    assert all(set(p) == {"severity", "message", "message_ru", "element_id", "rule"} for p in problems)


def test_the_modeler_refuses_a_diagram_with_lint_errors_and_stores_nothing(app, method):  # noqa: F811
    bad, _ids, _good = CASES["no-implicit-end"]
    response = post_json(method, "/modeler/deploy", {"xml": bad, "comment": "сломано"})
    assert response.status_code == 422
    problems = response.get_json()["problems"]
    implicit = [p for p in problems if p["rule"] == "no-implicit-end"]
    assert {p["element_id"] for p in implicit} == {"t", "b"}
    assert all(CYRILLIC.search(p["message_ru"]) and p["severity"] == "error" for p in implicit)
    assert versions(app, "p") == []
