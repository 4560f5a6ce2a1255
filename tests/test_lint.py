"""The bpmnlint recommended rules on the XML: each rule finds what it should (with the element id, bpmnlint's
severity and a Russian message) and stays quiet on the correct variant."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.bpmn import lint as bpmn_lint
from engine.bpmn.lint import RECOMMENDED, RULES, lint

WORKFLOWS = Path(__file__).resolve().parent.parent / "workflows"
CYRILLIC = re.compile("[а-яА-Я]")
NAMESPACES = ('xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" '
              'xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" '
              'xmlns:dc="http://www.omg.org/spec/DD/20100524/DC" xmlns:di="http://www.omg.org/spec/DD/20100524/DI" '
              'xmlns:camunda="http://camunda.org/schema/1.0/bpmn"')


def definitions(inner: str) -> str:
    return f'<?xml version="1.0" encoding="UTF-8"?><definitions {NAMESPACES} id="d" targetNamespace="t">{inner}' \
           f'</definitions>'


def process(body: str, extra: str = "") -> str:
    return definitions(f'<process id="p" name="Процесс" isExecutable="true">{body}</process>{extra}')


def flow(flow_id: str, source: str, target: str, condition: str | None = None, name: str | None = None) -> str:
    label = f' name="{name}"' if name else ""
    if condition is None:
        return f'<sequenceFlow id="{flow_id}"{label} sourceRef="{source}" targetRef="{target}"/>'
    return (f'<sequenceFlow id="{flow_id}"{label} sourceRef="{source}" targetRef="{target}">'
            f'<conditionExpression>{condition}</conditionExpression></sequenceFlow>')


# a correct frame: start -> work -> end
START = '<startEvent id="s" name="Начало"/>'
END = '<endEvent id="e" name="Конец"/>'
LINE = START + flow("f1", "s", "t") + '<task id="t" name="Работа"/>' + flow("f2", "t", "e") + END


def found(xml: str, rule: str) -> list:
    return [p for p in lint(xml, "x.bpmn") if p.rule == rule]


def shape(element_id: str, x: int, y: int, w: int = 100, h: int = 80, expanded: bool | None = None) -> str:
    attr = "" if expanded is None else f' isExpanded="{str(expanded).lower()}"'
    return (f'<bpmndi:BPMNShape id="{element_id}_di" bpmnElement="{element_id}"{attr}>'
            f'<dc:Bounds x="{x}" y="{y}" width="{w}" height="{h}"/></bpmndi:BPMNShape>')


def edge(element_id: str) -> str:
    return (f'<bpmndi:BPMNEdge id="{element_id}_di" bpmnElement="{element_id}"><di:waypoint x="0" y="0"/>'
            f'<di:waypoint x="10" y="0"/></bpmndi:BPMNEdge>')


def diagram(plane_element: str, *items: str) -> str:
    return (f'<bpmndi:BPMNDiagram id="dia"><bpmndi:BPMNPlane id="plane" bpmnElement="{plane_element}">'
            f'{"".join(items)}</bpmndi:BPMNPlane></bpmndi:BPMNDiagram>')


LINE_DI = diagram("p", shape("s", 100, 100, 36, 36), shape("t", 200, 80), shape("e", 400, 100, 36, 36),
                  edge("f1"), edge("f2"))

GATEWAY_FORK = (START + flow("f1", "s", "g") + '<exclusiveGateway id="g" name="Решение?" default="fb"/>'
                + flow("fa", "g", "a", "${ok}", name="Да") + flow("fb", "g", "b") + '<task id="a" name="А"/>'
                + '<task id="b" name="Б"/>' + flow("fa2", "a", "e") + flow("fb2", "b", "e2") + END
                + '<endEvent id="e2" name="Конец 2"/>')

# rule -> (diagram with the problem, ids reported, the correct variant)
CASES = {
    "ad-hoc-sub-process": (
        process(START + flow("f1", "s", "a") + '<adHocSubProcess id="a" name="Шаги"><startEvent id="as"/>'
                '<task id="x" name="X"/><endEvent id="ae"/><intermediateCatchEvent id="ic" name="Ждать">'
                '<timerEventDefinition/></intermediateCatchEvent></adHocSubProcess>' + flow("f2", "a", "e") + END),
        {"as", "ae", "ic"},
        process(START + flow("f1", "s", "a") + '<adHocSubProcess id="a" name="Шаги"><task id="x" name="X"/>'
                '<task id="y" name="Y"/></adHocSubProcess>' + flow("f2", "a", "e") + END)),
    "conditional-flows": (
        process(GATEWAY_FORK.replace(' default="fb"', "")
                + flow("f9", "t9", "e", "${x}") + flow("f10", "t9", "e") + '<task id="t9" name="Т9"/>'),
        {"fb", "f10"},
        process(GATEWAY_FORK)),
    "end-event-required": (
        process(START + flow("f1", "s", "t") + '<task id="t" name="Работа"/>' + flow("f2", "t", "sp")
                + '<subProcess id="sp"><startEvent id="ss"/></subProcess>'),
        {"p", "sp"},
        process(LINE)),
    "event-based-gateway": (
        process(START + flow("f1", "s", "g") + '<eventBasedGateway id="g"/>' + flow("f2", "g", "c", "${x}")
                + '<intermediateCatchEvent id="c" name="Ждать"><timerEventDefinition/></intermediateCatchEvent>'
                + flow("f3", "c", "e") + END),
        {"g", "f2"},
        process(START + flow("f1", "s", "g") + '<eventBasedGateway id="g"/>' + flow("f2", "g", "c")
                + flow("f4", "g", "m") + '<intermediateCatchEvent id="c" name="Ждать"><timerEventDefinition/>'
                '</intermediateCatchEvent><intermediateCatchEvent id="m" name="Письмо"><messageEventDefinition/>'
                '</intermediateCatchEvent>' + flow("f3", "c", "e") + flow("f5", "m", "e") + END)),
    "event-sub-process-typed-start-event": (
        process(LINE + '<subProcess id="ev" triggeredByEvent="true"><startEvent id="es" name="Старт"/>'
                + flow("fe", "es", "ee") + '<endEvent id="ee" name="Стоп"/></subProcess>'),
        {"es"},
        process(LINE + '<subProcess id="ev" triggeredByEvent="true"><startEvent id="es" name="Старт">'
                '<timerEventDefinition/></startEvent>' + flow("fe", "es", "ee") + '<endEvent id="ee" name="Стоп"/>'
                '</subProcess>')),
    "fake-join": (
        process(GATEWAY_FORK.replace('targetRef="e2"', 'targetRef="e"')),
        {"e"},
        process(GATEWAY_FORK)),
    "global": (
        process(LINE, '<message id="m1"/><signal id="sg1" name="тревога"/><signal id="sg2" name="тревога"/>'),
        {"m1", "sg1", "sg2"},
        process(START + flow("f1", "s", "c") + '<intermediateCatchEvent id="c" name="Письмо">'
                '<messageEventDefinition messageRef="m1"/></intermediateCatchEvent>' + flow("f2", "c", "e") + END,
                '<message id="m1" name="письмо"/>')),
    "label-required": (
        definitions('<collaboration id="c"><participant id="pool" processRef="p"/></collaboration>'
                    '<process id="p" isExecutable="true"><laneSet id="ls"><lane id="lane"/></laneSet>'
                    + GATEWAY_FORK.replace(' name="Решение?"', "").replace(' name="Да"', "")
                    .replace('<task id="a" name="А"/>', '<task id="a"/>') + '</process>'),
        {"pool", "lane", "g", "fa", "a"},
        definitions('<collaboration id="c"><participant id="pool" name="Пул" processRef="p"/></collaboration>'
                    '<process id="p" isExecutable="true"><laneSet id="ls"><lane id="lane" name="Роль"/></laneSet>'
                    + START + flow("f1", "s", "j") + '<parallelGateway id="j"/>' + flow("f2", "j", "x")
                    + '<exclusiveGateway id="x"/>' + flow("f3", "x", "sp") + '<subProcess id="sp"/>'
                    + flow("f4", "sp", "e") + END + '</process>')),
    "link-event": (
        process(LINE + '<intermediateThrowEvent id="lt" name="К А"><linkEventDefinition name="A"/>'
                '</intermediateThrowEvent><intermediateThrowEvent id="ln" name="Без имени"><linkEventDefinition/>'
                '</intermediateThrowEvent><intermediateThrowEvent id="bt" name="К Б"><linkEventDefinition name="B"/>'
                '</intermediateThrowEvent><intermediateCatchEvent id="bc1" name="Б1"><linkEventDefinition name="B"/>'
                '</intermediateCatchEvent><intermediateCatchEvent id="bc2" name="Б2"><linkEventDefinition name="B"/>'
                '</intermediateCatchEvent>'),
        {"lt", "ln", "bc1", "bc2"},
        process(LINE + '<intermediateThrowEvent id="lt" name="К А"><linkEventDefinition name="A"/>'
                '</intermediateThrowEvent><intermediateCatchEvent id="lc" name="А"><linkEventDefinition name="A"/>'
                '</intermediateCatchEvent>')),
    "no-bpmndi": (
        process(LINE, diagram("p", shape("s", 100, 100, 36, 36), shape("e", 400, 100, 36, 36), edge("f1"))),
        {"t", "f2"},
        process(LINE, LINE_DI)),
    "no-complex-gateway": (
        process(START + flow("f1", "s", "g") + '<complexGateway id="g" name="Сложно"/>' + flow("f2", "g", "e")
                + END),
        {"g"},
        process(LINE)),
    "no-disconnected": (
        process(LINE + '<task id="lonely" name="Одна"/><exclusiveGateway id="gw"/>'),
        {"lonely", "gw"},
        process(LINE + '<task id="undo" name="Отмена" isForCompensation="true"/>'
                '<subProcess id="ev" triggeredByEvent="true"><startEvent id="es" name="Старт">'
                '<timerEventDefinition/></startEvent>' + flow("fe", "es", "ee") + '<endEvent id="ee" name="Стоп"/>'
                '</subProcess>')),
    "no-duplicate-sequence-flows": (
        process(LINE + flow("f2b", "t", "e")),
        {"f2b", "t", "e"},
        process(START + flow("f1", "s", "t") + '<task id="t" name="Работа" default="f2"/>' + flow("f2", "t", "e")
                + flow("f3", "t", "e", "${x}") + END)),
    "no-gateway-join-fork": (
        process(GATEWAY_FORK + '<startEvent id="s2" name="Начало 2"/>' + flow("f0", "s2", "g")),
        {"g"},
        process(GATEWAY_FORK)),
    "no-implicit-split": (
        process(LINE + flow("f3", "t", "e2") + '<endEvent id="e2" name="Конец 2"/>'),
        {"t"},
        process(START + flow("f1", "s", "t") + '<task id="t" name="Работа" default="f2"/>' + flow("f2", "t", "e")
                + flow("f3", "t", "e2", "${x}") + END + '<endEvent id="e2" name="Конец 2"/>')),
    "no-implicit-end": (
        process(START + flow("f1", "s", "t") + '<task id="t" name="Работа"/>'
                + '<boundaryEvent id="b" name="Срок" attachedToRef="t"><timerEventDefinition/></boundaryEvent>'),
        {"t", "b"},
        process(LINE + '<intermediateThrowEvent id="lt" name="К А"><linkEventDefinition name="A"/>'
                '</intermediateThrowEvent>' + flow("fl", "lc", "e") + '<intermediateCatchEvent id="lc" name="А">'
                '<linkEventDefinition name="A"/></intermediateCatchEvent>')),
    "no-implicit-start": (
        process(LINE + '<task id="orphan" name="Сирота"/>' + flow("fo", "orphan", "e")),
        {"orphan"},
        process(LINE + '<boundaryEvent id="b" name="Срок" attachedToRef="t"><timerEventDefinition/>'
                '</boundaryEvent>' + flow("fb", "b", "e"))),
    "no-inclusive-gateway": (
        process(GATEWAY_FORK.replace("exclusiveGateway", "inclusiveGateway")),
        {"g"},
        process(GATEWAY_FORK)),
    "no-overlapping-elements": (
        definitions('<collaboration id="c"><participant id="pool" name="Пул" processRef="p"/></collaboration>'
                    f'<process id="p" name="Процесс" isExecutable="true">{LINE}</process>'
                    + diagram("c", shape("pool", 50, 50, 600, 200), shape("s", 100, 100, 36, 36),
                              shape("t", 120, 90), shape("e", 700, 100, 36, 36), edge("f1"), edge("f2"))),
        {"s", "t", "e"},
        definitions('<collaboration id="c"><participant id="pool" name="Пул" processRef="p"/></collaboration>'
                    f'<process id="p" name="Процесс" isExecutable="true">{LINE}'
                    '<boundaryEvent id="b" name="Срок" attachedToRef="t"><timerEventDefinition/></boundaryEvent>'
                    + flow("fb", "b", "e") + '</process>'
                    + diagram("c", shape("pool", 50, 50, 600, 200), shape("s", 100, 100, 36, 36),
                              shape("t", 200, 80), shape("b", 232, 142, 36, 36), shape("e", 400, 100, 36, 36),
                              edge("f1"), edge("f2"), edge("fb")))),
    "single-blank-start-event": (
        process(LINE + '<startEvent id="s2" name="Еще начало"/>' + flow("f0", "s2", "t")),
        {"p"},
        process(LINE + '<startEvent id="s2" name="По таймеру"><timerEventDefinition/></startEvent>'
                + flow("f0", "s2", "t"))),
    "single-event-definition": (
        process(LINE + '<startEvent id="s2" name="Двойное"><timerEventDefinition/><messageEventDefinition/>'
                '</startEvent>' + flow("f0", "s2", "t")),
        {"s2"},
        process(LINE + '<startEvent id="s2" name="По таймеру"><timerEventDefinition/></startEvent>'
                + flow("f0", "s2", "t"))),
    "start-event-required": (
        process('<task id="t" name="Работа"/>' + flow("f2", "t", "e") + END),
        {"p"},
        process(LINE)),
    "sub-process-blank-start-event": (
        process(START + flow("f1", "s", "sp") + '<subProcess id="sp" name="Этап"><startEvent id="ss" name="Старт">'
                '<timerEventDefinition/></startEvent>' + flow("fs", "ss", "se") + '<endEvent id="se" name="Стоп"/>'
                '</subProcess>' + flow("f2", "sp", "e") + END),
        {"ss"},
        process(START + flow("f1", "s", "sp") + '<subProcess id="sp" name="Этап"><startEvent id="ss" name="Старт"/>'
                + flow("fs", "ss", "se") + '<endEvent id="se" name="Стоп"/></subProcess>' + flow("f2", "sp", "e")
                + END)),
    "superfluous-gateway": (
        process(START + flow("f1", "s", "g") + '<exclusiveGateway id="g"/>' + flow("f2", "g", "e") + END),
        {"g"},
        process(GATEWAY_FORK)),
    "superfluous-label": (
        process(START + flow("f1", "s", "g", name="Сразу") + '<exclusiveGateway id="g" name="Решение?" default="fb"/>'
                + flow("fa", "g", "j", "${ok}", name="Да") + flow("fb", "g", "j", name="Иначе")
                + '<exclusiveGateway id="j" name="Слияние"/>' + flow("f3", "j", "e") + END),
        {"f1", "fb", "j"},
        process(GATEWAY_FORK)),
    "superfluous-termination": (
        process(START + flow("f1", "s", "t") + '<task id="t" name="Работа"/>' + flow("f2", "t", "e")
                + '<endEvent id="e" name="Стоп всего"><terminateEventDefinition/></endEvent>'),
        {"e"},
        process(GATEWAY_FORK.replace('<endEvent id="e2" name="Конец 2"/>',
                                     '<endEvent id="e2" name="Стоп всего"><terminateEventDefinition/></endEvent>'))),
}


def test_every_recommended_rule_is_implemented_and_tested():
    assert set(RULES) == set(RECOMMENDED) == set(CASES)
    assert len(RECOMMENDED) == 26
    assert {name for name, severity in RECOMMENDED.items() if severity == "warning"} == {
        "fake-join", "global", "no-inclusive-gateway", "no-overlapping-elements", "superfluous-gateway",
        "superfluous-label", "superfluous-termination"}


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_reports_the_element_with_a_russian_message(rule):
    bad, ids, _good = CASES[rule]
    problems = found(bad, rule)
    assert {p.element_id for p in problems} == ids, [str(p) for p in problems]
    for problem in problems:
        assert problem.severity == RECOMMENDED[rule] and problem.file == "x.bpmn"
        assert problem.message and not CYRILLIC.search(problem.message.split("<")[0] or "x")
        assert problem.message_ru and CYRILLIC.search(problem.message_ru)
        assert problem.to_dict()["rule"] == rule and problem.to_dict()["message_ru"] == problem.message_ru


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_accepts_the_correct_variant(rule):
    _bad, _ids, good = CASES[rule]
    assert found(good, rule) == []


def test_a_correct_diagram_with_di_has_no_problems_at_all():
    assert lint(process(LINE, LINE_DI)) == []


def test_messages_name_the_element():
    problem = found(process(LINE.replace('name="Работа"', 'name="Проверка сигнала"') + flow("f3", "t", "e3")
                            + '<endEvent id="e3" name="Конец 3"/>'), "no-implicit-split")[0]
    assert "«Проверка сигнала»" in problem.message_ru and "параллельный шлюз" in problem.message_ru


def test_connections_come_from_flows_or_from_incoming_outgoing_children():
    # Camunda Modeler writes both; a flow node listing a flow only as a child is connected too
    xml = process('<startEvent id="s" name="Начало"><outgoing>f1</outgoing></startEvent>'
                  '<task id="t" name="Работа"><incoming>f1</incoming><outgoing>f2</outgoing></task>'
                  + flow("f1", "s", "t") + flow("f2", "t", "e") + END)
    assert [p for p in lint(xml) if p.rule != "no-bpmndi"] == []


def test_an_empty_pool_needs_no_start_or_end_event():
    xml = definitions('<collaboration id="c"><participant id="pool" name="Пул" processRef="p"/>'
                      '<participant id="other" name="Прокуратура" processRef="q"/></collaboration>'
                      f'<process id="p" name="Процесс" isExecutable="true">{LINE}</process>'
                      '<process id="q" isExecutable="false"><laneSet id="ls"><lane id="l" name="Прокурор"/></laneSet>'
                      '</process>')
    rules = {p.rule for p in lint(xml) if p.element_id == "q"}
    assert rules == set()
    unreferenced = process(LINE, '<process id="q" isExecutable="false"/>')
    assert {p.rule for p in lint(unreferenced) if p.element_id == "q"} == {"start-event-required",
                                                                           "end-event-required"}


def test_drill_down_planes_count_for_no_bpmndi():
    body = START + flow("f1", "s", "sp") + ('<subProcess id="sp" name="Этап"><startEvent id="ss" name="Старт"/>'
                                            + flow("fs", "ss", "se") + '<endEvent id="se" name="Стоп"/>'
                                            '</subProcess>') + flow("f2", "sp", "e") + END
    main = diagram("p", shape("s", 0, 0, 36, 36), shape("sp", 100, 0, expanded=False), shape("e", 300, 0, 36, 36),
                   edge("f1"), edge("f2"))
    drill = ('<bpmndi:BPMNDiagram id="dia2"><bpmndi:BPMNPlane id="plane2" bpmnElement="sp">'
             + shape("ss", 0, 0, 36, 36) + shape("se", 200, 0, 36, 36) + edge("fs")
             + '</bpmndi:BPMNPlane></bpmndi:BPMNDiagram>')
    assert found(process(body, main + drill), "no-bpmndi") == []
    assert {p.element_id for p in found(process(body, main), "no-bpmndi")} == {"ss", "se", "fs"}


def test_unreadable_files_are_one_problem_and_entities_are_not_resolved():
    broken = lint("<definitions", "b.bpmn")
    assert len(broken) == 1 and broken[0].severity == "error" and "XML" in broken[0].message_ru
    assert "BPMN" in lint("<html/>")[0].message_ru
    xxe = ('<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           + process(LINE.replace('name="Работа"', 'name="&x;"')).split("?>", 1)[1])
    problems = lint(xxe)
    assert all("root:" not in (p.message_ru or "") for p in problems)


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.bpmn")), ids=lambda p: p.name)
def test_shipped_workflows_have_no_lint_errors(path):
    problems = lint(path.read_text(encoding="utf-8"), path.name)
    assert [str(p) for p in problems if p.severity == "error"] == []
    assert {p.rule for p in problems} <= {"no-inclusive-gateway", "superfluous-label"}


def test_lint_tree_is_what_the_repository_uses():
    from lxml import etree

    tree = etree.fromstring(process(LINE).encode())
    assert bpmn_lint.lint_tree(tree, "a.bpmn") == lint(process(LINE), "a.bpmn")
