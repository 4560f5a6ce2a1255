"""Lint rules for BPMN diagrams: the `bpmnlint:recommended` rule set, implemented on the XML (no JavaScript).

`lint(xml_text, file=None)` returns `Problem`s with the bpmnlint rule id (`Problem.rule`), the element the rule
reports on (`Problem.element_id`), bpmnlint's severity (error → "error", warn → "warning"), bpmnlint's English
message and a Russian message for the methodologist (`Problem.message_ru`). It works on the XML alone, so drafts
the engine cannot parse yet are linted too. The XML parser resolves no entities and opens no network.

The rules and their severities follow the recommended configuration of bpmnlint 11 (main branch), 26 rules:

    ad-hoc-sub-process error             no-disconnected error             no-overlapping-elements warn
    conditional-flows error              no-duplicate-sequence-flows error single-blank-start-event error
    end-event-required error             no-gateway-join-fork error        single-event-definition error
    event-based-gateway error            no-implicit-split error           start-event-required error
    event-sub-process-typed-start-event  no-implicit-end error             sub-process-blank-start-event error
      error                              no-implicit-start error           superfluous-gateway warn
    fake-join warn                       no-inclusive-gateway warn         superfluous-label warn
    global warn                          no-bpmndi error                   superfluous-termination warn
    label-required error                 no-complex-gateway error
    link-event error

Release 11.7 of bpmnlint had 25 of them (no `superfluous-label`) and `no-inclusive-gateway` as an error; the
current configuration makes inclusive gateways a warning, which this engine follows: it executes them, and the
shipped SOP diagrams use them.

Adaptations, each deliberate:

- Connections come from the sequence flows' `sourceRef`/`targetRef` (what the engine executes) together with the
  `bpmn:incoming`/`bpmn:outgoing` children (all bpmnlint reads). Camunda Modeler writes both, so its diagrams lint
  the same; hand-written diagrams that omit the children are not reported as disconnected.
- Problems about a whole process (`start-event-required`, `end-event-required`, `single-blank-start-event`) name
  the process id, as bpmnlint does; the modeler page shows them on the pool whose participant refers to it.
- A process without flow nodes that a participant refers to (a pool drawn with lanes only, or an external party
  drawn as an empty pool) is not required to have start and end events: nothing in it runs.
- `global`: a message, signal, error or escalation without a `name` attribute is reported like one with an empty
  name (bpmnlint only catches the empty one); Camunda 7 correlates messages and signals by name.
- `superfluous-label`: bpmnlint's helper for "conditional flow" is broken in its first version; this follows the
  behaviour its tests describe: a name on a joining gateway, on a flow without condition or on a default flow is
  superfluous.
- `no-gateway-join-fork` is reported under that id (bpmnlint reports it under `no-gateway-fork-join` by mistake).
- `no-bpmndi` looks at every diagram and plane of the file, so the drill-down planes Camunda Modeler writes for
  collapsed sub-processes count.

Nothing of the recommended set is left out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from lxml import etree

from ..errors import Problem

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
BPMNDI = "http://www.omg.org/spec/BPMN/20100524/DI"
DC = "http://www.omg.org/spec/DD/20100524/DC"

RECOMMENDED: dict[str, str] = {
    "ad-hoc-sub-process": "error",
    "conditional-flows": "error",
    "end-event-required": "error",
    "event-based-gateway": "error",
    "event-sub-process-typed-start-event": "error",
    "fake-join": "warning",
    "global": "warning",
    "label-required": "error",
    "link-event": "error",
    "no-bpmndi": "error",
    "no-complex-gateway": "error",
    "no-disconnected": "error",
    "no-duplicate-sequence-flows": "error",
    "no-gateway-join-fork": "error",
    "no-implicit-split": "error",
    "no-implicit-end": "error",
    "no-implicit-start": "error",
    "no-inclusive-gateway": "warning",
    "no-overlapping-elements": "warning",
    "single-blank-start-event": "error",
    "single-event-definition": "error",
    "start-event-required": "error",
    "sub-process-blank-start-event": "error",
    "superfluous-gateway": "warning",
    "superfluous-label": "warning",
    "superfluous-termination": "warning",
}

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True, huge_tree=False)

TASKS = {"task", "userTask", "serviceTask", "scriptTask", "sendTask", "receiveTask", "manualTask",
         "businessRuleTask"}
SUB_PROCESSES = {"subProcess", "adHocSubProcess", "transaction"}
ACTIVITIES = TASKS | SUB_PROCESSES | {"callActivity"}
CATCH_EVENTS = {"startEvent", "intermediateCatchEvent", "boundaryEvent"}
THROW_EVENTS = {"endEvent", "intermediateThrowEvent"}
EVENTS = CATCH_EVENTS | THROW_EVENTS
GATEWAYS = {"exclusiveGateway", "inclusiveGateway", "parallelGateway", "eventBasedGateway", "complexGateway"}
FLOW_NODES = ACTIVITIES | EVENTS | GATEWAYS
FLOW_ELEMENTS = FLOW_NODES | {"sequenceFlow", "dataObject", "dataObjectReference", "dataStoreReference"}
ARTIFACTS = {"textAnnotation", "association", "group"}
GLOBALS = {"message", "signal", "error", "escalation"}

# Russian names of element types, for messages ("Пользовательская задача «Проверка»").
TYPE_RU = {
    "task": "задача", "userTask": "пользовательская задача", "serviceTask": "сервисная задача",
    "scriptTask": "задача-скрипт", "sendTask": "задача отправки", "receiveTask": "задача получения",
    "manualTask": "ручная задача", "businessRuleTask": "задача бизнес-правила", "callActivity": "вызов процесса",
    "subProcess": "подпроцесс", "adHocSubProcess": "нерегламентированный подпроцесс", "transaction": "транзакция",
    "startEvent": "начальное событие", "endEvent": "конечное событие",
    "intermediateCatchEvent": "промежуточное событие", "intermediateThrowEvent": "промежуточное событие",
    "boundaryEvent": "граничное событие", "exclusiveGateway": "исключающий шлюз",
    "inclusiveGateway": "включающий шлюз", "parallelGateway": "параллельный шлюз",
    "eventBasedGateway": "шлюз по событиям", "complexGateway": "сложный шлюз", "sequenceFlow": "поток",
    "participant": "пул", "lane": "дорожка", "process": "процесс", "message": "сообщение", "signal": "сигнал",
    "error": "ошибка", "escalation": "эскалация", "textAnnotation": "текстовая аннотация",
    "association": "ассоциация", "group": "группа", "dataObjectReference": "объект данных",
    "dataStoreReference": "хранилище данных", "messageFlow": "поток сообщений", "dataObject": "объект данных",
}


def _local(element) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def _is_bpmn(element) -> bool:
    return isinstance(element.tag, str) and etree.QName(element).namespace == BPMN


@dataclass(eq=False)
class Node:
    """A BPMN element with what the rules need: its type, name, container and connections."""

    element: etree._Element
    kind: str
    id: str
    name: str
    container: Node | None = None
    incoming: list[Node] = field(default_factory=list)
    outgoing: list[Node] = field(default_factory=list)
    children: list[Node] = field(default_factory=list)  # flow elements, for containers
    source: Node | None = None  # sequence flows
    target: Node | None = None

    @property
    def event_definitions(self) -> list[str]:
        return [_local(c) for c in self.element if _is_bpmn(c) and _local(c).endswith("EventDefinition")]

    def attr(self, name: str, default: str | None = None) -> str | None:
        return self.element.get(name, default)

    @property
    def triggered_by_event(self) -> bool:
        return self.kind in SUB_PROCESSES and (self.attr("triggeredByEvent") or "").lower() == "true"

    @property
    def for_compensation(self) -> bool:
        return (self.attr("isForCompensation") or "").lower() == "true"

    @property
    def condition(self) -> str | None:
        """The condition body of a sequence flow ("" for an empty but present condition), None without one."""
        for child in self.element:
            if _is_bpmn(child) and _local(child) == "conditionExpression":
                return (child.text or "").strip()
        return None

    @property
    def default(self) -> str | None:
        return self.attr("default")

    def is_default(self) -> bool:
        return self.kind == "sequenceFlow" and self.source is not None and self.source.default == self.id

    def describe(self, capital: bool = False) -> str:
        kind = TYPE_RU.get(self.kind, "элемент")
        if self.kind in SUB_PROCESSES and self.triggered_by_event:
            kind = "событийный подпроцесс"
        text = f"{kind} «{self.name}»" if self.name else f"{kind} {self.id}"
        return text[0].upper() + text[1:] if capital else text

    def quoted(self) -> str:
        return f"«{self.name}»" if self.name else self.id

    def ref(self) -> str:
        """For "элемент ...": the name (or id) and the type, so no grammatical agreement is needed."""
        kind = TYPE_RU.get(self.kind, "элемент")
        return f"{self.quoted()} ({'событийный подпроцесс' if self.triggered_by_event else kind})"


@dataclass
class Model:
    """A BPMN file read for linting: its root elements, containers, flow elements and diagram interchange."""

    root: etree._Element
    nodes: dict[str, Node] = field(default_factory=dict)
    processes: list[Node] = field(default_factory=list)
    participants: list[Node] = field(default_factory=list)
    lanes: list[Node] = field(default_factory=list)
    globals: list[Node] = field(default_factory=list)
    others: list[Node] = field(default_factory=list)  # artifacts, message flows, data objects
    shapes: dict[str, etree._Element] = field(default_factory=dict)  # bpmnElement -> BPMNShape / BPMNEdge
    referenced_by_participant: set[str] = field(default_factory=set)

    def containers(self) -> Iterator[Node]:
        """Every process and sub-process, outermost first."""
        stack = list(self.processes)
        while stack:
            container = stack.pop(0)
            yield container
            stack.extend(c for c in container.children if c.kind in SUB_PROCESSES)

    def flow_elements(self) -> Iterator[Node]:
        for container in self.containers():
            yield from container.children


def read(root: etree._Element) -> Model:
    model = Model(root)

    def add(node: Node) -> Node:
        if node.id:
            model.nodes.setdefault(node.id, node)
        return node

    def node(element, container=None) -> Node:
        return add(Node(element, _local(element), element.get("id") or "", (element.get("name") or "").strip(),
                        container))

    def lanes(lane_set) -> None:
        for lane in lane_set:
            if _is_bpmn(lane) and _local(lane) == "lane":
                model.lanes.append(node(lane))
                for child in lane:
                    if _is_bpmn(child) and _local(child) == "childLaneSet":
                        lanes(child)

    def fill(container: Node) -> None:
        for child in container.element:
            if not _is_bpmn(child):
                continue
            kind = _local(child)
            if kind in FLOW_ELEMENTS:
                item = node(child, container)
                container.children.append(item)
                if kind in SUB_PROCESSES:
                    fill(item)
            elif kind in ARTIFACTS:
                model.others.append(node(child, container))
            elif kind == "laneSet":
                lanes(child)

    for child in root:
        if not _is_bpmn(child):
            continue
        kind = _local(child)
        if kind == "process":
            process = node(child)
            model.processes.append(process)
            fill(process)
        elif kind == "collaboration":
            for item in child:
                if not _is_bpmn(item):
                    continue
                if _local(item) == "participant":
                    participant = node(item)
                    model.participants.append(participant)
                    if item.get("processRef"):
                        model.referenced_by_participant.add(item.get("processRef"))
                elif _local(item) in ARTIFACTS or _local(item) == "messageFlow":
                    model.others.append(node(item))
        elif kind in GLOBALS:
            model.globals.append(node(child))

    # connections: sourceRef/targetRef of every sequence flow, plus explicit incoming/outgoing children
    for flow in [f for f in model.flow_elements() if f.kind == "sequenceFlow"]:
        flow.source = model.nodes.get(flow.attr("sourceRef") or "")
        flow.target = model.nodes.get(flow.attr("targetRef") or "")
        if flow.source is not None and flow not in flow.source.outgoing:
            flow.source.outgoing.append(flow)
        if flow.target is not None and flow not in flow.target.incoming:
            flow.target.incoming.append(flow)
    for item in list(model.flow_elements()):
        if item.kind not in FLOW_NODES:
            continue
        for child in item.element:
            if _is_bpmn(child) and _local(child) in ("incoming", "outgoing"):
                flow = model.nodes.get((child.text or "").strip())
                if flow is None or flow.kind != "sequenceFlow":
                    continue
                links = item.incoming if _local(child) == "incoming" else item.outgoing
                if flow not in links:
                    links.append(flow)

    for diagram in root:
        if _is_bpmn(diagram) or _local(diagram) != "BPMNDiagram":
            continue
        for plane in diagram:
            if _local(plane) != "BPMNPlane":
                continue
            for shape in plane:
                ref = shape.get("bpmnElement") if isinstance(shape.tag, str) else None
                if ref and _local(shape) in ("BPMNShape", "BPMNEdge"):
                    model.shapes.setdefault(ref, shape)
    return model


# -- reporting --------------------------------------------------------------------------------------------------

@dataclass
class Reporter:
    file: str | None
    problems: list[Problem] = field(default_factory=list)
    rule: str = ""
    _seen: set = field(default_factory=set)

    def __call__(self, element_id: str, message: str, message_ru: str) -> None:
        key = (self.rule, element_id, message)
        if key in self._seen:
            return
        self._seen.add(key)
        self.problems.append(Problem(RECOMMENDED[self.rule], message, element_id=element_id or None, file=self.file,
                                     rule=self.rule, message_ru=message_ru))


Rule = Callable[[Model, Reporter], None]
RULES: dict[str, Rule] = {}


def rule(name: str) -> Callable[[Rule], Rule]:
    def register(function: Rule) -> Rule:
        RULES[name] = function
        return function
    return register


def _nodes(model: Model, kinds: set[str]) -> Iterator[Node]:
    return (n for n in model.flow_elements() if n.kind in kinds)


def _scope(container: Node) -> str:
    return "подпроцесс" if container.kind in SUB_PROCESSES else "процесс"


# -- the rules --------------------------------------------------------------------------------------------------

@rule("ad-hoc-sub-process")
def _ad_hoc_sub_process(model: Model, report: Reporter) -> None:
    for container in model.containers():
        if container.kind != "adHocSubProcess":
            continue
        for child in container.children:
            if child.kind in ("startEvent", "endEvent"):
                what = "A <Start Event>" if child.kind == "startEvent" else "An <End Event>"
                report(child.id, f"{what} is not allowed in <Ad Hoc Sub Process>",
                       f"Элемент {child.ref()} не допускается внутри нерегламентированного подпроцесса "
                       f"{container.quoted()}: удалите его, шаги такого подпроцесса выполняются в любом порядке "
                       f"без начала и конца.")
            if child.kind == "intermediateCatchEvent" and not child.outgoing:
                report(child.id, "An intermediate catch event inside <Ad Hoc Sub Process> must have an outgoing "
                                 "sequence flow",
                       f"Элемент {child.ref()} внутри нерегламентированного подпроцесса должен иметь исходящий "
                       f"поток: соедините его со следующим шагом.")


def _is_conditional_fork(item: Node) -> bool:
    return bool(item.default
                or (item.kind in ("exclusiveGateway", "inclusiveGateway") and len(item.outgoing) > 1)
                or any(f.condition is not None for f in item.outgoing))


@rule("conditional-flows")
def _conditional_flows(model: Model, report: Reporter) -> None:
    for item in _nodes(model, FLOW_NODES):
        if not _is_conditional_fork(item):
            continue
        for flow in item.outgoing:
            if flow.condition is None and not flow.is_default():
                report(flow.id, "Sequence flow is missing condition",
                       f"{flow.describe(True)} из элемента {item.ref()} не имеет условия: задайте условие "
                       f"(например, ${{decision == 'yes'}}) или сделайте этот поток потоком по умолчанию.")


def _requires(model: Model, report: Reporter, kind: str, english: str, russian: str) -> None:
    for container in model.containers():
        if container.kind == "adHocSubProcess":
            continue
        if container.kind == "process" and container.id in model.referenced_by_participant \
                and not any(c.kind in FLOW_NODES for c in container.children):
            continue  # an empty pool: nothing in it runs
        if not any(c.kind == kind for c in container.children):
            scope = "Sub process" if container.kind in SUB_PROCESSES else "Process"
            report(container.id, f"{scope} is missing {english}",
                   f"{container.describe(True)} не имеет {russian}")


@rule("end-event-required")
def _end_event_required(model: Model, report: Reporter) -> None:
    _requires(model, report, "endEvent", "end event",
              "конечного события: добавьте конечное событие и приведите к нему каждую ветку.")


@rule("start-event-required")
def _start_event_required(model: Model, report: Reporter) -> None:
    _requires(model, report, "startEvent", "start event",
              "начального события: добавьте начальное событие, с которого начинается работа.")


@rule("event-based-gateway")
def _event_based_gateway(model: Model, report: Reporter) -> None:
    for gateway in _nodes(model, {"eventBasedGateway"}):
        if len(gateway.outgoing) < 2:
            report(gateway.id, "An <Event-based Gateway> must have at least 2 outgoing <Sequence Flow>",
                   f"{gateway.describe(True)} должен иметь не меньше двух исходящих потоков к событиям: добавьте "
                   f"вторую ветку или уберите шлюз.")
        for flow in gateway.outgoing:
            if flow.condition is not None:
                report(flow.id, "A <Sequence Flow> outgoing from an <Event-based Gateway> must not be conditional",
                       f"{flow.describe(True)} из шлюза по событиям не может иметь условия: удалите условие, "
                       f"ветку выбирает событие, которое наступит первым.")


@rule("event-sub-process-typed-start-event")
def _event_sub_process_typed_start_event(model: Model, report: Reporter) -> None:
    for container in model.containers():
        if container.kind not in SUB_PROCESSES or not container.triggered_by_event:
            continue
        for child in container.children:
            if child.kind == "startEvent" and not child.event_definitions:
                report(child.id, "Start event is missing event definition",
                       f"{child.describe(True)} событийного подпроцесса {container.quoted()} не имеет типа: "
                       f"задайте тип события (таймер, сообщение, сигнал, ошибка, эскалация или условие).")


@rule("fake-join")
def _fake_join(model: Model, report: Reporter) -> None:
    for item in _nodes(model, ACTIVITIES | EVENTS):
        if len(item.incoming) > 1:
            report(item.id, "Incoming flows do not join",
                   f"В элемент {item.ref()} входит несколько потоков, но элемент не ждет их все: каждый поток "
                   f"запускает его заново. Поставьте перед ним шлюз слияния (параллельный, чтобы дождаться всех "
                   f"веток, или исключающий).")


_ACCUSATIVE = {"error": "ошибку", "escalation": "эскалацию"}


@rule("global")
def _global(model: Model, report: Reporter) -> None:
    references = {"message": set(), "signal": set(), "error": set(), "escalation": set()}
    attribute = {"messageEventDefinition": ("message", "messageRef"),
                 "signalEventDefinition": ("signal", "signalRef"),
                 "errorEventDefinition": ("error", "errorRef"),
                 "escalationEventDefinition": ("escalation", "escalationRef")}
    for item in _nodes(model, EVENTS):
        for child in item.element:
            if _is_bpmn(child) and _local(child) in attribute:
                kind, ref = attribute[_local(child)]
                if child.get(ref):
                    references[kind].add(child.get(ref))
    for item in _nodes(model, {"sendTask", "receiveTask"}):
        if item.attr("messageRef"):
            references["message"].add(item.attr("messageRef"))
    for other in model.others:
        if other.kind == "messageFlow" and other.attr("messageRef"):
            references["message"].add(other.attr("messageRef"))
    names = defaultdict(int)
    for item in model.globals:
        names[(item.kind, item.name)] += 1
    for item in model.globals:
        kind = TYPE_RU[item.kind]
        if not item.name:
            report(item.id, "Element is missing name",
                   f"{kind.capitalize()} {item.id} не имеет имени: задайте имя, по нему движок находит "
                   f"{_ACCUSATIVE.get(item.kind, kind)} при отправке и получении.")
        if item.id not in references[item.kind]:
            report(item.id, "Element is unused",
                   f"{item.describe(True)} нигде не используется: удалите его или сошлитесь на него из события.")
        if names[(item.kind, item.name)] > 1:
            report(item.id, "Element name is not unique",
                   f"Имя «{item.name}» носят несколько элементов типа «{kind}»: дайте каждому свое имя.")


@rule("label-required")
def _label_required(model: Model, report: Reporter) -> None:
    candidates = [*model.participants, *model.lanes, *model.flow_elements()]
    for item in candidates:
        if item.kind in ("parallelGateway", "eventBasedGateway") or item.kind in SUB_PROCESSES:
            continue
        if item.kind in GATEWAYS and len(item.outgoing) <= 1:
            continue  # a joining gateway needs no label
        if item.kind == "sequenceFlow" and item.condition is None:
            continue
        if item.kind not in FLOW_NODES | {"sequenceFlow", "participant", "lane"} or item.name:
            continue
        if item.kind == "sequenceFlow":
            text = (f"Условный {item.describe()} не подписан: подпишите его (например, «Да» или «Нет»), чтобы "
                    f"на схеме было видно, когда выбирается эта ветка.")
        else:
            text = (f"{item.describe(True)} не имеет названия: задайте название, его видят исполнители в задачах и "
                    f"на схеме дела.")
        report(item.id, "Element is missing label/name", text)


@rule("link-event")
def _link_event(model: Model, report: Reporter) -> None:
    for container in model.containers():
        links = []
        for child in container.children:
            if child.kind in EVENTS:
                definition = next((c for c in child.element if _is_bpmn(c)
                                   and _local(c) == "linkEventDefinition"), None)
                if definition is not None:
                    links.append((child, (definition.get("name") or "").strip()))
        by_name: dict[str, list[Node]] = defaultdict(list)
        for event, name in links:
            if not name:
                report(event.id, "Link event is missing link name",
                       f"{event.describe(True)} (ссылка) не имеет имени ссылки: задайте имя, общее для пары "
                       f"«бросающее — ловящее» событие.")
            else:
                by_name[name].append(event)
        for name, events in by_name.items():
            catches = [e for e in events if e.kind in CATCH_EVENTS]
            if len(events) == 1:
                event = events[0]
                missing = "catch" if event.kind in THROW_EVENTS else "throw"
                report(event.id, f"Link {missing} event with link name <{name}> missing in scope",
                       f"Для события-ссылки {event.ref()} с именем «{name}» нет парного "
                       f"{'ловящего' if missing == 'catch' else 'бросающего'} события в том же "
                       f"{'подпроцессе' if container.kind in SUB_PROCESSES else 'процессе'}: добавьте его или "
                       f"исправьте имя ссылки.")
            elif len(catches) > 1:
                for event in catches:
                    report(event.id, f"Duplicate link catch event with link name <{name}> in scope",
                           f"Ловящих событий-ссылок с именем «{name}» несколько ({event.quoted()} и другие): "
                           f"оставьте одно.")
            elif not catches:
                for event in events:
                    report(event.id, f"Link catch event with link name <{name}> missing in scope",
                           f"Для события-ссылки {event.ref()} с именем «{name}» нет ловящего события: "
                           f"добавьте промежуточное ловящее событие-ссылку с этим именем.")


@rule("no-bpmndi")
def _no_bpmndi(model: Model, report: Reporter) -> None:
    visual = [*model.participants, *model.lanes, *model.others,
              *(n for n in model.flow_elements() if n.kind != "dataObject")]
    for item in visual:
        if item.id and item.id not in model.shapes:
            report(item.id, "Element is missing bpmndi",
                   f"Элемента {item.ref()} нет на схеме (нет графического описания BPMNDI): откройте файл "
                   f"в моделере и разместите элемент на схеме или удалите его.")


@rule("no-complex-gateway")
def _no_complex_gateway(model: Model, report: Reporter) -> None:
    for gateway in _nodes(model, {"complexGateway"}):
        report(gateway.id, "Element type <bpmn:ComplexGateway> is discouraged",
               f"{gateway.describe(True)} не рекомендуется: условие его срабатывания не видно на схеме. Замените "
               f"его исключающим, включающим или параллельным шлюзом.")


def _compensation_boundary(item: Node) -> bool:
    return item.kind == "boundaryEvent" and item.event_definitions == ["compensateEventDefinition"]


@rule("no-disconnected")
def _no_disconnected(model: Model, report: Reporter) -> None:
    for item in _nodes(model, TASKS | GATEWAYS | SUB_PROCESSES | EVENTS):
        if item.triggered_by_event or _compensation_boundary(item) or item.for_compensation:
            continue
        if item.container is not None and item.container.kind == "adHocSubProcess":
            continue
        if not item.incoming and not item.outgoing:
            report(item.id, "Element is not connected",
                   f"Элемент {item.ref()} не соединен ни с одним элементом: соедините его потоками с соседними "
                   f"шагами или удалите.")


@rule("no-duplicate-sequence-flows")
def _no_duplicate_sequence_flows(model: Model, report: Reporter) -> None:
    seen: set[tuple] = set()
    for flow in _nodes(model, {"sequenceFlow"}):
        key = (flow.attr("sourceRef") or flow.id, flow.attr("targetRef") or flow.id, flow.condition or "")
        if key not in seen:
            seen.add(key)
            continue
        report(flow.id, "SequenceFlow is a duplicate",
               f"{flow.describe(True)} повторяет другой поток между теми же элементами с тем же условием: удалите "
               f"лишний поток.")
        if flow.source is not None:
            report(flow.source.id, "Duplicate outgoing sequence flows",
                   f"У элемента {flow.source.ref()} есть повторяющиеся исходящие потоки: удалите лишний.")
        if flow.target is not None:
            report(flow.target.id, "Duplicate incoming sequence flows",
                   f"У элемента {flow.target.ref()} есть повторяющиеся входящие потоки: удалите лишний.")


@rule("no-gateway-join-fork")
def _no_gateway_join_fork(model: Model, report: Reporter) -> None:
    for gateway in _nodes(model, GATEWAYS):
        if len(gateway.incoming) > 1 and len(gateway.outgoing) > 1:
            report(gateway.id, "Gateway forks and joins",
                   f"{gateway.describe(True)} одновременно сводит и разветвляет потоки: разделите его на два шлюза "
                   f"— сначала слияние, затем ветвление.")


@rule("no-implicit-split")
def _no_implicit_split(model: Model, report: Reporter) -> None:
    for item in _nodes(model, ACTIVITIES | EVENTS):
        plain = [f for f in item.outgoing if f.condition is None and not f.is_default()]
        if len(plain) > 1:
            report(item.id, "Flow splits implicitly",
                   f"Из элемента {item.ref()} выходит несколько потоков без условий, и все они выполняются "
                   f"одновременно: поставьте после элемента параллельный шлюз или исключающий шлюз с условиями.")


def _only(item: Node, definition: str) -> bool:
    definitions = item.event_definitions
    return bool(definitions) and all(d == definition for d in definitions)


def _associated(model: Model, item: Node) -> bool:
    return any(o.kind == "association" and o.attr("sourceRef") == item.id for o in model.others)


@rule("no-implicit-end")
def _no_implicit_end(model: Model, report: Reporter) -> None:
    for item in _nodes(model, EVENTS | ACTIVITIES | GATEWAYS):
        if item.outgoing or item.triggered_by_event or item.kind == "endEvent":
            continue
        if item.kind == "intermediateThrowEvent" and _only(item, "linkEventDefinition"):
            continue
        if item.container is not None and item.container.kind == "adHocSubProcess":
            continue
        if item.kind == "boundaryEvent" and _only(item, "compensateEventDefinition") and _associated(model, item):
            continue
        if item.kind in TASKS and item.for_compensation:
            continue
        report(item.id, "Element is an implicit end",
               f"У элемента {item.ref()} нет исходящего потока, ветка на нем обрывается: соедините его со "
               f"следующим шагом или с конечным событием.")


@rule("no-implicit-start")
def _no_implicit_start(model: Model, report: Reporter) -> None:
    for item in _nodes(model, EVENTS | ACTIVITIES | GATEWAYS):
        if item.incoming or item.kind in ("startEvent", "boundaryEvent") or item.triggered_by_event:
            continue
        if item.kind in ACTIVITIES and item.for_compensation:
            continue
        if item.container is not None and item.container.kind == "adHocSubProcess":
            continue
        if item.kind == "intermediateCatchEvent" and _only(item, "linkEventDefinition"):
            continue
        report(item.id, "Element is an implicit start",
               f"В элемент {item.ref()} не входит ни один поток, и непонятно, когда он начинается: соедините "
               f"его с предыдущим шагом или начните ветку начальным событием.")


@rule("no-inclusive-gateway")
def _no_inclusive_gateway(model: Model, report: Reporter) -> None:
    for gateway in _nodes(model, {"inclusiveGateway"}):
        report(gateway.id, "Element type <bpmn:InclusiveGateway> is discouraged",
               f"{gateway.describe(True)}: движок его исполняет, но по схеме с включающим шлюзом трудно понять, "
               f"какие ветки выполнятся; если ветки взаимоисключающие, замените его исключающим шлюзом.")


def _bounds(shape) -> tuple[float, float, float, float] | None:
    if shape is None:
        return None
    element = next((c for c in shape if isinstance(c.tag, str) and _local(c) == "Bounds"), None)
    if element is None:
        return None
    try:
        return tuple(float(element.get(a)) for a in ("x", "y", "width", "height"))  # type: ignore[return-value]
    except (TypeError, ValueError):
        return None


def _collide(a, b) -> bool:
    return a[0] + a[2] >= b[0] and b[0] + b[2] >= a[0] and a[1] + a[3] >= b[1] and b[1] + b[3] >= a[1]


def _inside(child, parent) -> bool:
    return (child[0] >= parent[0] and child[1] >= parent[1] and child[0] + child[2] <= parent[0] + parent[2]
            and child[1] + child[3] <= parent[1] + parent[3])


@rule("no-overlapping-elements")
def _no_overlapping_elements(model: Model, report: Reporter) -> None:
    overlapping: list[Node] = []
    outside: list[tuple[Node, Node]] = []

    def check(items: list[Node]) -> None:
        boxes = [(i, _bounds(model.shapes.get(i.id))) for i in items]
        boxes = [(i, b) for i, b in boxes if b is not None]
        for index, (first, a) in enumerate(boxes):
            for second, b in boxes[index + 1:]:
                if first.attr("attachedToRef") == second.id or second.attr("attachedToRef") == first.id:
                    continue
                if _collide(a, b):
                    overlapping.extend(x for x in (first, second) if x not in overlapping)

    def walk(container: Node, parent: Node | None, parent_box) -> None:
        check(container.children)
        for child in container.children:
            box = _bounds(model.shapes.get(child.id))
            if box is not None and parent_box is not None and child.kind != "dataStoreReference" \
                    and not _inside(box, parent_box):
                outside.append((child, parent))
        for child in container.children:
            if child.kind in SUB_PROCESSES:
                shape = model.shapes.get(child.id)
                expanded = shape is not None and (shape.get("isExpanded") or "").lower() == "true"
                walk(child, child, _bounds(shape) if expanded else None)

    check(model.participants)
    pools = {p.attr("processRef"): p for p in model.participants}
    for process in model.processes:
        pool = pools.get(process.id)
        walk(process, pool, _bounds(model.shapes.get(pool.id)) if pool is not None else None)
    for item in overlapping:
        report(item.id, "Element overlaps with other element",
               f"Элемент {item.ref()} на схеме перекрывает другой элемент: раздвиньте их, чтобы схему можно было "
               f"прочитать.")
    for item, parent in outside:
        report(item.id, "Element is outside of parent boundary",
               f"Элемент {item.ref()} выходит за границы элемента {parent.ref()}: переместите его внутрь.")


@rule("single-blank-start-event")
def _single_blank_start_event(model: Model, report: Reporter) -> None:
    for container in model.containers():
        blank = [c for c in container.children if c.kind == "startEvent" and not c.event_definitions]
        if len(blank) > 1:
            scope = "Sub process" if container.kind in SUB_PROCESSES else "Process"
            report(container.id, f"{scope} has multiple blank start events",
                   f"{container.describe(True)} имеет несколько начальных событий без типа "
                   f"({', '.join(b.id for b in blank)}): оставьте одно, остальные удалите или задайте им тип.")


@rule("single-event-definition")
def _single_event_definition(model: Model, report: Reporter) -> None:
    for item in _nodes(model, EVENTS):
        if len(item.event_definitions) > 1:
            report(item.id, "Event has multiple event definitions",
                   f"{item.describe(True)} имеет несколько определений события: оставьте одно, а для ожидания "
                   f"одного из нескольких событий используйте шлюз по событиям.")


@rule("sub-process-blank-start-event")
def _sub_process_blank_start_event(model: Model, report: Reporter) -> None:
    for container in model.containers():
        if container.kind not in SUB_PROCESSES or container.triggered_by_event:
            continue
        for child in container.children:
            if child.kind == "startEvent" and child.event_definitions:
                report(child.id, "Start event must be blank",
                       f"{child.describe(True)} обычного подпроцесса {container.quoted()} должно быть без типа: "
                       f"уберите таймер, сообщение или сигнал — подпроцесс начинается, когда до него доходит поток.")


@rule("superfluous-gateway")
def _superfluous_gateway(model: Model, report: Reporter) -> None:
    for gateway in _nodes(model, GATEWAYS):
        if len(gateway.incoming) == 1 and len(gateway.outgoing) == 1:
            report(gateway.id, "Gateway is superfluous. It only has one source and target.",
                   f"{gateway.describe(True)} имеет один входящий и один исходящий поток и ничего не делает: удалите "
                   f"его и соедините элементы напрямую.")


@rule("superfluous-label")
def _superfluous_label(model: Model, report: Reporter) -> None:
    for item in model.flow_elements():
        if not item.name:
            continue
        if item.kind in GATEWAYS and len(item.outgoing) <= 1:
            why = "шлюзу слияния подпись не нужна"
        elif item.kind == "sequenceFlow" and item.is_default():
            why = "поток по умолчанию выбирается, когда не выполнено ни одно условие, подпись ему не нужна"
        elif item.kind == "sequenceFlow" and item.condition is None:
            why = "у потока нет условия, подпись ему не нужна"
        else:
            continue
        report(item.id, "Element has superfluous label/name",
               f"Название «{item.name}» у элемента {item.id} лишнее: {why}; удалите название.")


def _terminate(item: Node) -> bool:
    return item.kind == "endEvent" and "terminateEventDefinition" in item.event_definitions


@rule("superfluous-termination")
def _superfluous_termination(model: Model, report: Reporter) -> None:
    for container in model.containers():
        if container.kind not in ("process", "subProcess"):
            continue
        ends = [c for c in container.children if c.kind in FLOW_NODES and not c.outgoing]
        terminates = [e for e in ends if _terminate(e)]
        if len(terminates) != 1:
            continue

        def interrupting_event_sub(item: Node) -> bool:
            return item.triggered_by_event and any(
                c.kind == "startEvent" and (c.attr("isInterrupting") or "true").lower() != "false"
                for c in item.children)

        if all(_terminate(e) or interrupting_event_sub(e) for e in ends):
            for end in terminates:
                report(end.id, "Termination is superfluous.",
                       f"{end.describe(True)} прерывает процесс, но других веток, которые нужно прервать, нет: "
                       f"замените его обычным конечным событием.")


# -- entry points -----------------------------------------------------------------------------------------------

def lint_tree(root: etree._Element, file: str | None = None) -> list[Problem]:
    """All problems of the recommended rule set in a parsed `bpmn:definitions` element."""
    model = read(root)
    reporter = Reporter(file)
    for name in RECOMMENDED:
        reporter.rule = name
        RULES[name](model, reporter)
    return reporter.problems


def lint(xml_text: str | bytes, file: str | None = None) -> list[Problem]:
    """Lint a BPMN file; an unreadable file is one error without a rule."""
    data = xml_text.encode("utf-8") if isinstance(xml_text, str) else xml_text
    try:
        root = etree.fromstring(data, _PARSER)
    except (etree.XMLSyntaxError, ValueError) as exc:
        return [Problem("error", f"Not a well-formed XML file: {exc}", file=file,
                        message_ru=f"Файл не читается как XML: {exc}. Проверьте, что он сохранен моделером целиком.")]
    if etree.QName(root).localname != "definitions":
        return [Problem("error", "Not a BPMN 2.0 file: the root element must be bpmn:definitions", file=file,
                        message_ru="Это не файл BPMN 2.0: корневым элементом должен быть bpmn:definitions.")]
    return lint_tree(root, file)
