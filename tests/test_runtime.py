"""Runtime details: messages, time zones of municipalities, calendar overrides and the coverage guard."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from engine import ExecutionError, InvalidInput, NotFound

from .test_repository import diagram, single_task

MESSAGE = diagram('<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="wait"/>'
                  '<bpmn:intermediateCatchEvent id="wait" name="Materials received">'
                  '<bpmn:messageEventDefinition messageRef="m"/></bpmn:intermediateCatchEvent>'
                  '<bpmn:sequenceFlow id="f2" sourceRef="wait" targetRef="t"/>'
                  '<bpmn:userTask id="t" name="Study materials" camunda:candidateGroups="commission_secretary"/>'
                  '<bpmn:sequenceFlow id="f3" sourceRef="t" targetRef="e"/><bpmn:endEvent id="e"/>', key="msg")
MESSAGE = (MESSAGE[0], MESSAGE[1].replace('<bpmn:process', '<bpmn:message id="m" name="materials"/><bpmn:process'))


def test_message_correlated_by_business_key(engine):
    engine.repository.deploy([MESSAGE])
    first = engine.runtime.start("msg", business_key="case-1")
    second = engine.runtime.start("msg", business_key="case-2")
    assert engine.runtime.instance(first)["waiting_for"] == ["message:materials"]
    assert engine.runtime.correlate_message("materials", {"pages": 12}, business_key="case-2",
                                            actor="police") == [second]
    assert engine.tasks.query(instance_id=first) == []
    assert [t["name"] for t in engine.tasks.query(instance_id=second)] == ["Study materials"]
    events = engine.history.for_instance(second)
    received = [e for e in events if e["type"] == "message_received"][0]
    assert received["actor"] == "police" and received["data"]["payload"] == {"pages": 12}
    with pytest.raises(NotFound, match="No message 'materials' is awaited by instance 2"):
        engine.runtime.correlate_message("materials", instance_id=second)


def test_due_dates_in_the_municipality_time_zone(engine):
    engine.repository.deploy([single_task('camunda:candidateGroups="education" '
                                          'camunda:dueDate="${working_days(3)}"')])
    engine.identity.add_agency("Школа № 1", "Екатеринбург", kind="education", timezone="Asia/Yekaterinburg")
    engine.identity.add_user("teacher", ["education"], agency="Школа № 1")
    engine.clock.set("2025-12-30T20:30:00+00:00")  # 31.12 01:30 in Yekaterinburg, still 30.12 23:30 in Moscow
    ekb = engine.runtime.start("p", started_by="teacher")
    msk = engine.runtime.start("p")
    due_ekb = datetime.fromisoformat(engine.tasks.query(instance_id=ekb)[0]["due"])
    due_msk = datetime.fromisoformat(engine.tasks.query(instance_id=msk)[0]["due"])
    # 31.12.2025 and 1-11.01.2026 are days off: from 31.12 the third working day is 14.01, from 30.12 it is 13.01
    assert due_ekb == datetime(2026, 1, 14, 23, 59, 59, tzinfo=ZoneInfo("Asia/Yekaterinburg"))
    assert due_msk == datetime(2026, 1, 14, 23, 59, 59, tzinfo=ZoneInfo("Europe/Moscow"))
    assert engine.runtime.instance(ekb)["timezone"] == "Asia/Yekaterinburg"


def test_regional_day_off_moves_the_deadline(engine):
    engine.repository.deploy([single_task('camunda:candidateGroups="education" '
                                          'camunda:dueDate="${working_days(1, \'2025-11-06\')}"')])
    before = engine.runtime.start("p")
    engine.calendar.set_override(date(2025, 11, 7), False, "regional holiday")
    after = engine.runtime.start("p")
    assert engine.tasks.query(instance_id=before)[0]["due"].startswith("2025-11-07")
    assert engine.tasks.query(instance_id=after)[0]["due"].startswith("2025-11-10")


def test_deadline_beyond_the_calendar_is_an_error_not_a_guess(engine):
    engine.repository.deploy([single_task('camunda:candidateGroups="education" '
                                          'camunda:dueDate="${working_days(5, \'2035-03-01\')}"')])
    with pytest.raises(ExecutionError, match="no data for 2035") as err:
        engine.runtime.start("p")
    assert err.value.element_id == "t"
    assert engine.runtime.instances() == []
    engine.calendar.declare_year(2035, "decree loaded by hand")
    assert engine.runtime.start("p")


@pytest.mark.parametrize("variables", [{"_secret": 1}, {"a b": 1}, {"x": object()}])
def test_bad_variables_are_refused(engine, variables):
    engine.repository.deploy([single_task('camunda:candidateGroups="education"')])
    with pytest.raises(InvalidInput):
        engine.runtime.start("p", variables)
    assert engine.runtime.instances() == []


def test_dynamic_list_rows_are_checked_against_their_own_components():
    from engine.forms import validate_submission

    schema = {"components": [{"type": "dynamiclist", "path": "acts", "validate": {"required": True}, "components": [
        {"type": "textfield", "key": "title", "label": "Мероприятие", "validate": {"required": True}},
        {"type": "datetime", "key": "term", "subtype": "date"}]}]}
    assert validate_submission(schema, {"acts": [{"title": "Беседа", "term": "2026-02-01"}]})["acts"][0]["title"]
    with pytest.raises(InvalidInput) as err:
        validate_submission(schema, {"acts": [{"title": "Беседа"}, {"title": ""}]})
    assert err.value.errors == {"acts": "строка 2, Мероприятие: обязательное поле"}
    with pytest.raises(InvalidInput):
        validate_submission(schema, {"acts": []})


def test_multi_instance_over_a_collection_survives_save_and_restore(engine):
    body = ('<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="per_agency"/>'
            '<bpmn:userTask id="per_agency" name="Per agency" camunda:candidateGroups="education">'
            '<bpmn:multiInstanceLoopCharacteristics camunda:collection="working_group" '
            'camunda:elementVariable="agency_kind"/></bpmn:userTask>'
            '<bpmn:sequenceFlow id="f2" sourceRef="per_agency" targetRef="e"/><bpmn:endEvent id="e"/>')
    engine.repository.deploy([diagram(body, key="mi")])
    engine.identity.add_user("teacher", ["education"])
    instance_id = engine.runtime.start("mi", {"working_group": ["police", "education"]})
    tasks = engine.tasks.query(instance_id=instance_id)
    assert len(tasks) == 2
    for task in tasks:
        engine.tasks.complete(task["id"], "teacher", {"note": task["id"][:4]})
    info = engine.runtime.instance(instance_id)
    assert info["status"] == "completed"
    assert len(info["variables"]["working_group"]) == 2
