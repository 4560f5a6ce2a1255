"""The visual diff's comparison: two BPMN files element by element — added, removed, changed (with readable
old → new values) and moved (drawing only), robust to foreign and hostile XML."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from modeler.diagram_diff import diff_diagrams

WORKFLOWS = Path(__file__).resolve().parent.parent / "workflows"
SOP_CASE = (WORKFLOWS / "sop_case.bpmn").read_text(encoding="utf-8")
PROGRAMME = (WORKFLOWS / "sop_programme.bpmn").read_text(encoding="utf-8")


def replace(text: str, old: str, new: str, count: int = 1) -> str:
    assert text.count(old) == count, f"expected {count} × {old!r}"
    return text.replace(old, new)


def ids(diff: dict, group: str) -> set[str]:
    return {item["id"] for item in diff[group]}


def changed(diff: dict, element_id: str) -> dict:
    return {c["what"]: (c["old"], c["new"]) for c in next(i for i in diff["changed"] if i["id"] == element_id)
            ["changes"]}


def test_identical_files_have_no_differences():
    diff = diff_diagrams(SOP_CASE, SOP_CASE)
    assert diff["identical"] is True
    assert diff["summary"] == {"added": 0, "removed": 0, "changed": 0, "moved": 0}
    # formatting alone (another serializer, other prefixes, attribute order) changes nothing
    reformatted = SOP_CASE.replace("bpmn:", "semantic:").replace('xmlns:bpmn=', 'xmlns:semantic=')
    assert diff_diagrams(SOP_CASE, reformatted)["identical"] is True


def test_changed_due_date_is_reported_with_its_label_and_values():
    new = replace(SOP_CASE, 'camunda:dueDate="${working_days(5, received)}"',
                  'camunda:dueDate="${working_days(7, received)}"')
    diff = diff_diagrams(SOP_CASE, new)
    assert ids(diff, "changed") == {"sop_check"} and not diff["added"] and not diff["removed"]
    item = diff["changed"][0]
    assert item["changes"] == [{"what": "Срок (camunda:dueDate)", "old": "${working_days(5, received)}",
                                "new": "${working_days(7, received)}"}]
    assert item["type"] == "userTask" and item["type_label"] == "Пользовательская задача"
    assert item["name"] == "Проверка информации и заключение"
    assert item["marker_old"] == item["marker_new"] == "sop_check" and item["layout_changed"] is False


def test_camunda_attributes_added_and_removed():
    new = replace(SOP_CASE, 'camunda:formKey="sop_check" ',
                  'camunda:formKey="sop_check" camunda:candidateGroups="commission_secretary" camunda:priority="80" ')
    new = replace(new, 'camunda:assignee="${curator}" camunda:candidateGroups="curator" '
                       'camunda:formKey="sop_registration_card"',
                  'camunda:candidateGroups="curator" camunda:formKey="sop_registration_card"')
    diff = diff_diagrams(SOP_CASE, new)
    assert changed(diff, "sop_check") == {
        "Группы исполнителей (camunda:candidateGroups)": (None, "commission_secretary"),
        "Приоритет (camunda:priority)": (None, "80")}
    assert changed(diff, "sop_registration_card") == {"Исполнитель (camunda:assignee)": ("${curator}", None)}


def test_changed_condition_and_timer_and_script():
    new = replace(SOP_CASE, "${danger_level == 'critical'}", "${danger_level in ('critical', 'high')}")
    new = replace(new, "${months(6, last_review)}", "${months(3, last_review)}")
    new = replace(new, "last_review = today().isoformat()\nreview_round = review_round + 1",
                  "last_review = today().isoformat()\nreview_round = review_round + 2")
    diff = diff_diagrams(SOP_CASE, new)
    assert ids(diff, "changed") == {"case_f_critical", "case_review_due", "case_review_recorded"}
    assert changed(diff, "case_f_critical") == {"Условие перехода (conditionExpression)": (
        "${danger_level == 'critical'}", "${danger_level in ('critical', 'high')}")}
    assert changed(diff, "case_review_due") == {"Таймер: дата (timeDate)": ("${months(6, last_review)}",
                                                                            "${months(3, last_review)}")}
    script = changed(diff, "case_review_recorded")["Скрипт"]
    assert "review_round + 1" in script[0] and "review_round + 2" in script[1]
    flow = next(i for i in diff["changed"] if i["id"] == "case_f_critical")
    assert flow["connection"] is True and flow["type_label"] == "Поток управления"


def test_removed_task_with_its_flows_and_a_new_element_in_its_place():
    # the end event «Не признаны…» is replaced by another one; the flow into it is rerouted
    new = replace(SOP_CASE, '<bpmn:endEvent id="case_not_recognized" name="Не признаны находящимися в СОП">',
                  '<bpmn:endEvent id="case_rejected" name="Отказ в признании">')
    new = replace(new, "<bpmn:flowNodeRef>case_not_recognized</bpmn:flowNodeRef>",
                  "<bpmn:flowNodeRef>case_rejected</bpmn:flowNodeRef>")
    new = replace(new, 'targetRef="case_not_recognized"', 'targetRef="case_rejected"')
    new = replace(new, 'bpmnElement="case_not_recognized"', 'bpmnElement="case_rejected"')
    # and the script task «Зафиксировать дату контроля» goes, with both its flows (a new flow bridges the gap)
    new = re.sub(r'<bpmn:scriptTask id="case_review_recorded".*?</bpmn:scriptTask>', "", new, count=1, flags=re.S)
    new = replace(new, "<bpmn:flowNodeRef>case_review_recorded</bpmn:flowNodeRef>", "")
    new = re.sub(r'<bpmndi:BPMNShape id="case_review_recorded_di".*?</bpmndi:BPMNShape>', "", new, count=1, flags=re.S)
    new = re.sub(r'<bpmndi:BPMNEdge id="case_f_review_re(corded|sult)_di".*?</bpmndi:BPMNEdge>', "", new, flags=re.S)
    new = replace(new, '<bpmn:sequenceFlow id="case_f_review_recorded" sourceRef="sop_review" '
                       'targetRef="case_review_recorded" />', '')
    new = replace(new, '<bpmn:sequenceFlow id="case_f_review_result" sourceRef="case_review_recorded" '
                       'targetRef="case_review_result" />',
                  '<bpmn:sequenceFlow id="case_f_review_direct" sourceRef="sop_review" '
                  'targetRef="case_review_result" />')
    diff = diff_diagrams(SOP_CASE, new)
    assert {"case_not_recognized", "case_review_recorded", "case_f_review_recorded",
            "case_f_review_result"} <= ids(diff, "removed")
    assert {"case_rejected", "case_f_review_direct"} <= ids(diff, "added")
    assert changed(diff, "case_f_rejected") == {"Цель (targetRef)": (
        "«Не признаны находящимися в СОП» (case_not_recognized)", "«Отказ в признании» (case_rejected)")}
    # neighbours are not "changed" merely because their incoming/outgoing lists or lanes' lists changed
    assert "sop_review" not in ids(diff, "changed") and "Lane_case_secretary" not in ids(diff, "changed")
    removed = next(i for i in diff["removed"] if i["id"] == "case_review_recorded")
    assert removed["marker_old"] == "case_review_recorded" and removed["marker_new"] is None
    assert {"what": "Язык скрипта (scriptFormat)", "value": "python"} in removed["properties"]
    added = next(i for i in diff["added"] if i["id"] == "case_rejected")
    assert added["marker_new"] == "case_rejected" and added["marker_old"] is None
    assert {"what": "Дорожка", "value": "«commission» (Lane_case_commission)"} in added["properties"]
    # the new flow has no drawing: it is listed, but there is nothing to mark
    bridge = next(i for i in diff["added"] if i["id"] == "case_f_review_direct")
    assert bridge["marker_new"] is None and bridge["connection"] is True


def test_renamed_lane_and_a_task_moved_to_another_lane():
    new = replace(SOP_CASE, '<bpmn:lane id="Lane_case_agency" name="agency_specialist">',
                  '<bpmn:lane id="Lane_case_agency" name="education">')
    new = replace(new, "<bpmn:flowNodeRef>sop_curator_summary</bpmn:flowNodeRef>", "")
    new = replace(new, "<bpmn:flowNodeRef>sop_execution_report</bpmn:flowNodeRef>",
                  "<bpmn:flowNodeRef>sop_execution_report</bpmn:flowNodeRef>"
                  "<bpmn:flowNodeRef>sop_curator_summary</bpmn:flowNodeRef>")
    diff = diff_diagrams(SOP_CASE, new)
    assert changed(diff, "Lane_case_agency") == {
        "Название дорожки (роль исполнителей по умолчанию)": ("agency_specialist", "education")}
    assert changed(diff, "sop_curator_summary") == {
        "Дорожка": ("«curator» (Lane_case_curator)", "«education» (Lane_case_agency)")}
    # the other members of the renamed lane are unchanged (membership is compared by lane id)
    assert ids(diff, "changed") == {"Lane_case_agency", "sop_curator_summary"}


def test_layout_only_changes_are_moved_not_changed():
    shape = SOP_CASE.split('bpmnElement="sop_check"', 1)[1].split("</bpmndi:BPMNShape>", 1)[0]
    bounds = shape.split("<dc:Bounds ", 1)[1].split("/>", 1)[0]
    x = bounds.split('x="', 1)[1].split('"', 1)[0]
    moved_bounds = bounds.replace(f'x="{x}"', f'x="{float(x) + 40:g}"')
    new = replace(SOP_CASE, f'bpmnElement="sop_check"{shape}',
                  f'bpmnElement="sop_check"{shape.replace(bounds, moved_bounds)}')
    edge = SOP_CASE.split('bpmnElement="case_f_start"', 1)[1].split("</bpmndi:BPMNEdge>", 1)[0]
    bent = edge.replace("<di:waypoint ", '<di:waypoint x="1" y="2" /><di:waypoint ', 1)
    new = replace(new, f'bpmnElement="case_f_start"{edge}', f'bpmnElement="case_f_start"{bent}')
    diff = diff_diagrams(SOP_CASE, new)
    assert ids(diff, "moved") == {"sop_check", "case_f_start"}
    assert not diff["changed"] and not diff["added"] and not diff["removed"]
    # moved and changed at once: listed as changed, flagged as moved too
    both = replace(new, 'camunda:dueDate="${working_days(5, received)}"',
                   'camunda:dueDate="${working_days(6, received)}"')
    diff = diff_diagrams(SOP_CASE, both)
    assert ids(diff, "moved") == {"case_f_start"} and diff["changed"][0]["layout_changed"] is True


def test_documentation_extensions_loop_and_event_definitions():
    new = replace(PROGRAMME, ">working_group</bpmn:loopCardinality>", ">2 * working_group</bpmn:loopCardinality>")
    new = replace(new, '<bpmn:multiInstanceLoopCharacteristics camunda:elementVariable="proposal_agency">',
                  '<bpmn:multiInstanceLoopCharacteristics isSequential="true" camunda:elementVariable="agency">')
    diff = diff_diagrams(PROGRAMME, new)
    (item,) = diff["changed"]
    assert {c["what"]: (c["old"], c["new"]) for c in item["changes"]} == {
        "Повторение (loop characteristics)": ("мультиэкземпляр, параллельно", "мультиэкземпляр, последовательно"),
        "Переменная элемента (camunda:elementVariable)": ("proposal_agency", "agency"),
        "Число экземпляров (loopCardinality)": ("working_group", "2 * working_group")}

    new = replace(SOP_CASE, "<bpmn:documentation>004 п. 4.8, 7.</bpmn:documentation>",
                  "<bpmn:documentation>004 п. 4.8, 7 (ред. 2026).</bpmn:documentation>")
    new = replace(new, '<camunda:in variables="all" />\n          <camunda:out variables="all" />',
                  '<camunda:in variables="all" />\n          <camunda:out source="result" target="result" />'
                  '<camunda:inputOutput><camunda:inputParameter name="urgent">true</camunda:inputParameter>'
                  '</camunda:inputOutput><camunda:properties><camunda:property name="sla" value="1d" />'
                  '</camunda:properties>')
    new = replace(new, '<bpmn:signalEventDefinition id="case_threat_signal" signalRef="Signal_threat_to_life" />',
                  '<bpmn:messageEventDefinition id="case_threat_signal" messageRef="Message_minor_turned_18" />')
    new = replace(new, 'default="case_f_continue"', 'default="case_f_correct"')
    diff = diff_diagrams(SOP_CASE, new)
    emergency = changed(diff, "case_emergency_in_case")
    assert emergency["Документация"] == ("004 п. 4.8, 7.", "004 п. 4.8, 7 (ред. 2026).")
    assert emergency["Возврат переменных из вызываемого процесса (camunda:out)"] == (
        'camunda:out variables="all"', 'camunda:out source="result" target="result"')
    assert emergency["Входной параметр «urgent» (camunda:inputParameter)"] == (None, "true")
    assert emergency["Свойство «sla» (camunda:properties)"] == (None, "1d")
    start = changed(diff, "case_threat_start")
    assert start["Определение события"] == ("сигнал", "сообщение")
    assert start["Сообщение (messageRef)"] == (None, "«minor_turned_18» (Message_minor_turned_18)")
    assert changed(diff, "case_review_result") == {"Поток по умолчанию (default)": (
        "«Продолжить ИПР» (case_f_continue)", "«С корректировкой программы» (case_f_correct)")}


def test_nested_elements_participants_boundary_events_and_message_flows():
    old = """<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
    xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" xmlns:dc="http://www.omg.org/spec/DD/20100524/DC"
    id="d" targetNamespace="t">
  <collaboration id="c">
    <participant id="pool_a" name="Комиссия" processRef="a" />
    <participant id="pool_b" name="Школа" />
    <messageFlow id="mf" sourceRef="task" targetRef="pool_b" />
  </collaboration>
  <process id="a" name="Процесс А" isExecutable="true">
    <subProcess id="sub" name="Внутри">
      <subProcess id="inner" name="Глубже">
        <userTask id="task" name="Задача" camunda:dueDate="${working_days(3)}" />
      </subProcess>
    </subProcess>
    <boundaryEvent id="deadline" attachedToRef="sub" cancelActivity="false">
      <timerEventDefinition><timeDuration>P3D</timeDuration></timerEventDefinition>
    </boundaryEvent>
  </process>
  <bpmndi:BPMNDiagram id="dia"><bpmndi:BPMNPlane id="plane" bpmnElement="c">
    <bpmndi:BPMNShape id="pool_a_di" bpmnElement="pool_a"><dc:Bounds x="0" y="0" width="600" height="300" />
    </bpmndi:BPMNShape>
  </bpmndi:BPMNPlane></bpmndi:BPMNDiagram>
</definitions>"""
    new = (old.replace("${working_days(3)}", "${working_days(4)}").replace("P3D", "P5D")
           .replace('cancelActivity="false"', 'cancelActivity="true"')
           .replace('targetRef="pool_b"', 'targetRef="pool_a"').replace('name="Процесс А"', 'name="Процесс Б"')
           .replace('<participant id="pool_b" name="Школа" />', ""))
    diff = diff_diagrams(old, new)
    assert changed(diff, "task") == {"Срок (camunda:dueDate)": ("${working_days(3)}", "${working_days(4)}")}
    assert changed(diff, "deadline") == {"Прерывает задачу (cancelActivity)": ("false", "true"),
                                         "Таймер: длительность (timeDuration)": ("P3D", "P5D")}
    assert changed(diff, "mf") == {"Цель (targetRef)": ("«Школа» (pool_b)", "«Комиссия» (pool_a)")}
    assert ids(diff, "removed") == {"pool_b"}
    process = next(i for i in diff["changed"] if i["id"] == "a")
    # a process drawn as a pool is marked on its pool
    assert process["marker_old"] == process["marker_new"] == "pool_a"
    # moving the task out of the nested sub-process is a change of its container
    flat = new.replace('<subProcess id="inner" name="Глубже">\n        <userTask id="task" name="Задача" '
                       'camunda:dueDate="${working_days(4)}" />\n      </subProcess>',
                       '<subProcess id="inner" name="Глубже" />\n      '
                       '<userTask id="task" name="Задача" camunda:dueDate="${working_days(4)}" />')
    assert flat != new
    assert changed(diff_diagrams(new, flat), "task") == {"Находится внутри": ("«Глубже» (inner)", "«Внутри» (sub)")}


@pytest.mark.parametrize(("xml", "message"), [
    ("", "пустой файл"),
    ("not xml at all", "не является корректным XML"),
    ("<definitions><process id='a'>", "не является корректным XML"),
    ('<?xml version="1.0"?><root xmlns="urn:other"/>', "это не схема BPMN 2.0"),
    ('<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
     '<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"><process id="a" name="&x;"/></definitions>',
     "DOCTYPE"),
    ('<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
     '<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"><process id="a" name="&b;"/></definitions>',
     "DOCTYPE"),
    ('<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"><process id="a"><task id="t"/>'
     '<task id="t"/></process></definitions>', "«t» используется в схеме дважды"),
])
def test_foreign_or_garbage_xml_is_a_value_error(xml, message):
    with pytest.raises(ValueError, match=message) as old_side:
        diff_diagrams(xml, SOP_CASE)
    assert str(old_side.value).startswith("Старая версия:")
    with pytest.raises(ValueError, match=message) as new_side:
        diff_diagrams(SOP_CASE, xml.encode("utf-8"))
    assert str(new_side.value).startswith("Новая версия:")


def test_bytes_with_a_declared_encoding_and_foreign_extensions():
    text = SOP_CASE.replace('encoding="UTF-8"', 'encoding="windows-1251"')
    assert diff_diagrams(SOP_CASE, text.encode("cp1251"))["identical"] is True
    foreign = replace(SOP_CASE, '<bpmn:process id="sop_case"',
                      '<bpmn:process xmlns:x="urn:vendor" x:owner="region" id="sop_case"')
    diff = diff_diagrams(SOP_CASE, foreign)
    assert changed(diff, "sop_case") == {"Атрибут x:owner": (None, "region")}
    assert diff["changed"][0]["marker_new"] == "Participant_sop_case"
