"""What changed between two versions of a BPMN file (Camunda 7 dialect), element by element.

`diff_diagrams(old_xml, new_xml)` matches elements by id and sorts them into four groups:

- ``added`` and ``removed``: the id exists in one version only;
- ``changed``: a semantic difference (type, name, attributes, conditions, timers, scripts, documentation,
  extension elements, lane, sequence flow ends, default flow, loop characteristics, event definitions, the
  container the element sits in), each described as ``{"what", "old", "new"}`` with a Russian label;
- ``moved``: the same element with only its drawing (DI: bounds, waypoints, label position) changed.

Derived data is not compared on its own: a node's ``incoming``/``outgoing`` follow from the flows and a lane's
``flowNodeRef`` list is reported as the lane of each node, so removing a task reports the task and its flows,
not every neighbour. Changed elements whose drawing changed too carry ``"layout_changed": True``.

Each element also names the diagram element to highlight in each version (``marker_old``/``marker_new``): the
element itself when it is drawn, the pool of a process drawn as a participant, otherwise ``None``.

Input is untrusted: the parser loads no DTD, resolves no entities and reaches no network; a DOCTYPE, a document
that is not BPMN or an id used twice is refused with a ``ValueError`` whose message says what to fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
BPMNDI = "http://www.omg.org/spec/BPMN/20100524/DI"
DC = "http://www.omg.org/spec/DD/20100524/DC"
DI = "http://www.omg.org/spec/DD/20100524/DI"
CAMUNDA = "http://camunda.org/schema/1.0/bpmn"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
PREFIXES = {BPMN: "bpmn", BPMNDI: "bpmndi", DC: "dc", DI: "di", CAMUNDA: "camunda", XSI: "xsi"}

MAX_SIZE = 10 * 1024 * 1024
_DOCTYPE = re.compile(rb"^(?:\xef\xbb\xbf)?\s*(?:<\?xml[^>]*\?>)?(?:\s|<!--.*?-->)*<!DOCTYPE", re.S)

# Containers that are not elements of their own: their children belong to the enclosing element.
_TRANSPARENT = {"laneSet", "childLaneSet"}
# Children that are part of the element that holds them (compared as its properties, never as elements).
_PARTS = {
    "documentation", "extensionElements", "incoming", "outgoing", "flowNodeRef", "conditionExpression", "script",
    "standardLoopCharacteristics", "multiInstanceLoopCharacteristics", "ioSpecification", "dataInputAssociation",
    "dataOutputAssociation", "property", "text", "potentialOwner", "humanPerformer", "performer", "resourceRole",
    "condition", "completionCondition", "loopCardinality", "loopCondition", "timeDate", "timeCycle", "timeDuration",
    "eventDefinitionRef", "supportedInterfaceRef", "ioBinding", "categoryValueRef", "auditing", "monitoring",
    "rendering", "correlationPropertyRef", "dataState", "participantMultiplicity", "inputSet", "outputSet",
}
# Attributes compared as references to other elements (shown with the referenced element's name).
_REFERENCES = {
    "sourceRef": "Источник (sourceRef)",
    "targetRef": "Цель (targetRef)",
    "default": "Поток по умолчанию (default)",
    "attachedToRef": "Прикреплено к (attachedToRef)",
    "processRef": "Процесс участника (processRef)",
    "messageRef": "Сообщение (messageRef)",
    "signalRef": "Сигнал (signalRef)",
    "errorRef": "Ошибка (errorRef)",
    "escalationRef": "Эскалация (escalationRef)",
    "dataObjectRef": "Объект данных (dataObjectRef)",
    "dataStoreRef": "Хранилище данных (dataStoreRef)",
    "categoryValueRef": "Категория (categoryValueRef)",
    "activityRef": "Действие (activityRef)",
}
_ATTRIBUTES = {
    f"{{{CAMUNDA}}}candidateGroups": "Группы исполнителей (camunda:candidateGroups)",
    f"{{{CAMUNDA}}}candidateUsers": "Кандидаты-пользователи (camunda:candidateUsers)",
    f"{{{CAMUNDA}}}assignee": "Исполнитель (camunda:assignee)",
    f"{{{CAMUNDA}}}dueDate": "Срок (camunda:dueDate)",
    f"{{{CAMUNDA}}}followUpDate": "Дата напоминания (camunda:followUpDate)",
    f"{{{CAMUNDA}}}formKey": "Форма (camunda:formKey)",
    f"{{{CAMUNDA}}}formRef": "Форма (camunda:formRef)",
    f"{{{CAMUNDA}}}priority": "Приоритет (camunda:priority)",
    f"{{{CAMUNDA}}}asyncBefore": "Асинхронно до (camunda:asyncBefore)",
    f"{{{CAMUNDA}}}asyncAfter": "Асинхронно после (camunda:asyncAfter)",
    f"{{{CAMUNDA}}}exclusive": "Исключительное выполнение (camunda:exclusive)",
    f"{{{CAMUNDA}}}historyTimeToLive": "Срок хранения истории (camunda:historyTimeToLive)",
    f"{{{CAMUNDA}}}candidateStarterGroups": "Кто может запускать: группы (camunda:candidateStarterGroups)",
    f"{{{CAMUNDA}}}candidateStarterUsers": "Кто может запускать: пользователи (camunda:candidateStarterUsers)",
    f"{{{CAMUNDA}}}versionTag": "Метка версии (camunda:versionTag)",
    f"{{{CAMUNDA}}}class": "Класс Java (camunda:class)",
    f"{{{CAMUNDA}}}expression": "Выражение (camunda:expression)",
    f"{{{CAMUNDA}}}delegateExpression": "Выражение делегата (camunda:delegateExpression)",
    f"{{{CAMUNDA}}}resultVariable": "Переменная результата (camunda:resultVariable)",
    f"{{{CAMUNDA}}}type": "Тип реализации (camunda:type)",
    f"{{{CAMUNDA}}}topic": "Тема внешней задачи (camunda:topic)",
    f"{{{CAMUNDA}}}calledElementBinding": "Версия вызываемого процесса (camunda:calledElementBinding)",
    f"{{{CAMUNDA}}}calledElementVersion": "Номер версии вызываемого процесса (camunda:calledElementVersion)",
    f"{{{CAMUNDA}}}resource": "Внешний скрипт (camunda:resource)",
    f"{{{CAMUNDA}}}collection": "Коллекция (camunda:collection)",
    f"{{{CAMUNDA}}}elementVariable": "Переменная элемента (camunda:elementVariable)",
    f"{{{CAMUNDA}}}initiator": "Переменная инициатора (camunda:initiator)",
    "calledElement": "Вызываемый процесс (calledElement)",
    "scriptFormat": "Язык скрипта (scriptFormat)",
    "isExecutable": "Исполняемый (isExecutable)",
    "triggeredByEvent": "Событийный подпроцесс (triggeredByEvent)",
    "isInterrupting": "Прерывающее (isInterrupting)",
    "cancelActivity": "Прерывает задачу (cancelActivity)",
    "gatewayDirection": "Направление шлюза (gatewayDirection)",
    "implementation": "Реализация (implementation)",
    "isForCompensation": "Компенсация (isForCompensation)",
    "startQuantity": "Число входящих токенов (startQuantity)",
    "completionQuantity": "Число исходящих токенов (completionQuantity)",
    "isImmediate": "Немедленный переход (isImmediate)",
    "instantiate": "Запускает процесс (instantiate)",
    "eventGatewayType": "Тип шлюза по событию (eventGatewayType)",
    "method": "Метод (method)",
    "processType": "Тип процесса (processType)",
    "isClosed": "Закрытый (isClosed)",
    "itemSubjectRef": "Тип данных (itemSubjectRef)",
    "errorCode": "Код ошибки (errorCode)",
    "escalationCode": "Код эскалации (escalationCode)",
    "textFormat": "Формат текста (textFormat)",
    "associationDirection": "Направление ассоциации (associationDirection)",
}
_TYPES = {
    "process": "Процесс", "collaboration": "Взаимодействие", "participant": "Участник (пул)", "lane": "Дорожка",
    "task": "Задача", "userTask": "Пользовательская задача", "scriptTask": "Задача-скрипт",
    "serviceTask": "Сервисная задача", "sendTask": "Задача отправки", "receiveTask": "Задача получения",
    "manualTask": "Ручная задача", "businessRuleTask": "Задача бизнес-правила", "callActivity": "Вызов процесса",
    "subProcess": "Подпроцесс", "transaction": "Транзакция", "adHocSubProcess": "Нерегламентированный подпроцесс",
    "startEvent": "Начальное событие", "endEvent": "Конечное событие",
    "intermediateCatchEvent": "Промежуточное событие (ожидание)",
    "intermediateThrowEvent": "Промежуточное событие (генерация)", "boundaryEvent": "Граничное событие",
    "exclusiveGateway": "Исключающий шлюз", "inclusiveGateway": "Включающий шлюз",
    "parallelGateway": "Параллельный шлюз", "eventBasedGateway": "Шлюз по событию",
    "complexGateway": "Сложный шлюз", "sequenceFlow": "Поток управления", "messageFlow": "Поток сообщений",
    "association": "Ассоциация", "dataInputAssociation": "Входная ассоциация данных",
    "dataOutputAssociation": "Выходная ассоциация данных", "textAnnotation": "Текстовая аннотация",
    "group": "Группа", "dataObject": "Объект данных", "dataObjectReference": "Ссылка на объект данных",
    "dataStore": "Хранилище данных", "dataStoreReference": "Ссылка на хранилище данных",
    "message": "Сообщение", "signal": "Сигнал", "error": "Ошибка", "escalation": "Эскалация",
    "category": "Категория", "categoryValue": "Значение категории", "itemDefinition": "Определение данных",
}
_EVENT_KINDS = {
    "timerEventDefinition": "таймер", "messageEventDefinition": "сообщение", "signalEventDefinition": "сигнал",
    "errorEventDefinition": "ошибка", "escalationEventDefinition": "эскалация",
    "conditionalEventDefinition": "условие", "terminateEventDefinition": "завершение процесса",
    "compensateEventDefinition": "компенсация", "cancelEventDefinition": "отмена", "linkEventDefinition": "ссылка",
}
_TIMERS = {"timeDate": "Таймер: дата (timeDate)", "timeCycle": "Таймер: цикл (timeCycle)",
           "timeDuration": "Таймер: длительность (timeDuration)"}
_SHAPE_KINDS = {"sequenceFlow", "messageFlow", "association", "dataInputAssociation", "dataOutputAssociation"}


@dataclass
class _Facet:
    """One comparable property of an element: its label, the value compared and the value shown."""

    what: str
    compare: Any
    shown: str | None


@dataclass
class _Element:
    id: str
    tag: str
    node: Any
    parent: str | None
    order: int
    facets: dict[str, _Facet] = field(default_factory=dict)


@dataclass
class _Document:
    root: Any
    elements: dict[str, _Element]
    layout: dict[str, tuple]
    participants: dict[str, str]  # process id -> id of the drawn participant that shows it


def _local(node) -> str:
    return etree.QName(node).localname


def _ns(node) -> str | None:
    return etree.QName(node).namespace


def _prefixed(node_or_name, nsmap: dict | None = None) -> str:
    """`camunda:dueDate` for a Clark name, using the usual prefixes or the document's own."""
    qname = etree.QName(node_or_name)
    if qname.namespace is None:
        return qname.localname
    prefix = PREFIXES.get(qname.namespace)
    if prefix is None and nsmap:
        prefix = next((p for p, uri in nsmap.items() if uri == qname.namespace and p), None)
    return f"{prefix}:{qname.localname}" if prefix else qname.localname


def _text(node) -> str:
    return "".join(node.itertext()).strip() if node is not None else ""


def _script_text(node) -> str:
    """A script as written, with line ends and trailing blanks that no one can see normalised away."""
    lines = "".join(node.itertext()).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip("\n")


def _canon(node) -> str:
    """A readable one-line form of an XML fragment (ids of parts left out), equal for equal meaning."""
    attrs = " ".join(f'{_prefixed(k, node.nsmap)}="{v}"' for k, v in sorted(node.attrib.items()) if k != "id")
    head = _prefixed(node, node.nsmap) + (f" {attrs}" if attrs else "")
    text = (node.text or "").strip()
    children = [_canon(child) for child in node if isinstance(child.tag, str)]
    body = "; ".join(([text] if text else []) + children)
    return f"{head} {{ {body} }}" if body else head


def _parse(xml: str | bytes, side: str) -> Any:
    if not isinstance(xml, (str, bytes)):
        raise ValueError(f"{side}: схема должна быть текстом BPMN (XML)")
    data = xml.encode("utf-8") if isinstance(xml, str) else xml
    if not data.strip():
        raise ValueError(f"{side}: пустой файл вместо схемы BPMN")
    if len(data) > MAX_SIZE:
        raise ValueError(f"{side}: схема больше {MAX_SIZE // (1024 * 1024)} МБ, такие файлы не сравниваются")
    if _DOCTYPE.match(data):
        raise ValueError(f"{side}: объявление DOCTYPE в схеме BPMN не допускается; удалите его из файла")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                             remove_comments=True, remove_pis=True, huge_tree=False,
                             encoding="utf-8" if isinstance(xml, str) else None)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"{side}: файл не является корректным XML ({exc.msg}, строка {exc.lineno})") from exc
    except ValueError as exc:  # e.g. an encoding lxml does not know
        raise ValueError(f"{side}: файл не читается как XML ({exc})") from exc
    if root is None:
        raise ValueError(f"{side}: файл не читается как XML")
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise ValueError(f"{side}: объявление DOCTYPE в схеме BPMN не допускается; удалите его из файла")
    if not isinstance(root.tag, str) or root.tag != f"{{{BPMN}}}definitions":
        found = _prefixed(root, root.nsmap) if isinstance(root.tag, str) else "?"
        raise ValueError(f"{side}: это не схема BPMN 2.0: корневой элемент {found}, а нужен bpmn:definitions "
                         f"в пространстве имен {BPMN}")
    return root


def _collect(root, side: str) -> dict[str, _Element]:
    """Every element with an id (of all processes, pools, lanes, nested sub-processes), in document order."""
    elements: dict[str, _Element] = {}

    def visit(node, parent: str | None) -> None:
        for child in node:
            if not isinstance(child.tag, str) or _ns(child) != BPMN:
                continue
            local = _local(child)
            if local in _TRANSPARENT:
                visit(child, parent)
                continue
            if local in _PARTS or local.endswith("EventDefinition") or local == "extensionElements":
                continue
            element_id = child.get("id")
            if not element_id:
                continue
            if element_id in elements:
                raise ValueError(f"{side}: идентификатор «{element_id}» используется в схеме дважды "
                                 f"({_prefixed(elements[element_id].node)} и {_prefixed(child)}); "
                                 f"исправьте его в моделере")
            elements[element_id] = _Element(element_id, local, child, parent, len(elements))
            visit(child, element_id)

    visit(root, None)
    return elements


def _number(value: str | None):
    try:
        return round(float(value), 1)
    except (TypeError, ValueError):
        return value


def _bounds(node) -> tuple | None:
    bounds = node.find(f"{{{DC}}}Bounds")
    if bounds is None:
        return None
    return tuple(_number(bounds.get(k)) for k in ("x", "y", "width", "height"))


def _layout(root) -> dict[str, tuple]:
    """The drawing of every element (all diagrams and planes): bounds, waypoints, label bounds, flags."""
    layout: dict[str, tuple] = {}
    for node in root.iter(f"{{{BPMNDI}}}BPMNShape", f"{{{BPMNDI}}}BPMNEdge"):
        ref = node.get("bpmnElement")
        if not ref:
            continue
        label = node.find(f"{{{BPMNDI}}}BPMNLabel")
        label_bounds = _bounds(label) if label is not None else None
        if _local(node) == "BPMNShape":
            drawing = ("shape", _bounds(node), label_bounds, node.get("isExpanded"), node.get("isHorizontal"),
                       node.get("isMarkerVisible"))
        else:
            points = tuple((_number(p.get("x")), _number(p.get("y"))) for p in node.findall(f"{{{DI}}}waypoint"))
            drawing = ("edge", points, label_bounds)
        layout[ref] = layout.get(ref, ()) + (drawing,)
    return layout


def _display(elements: dict[str, _Element], element_id: str | None) -> str | None:
    """A referenced element as people read it: «Name» (id), or the id alone."""
    if not element_id:
        return None
    element = elements.get(element_id)
    name = (element.node.get("name") or "").strip() if element is not None else ""
    return f"«{name}» ({element_id})" if name else element_id


def _add(facets: dict[str, _Facet], key: str, what: str, compare: Any, shown: str | None = None) -> None:
    facets[key] = _Facet(what, compare, compare if shown is None and isinstance(compare, str) else shown)


def _type_label(element: _Element) -> str:
    if element.tag == "subProcess" and element.node.get("triggeredByEvent", "false").lower() == "true":
        return "Событийный подпроцесс"
    return _TYPES.get(element.tag, element.tag)


def _attribute_facets(facets, node, elements, prefix: str = "", skip=("id", "name")) -> None:
    for name, value in node.attrib.items():
        if name in skip or name.startswith(f"{{{XSI}}}"):
            continue
        if name in _REFERENCES:
            value = value.strip()
            _add(facets, f"{prefix}@{name}", _REFERENCES[name], value, _display(elements, value))
            continue
        label = _ATTRIBUTES.get(name) or f"Атрибут {_prefixed(name, node.nsmap)}"
        _add(facets, f"{prefix}@{name}", label, value.strip())


def _expression(node) -> str:
    language = node.get("language")
    text = _script_text(node) if language else _text(node)
    return f"[{language}] {text}" if language else text


def _event_facets(facets, definitions, elements) -> None:
    if not definitions:
        return
    kinds = [_EVENT_KINDS.get(_local(d), _local(d)) for d in definitions]
    _add(facets, "event", "Определение события", ", ".join(kinds))
    seen: dict[str, int] = {}
    for definition in definitions:
        local = _local(definition)
        seen[local] = seen.get(local, 0) + 1
        key = f"event:{local}:{seen[local]}"
        kind = _EVENT_KINDS.get(local, local)
        _attribute_facets(facets, definition, elements, prefix=key)
        for child in definition:
            if not isinstance(child.tag, str):
                continue
            name = _local(child)
            if name in _TIMERS:
                _add(facets, f"{key}:{name}", _TIMERS[name], _expression(child))
            elif name == "condition":
                _add(facets, f"{key}:condition", "Условие события", _expression(child))
            else:
                _add(facets, f"{key}:{_prefixed(child)}", f"Определение события «{kind}»: {_prefixed(child)}",
                     _canon(child))


def _loop_facets(facets, loop, elements) -> None:
    if loop is None:
        return
    if _local(loop) == "multiInstanceLoopCharacteristics":
        sequential = loop.get("isSequential", "false").strip().lower() == "true"
        kind = "мультиэкземпляр, последовательно" if sequential else "мультиэкземпляр, параллельно"
    else:
        kind = "цикл"
    _add(facets, "loop", "Повторение (loop characteristics)", kind)
    _attribute_facets(facets, loop, elements, prefix="loop", skip=("id", "isSequential"))
    labels = {"loopCardinality": "Число экземпляров (loopCardinality)",
              "completionCondition": "Условие завершения (completionCondition)",
              "loopCondition": "Условие цикла (loopCondition)"}
    for child in loop:
        if not isinstance(child.tag, str):
            continue
        name = _local(child)
        if name in labels:
            _add(facets, f"loop:{name}", labels[name], _expression(child))
        else:
            _add(facets, f"loop:{_prefixed(child)}", f"Повторение: {_prefixed(child)}", _canon(child))


def _parameter_value(node) -> str:
    nested = [child for child in node if isinstance(child.tag, str)]
    return "; ".join(_canon(c) for c in nested) if nested else _script_text(node)


def _extension_facets(facets, extensions) -> None:
    groups: dict[str, list[str]] = {}
    labels: dict[str, str] = {}
    for item in extensions:
        if not isinstance(item.tag, str):
            continue
        tag = _prefixed(item, item.nsmap)
        local = _local(item)
        if _ns(item) == CAMUNDA and local == "inputOutput":
            for parameter in item:
                if not isinstance(parameter.tag, str):
                    continue
                kind = {"inputParameter": "Входной параметр", "outputParameter": "Выходной параметр"}.get(
                    _local(parameter), _prefixed(parameter))
                name = parameter.get("name", "")
                _add(facets, f"ext:io:{_local(parameter)}:{name}",
                     f"{kind} «{name}» (camunda:{_local(parameter)})", _parameter_value(parameter))
        elif _ns(item) == CAMUNDA and local == "properties":
            for prop in item:
                if isinstance(prop.tag, str):
                    name = prop.get("name", "")
                    _add(facets, f"ext:property:{name}", f"Свойство «{name}» (camunda:properties)",
                         prop.get("value", _text(prop)))
        elif _ns(item) == CAMUNDA and local == "formData":
            for form_field in item:
                if isinstance(form_field.tag, str):
                    name = form_field.get("id", "")
                    _add(facets, f"ext:formField:{name}", f"Поле формы «{name}» (camunda:formData)",
                         _canon(form_field))
        else:
            labels[tag] = {
                "in": "Передача переменных в вызываемый процесс (camunda:in)",
                "out": "Возврат переменных из вызываемого процесса (camunda:out)",
                "taskListener": "Слушатели задачи (camunda:taskListener)",
                "executionListener": "Слушатели выполнения (camunda:executionListener)",
                "failedJobRetryTimeCycle": "Повтор при сбое (camunda:failedJobRetryTimeCycle)",
            }.get(local if _ns(item) == CAMUNDA else "", f"Расширение {tag}")
            groups.setdefault(tag, []).append(_canon(item))
    for tag, values in groups.items():
        _add(facets, f"ext:{tag}", labels[tag], "\n".join(sorted(values)))


def _facets(element: _Element, elements: dict[str, _Element], lanes: dict[str, tuple[str, ...]]) -> None:
    node = element.node
    facets = element.facets
    _add(facets, "type", "Тип элемента", element.tag, _type_label(element))
    _add(facets, "name", "Название дорожки (роль исполнителей по умолчанию)" if element.tag == "lane" else "Название",
         (node.get("name") or "").strip())
    _attribute_facets(facets, node, elements)
    documentation = "\n\n".join(_script_text(d) for d in node.findall(f"{{{BPMN}}}documentation"))
    _add(facets, "documentation", "Документация", documentation)
    definitions = []
    for child in node:
        if not isinstance(child.tag, str):
            continue
        local = _local(child)
        own_element = bool(child.get("id")) and local not in _PARTS and not local.endswith("EventDefinition")
        derived = local in _TRANSPARENT or local in {"incoming", "outgoing", "flowNodeRef", "documentation"}
        if _ns(child) == BPMN and (own_element or derived):
            continue  # an element of its own, or data derived from other elements
        if _ns(child) != BPMN:
            _add(facets, f"foreign:{child.tag}", f"Расширение {_prefixed(child, child.nsmap)}", _canon(child))
        elif local == "conditionExpression":
            _add(facets, "condition", "Условие перехода (conditionExpression)", _expression(child))
        elif local == "script":
            _add(facets, "script", "Скрипт", _script_text(child))
        elif local == "text":
            _add(facets, "text", "Текст", _script_text(child))
        elif local.endswith("EventDefinition"):
            definitions.append(child)
        elif local in {"standardLoopCharacteristics", "multiInstanceLoopCharacteristics"}:
            _loop_facets(facets, child, elements)
        elif local == "extensionElements":
            _extension_facets(facets, child)
        else:
            key = f"part:{local}"
            previous = facets.get(key)
            value = _canon(child) if previous is None else f"{previous.compare}\n{_canon(child)}"
            _add(facets, key, f"Вложенный элемент bpmn:{local}", value)
    _event_facets(facets, definitions, elements)
    if element.id in lanes:
        ids = lanes[element.id]
        _add(facets, "lane", "Дорожка", ids, ", ".join(_display(elements, i) or "" for i in ids))
    parent = elements.get(element.parent) if element.parent else None
    if parent is not None and parent.tag not in {"process", "collaboration", "lane"}:
        _add(facets, "parent", "Находится внутри", parent.id, _display(elements, parent.id))
    elif parent is not None and parent.tag == "process":
        _add(facets, "parent", "Процесс", parent.id, _display(elements, parent.id))


def _lanes(elements: dict[str, _Element]) -> dict[str, tuple[str, ...]]:
    """The innermost lane(s) of every flow node, from the lanes' flowNodeRef lists."""
    members: dict[str, list[str]] = {}
    for element in elements.values():
        if element.tag == "lane":
            for ref in element.node.findall(f"{{{BPMN}}}flowNodeRef"):
                if (ref.text or "").strip():
                    members.setdefault(ref.text.strip(), []).append(element.id)
    result = {}
    for node_id, lane_ids in members.items():
        inner = [lane for lane in lane_ids
                 if not any(other != lane and _inside(elements, other, lane) for other in lane_ids)]
        result[node_id] = tuple(sorted(set(inner)))
    return result


def _inside(elements: dict[str, _Element], element_id: str, ancestor_id: str) -> bool:
    parent = elements[element_id].parent if element_id in elements else None
    while parent is not None:
        if parent == ancestor_id:
            return True
        parent = elements[parent].parent if parent in elements else None
    return False


def _document(xml: str | bytes, side: str) -> _Document:
    root = _parse(xml, side)
    elements = _collect(root, side)
    lanes = _lanes(elements)
    for element in elements.values():
        _facets(element, elements, lanes)
    layout = _layout(root)
    participants = {}
    for element in elements.values():
        ref = (element.node.get("processRef") or "").strip()
        if element.tag == "participant" and ref and ref not in participants and element.id in layout:
            participants[ref] = element.id
    return _Document(root, elements, layout, participants)


def _marker(document: _Document, element_id: str) -> str | None:
    if element_id in document.layout:
        return element_id
    return document.participants.get(element_id)


def _summary(element: _Element, old: _Document | None, new: _Document | None) -> dict:
    name = (element.node.get("name") or "").strip()
    return {
        "id": element.id,
        "type": element.tag,
        "type_label": _type_label(element),
        "name": name,
        "label": name or element.id,
        "connection": element.tag in _SHAPE_KINDS,
        "marker_old": _marker(old, element.id) if old is not None else None,
        "marker_new": _marker(new, element.id) if new is not None else None,
    }


def _properties(element: _Element) -> list[dict]:
    """What an added or removed element carried (empty values left out)."""
    return [{"what": f.what, "value": f.shown} for key, f in element.facets.items()
            if key != "type" and f.shown not in (None, "")]


def _changes(old: _Element, new: _Element) -> list[dict]:
    changes = []
    keys = list(new.facets) + [k for k in old.facets if k not in new.facets]
    for key in keys:
        before, after = old.facets.get(key), new.facets.get(key)
        if (before.compare if before else None) in (None, "") and (after.compare if after else None) in (None, ""):
            continue
        if before is not None and after is not None and before.compare == after.compare:
            continue
        changes.append({"what": (after or before).what,
                        "old": before.shown if before is not None and before.shown != "" else None,
                        "new": after.shown if after is not None and after.shown != "" else None})
    return changes


def diff_diagrams(old_xml: str | bytes, new_xml: str | bytes) -> dict:
    """Compare two BPMN files element by element (matched by id): added, removed, changed, moved.

    Raises ValueError with a message for people when either file is not a readable BPMN document.
    """
    old = _document(old_xml, "Старая версия")
    new = _document(new_xml, "Новая версия")
    added, removed, changed, moved = [], [], [], []
    for element_id, element in new.elements.items():
        before = old.elements.get(element_id)
        if before is None:
            added.append({**_summary(element, None, new), "properties": _properties(element)})
            continue
        changes = _changes(before, element)
        layout_changed = old.layout.get(element_id) != new.layout.get(element_id)
        if changes:
            changed.append({**_summary(element, old, new), "changes": changes, "layout_changed": layout_changed})
        elif layout_changed:
            moved.append(_summary(element, old, new))
    for element_id, element in old.elements.items():
        if element_id not in new.elements:
            removed.append({**_summary(element, old, None), "properties": _properties(element)})
    return {
        "added": added,
        "removed": removed,
        "changed": changed,
        "moved": moved,
        "summary": {"added": len(added), "removed": len(removed), "changed": len(changed), "moved": len(moved)},
        "identical": not (added or removed or changed or moved),
    }


__all__ = ["diff_diagrams"]
