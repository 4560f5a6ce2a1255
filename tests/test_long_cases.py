"""Long cases: a looping diagram never ends itself, and its stored state does not grow with its age.

SpiffWorkflow walks an instance's task tree 1,000 tasks deep at most; before pruning, the 334th round of a
three-task loop made the instance "completed" with an open task in the inbox. These tests drive loops far past
that depth, on SQLite and PostgreSQL alike (the suite's database).
"""

from __future__ import annotations

import json

import pytest

from engine.bpmn.pruning import PRUNED_KEY
from engine.models import ProcessInstance

from .support import DIAGRAMS


@pytest.fixture
def looping(engine):
    engine.repository.deploy([DIAGRAMS / "loop.bpmn", DIAGRAMS / "loop_rich.bpmn"], deployed_by="tester")
    engine.identity.add_agency("КДН г. Йошкар-Олы", "Йошкар-Ола", kind="commission")
    engine.identity.add_user("secretary", ["commission_secretary"], agency="КДН г. Йошкар-Олы")
    return engine


def stored_state(engine, instance_id: int) -> str:
    with engine.db.session() as session:
        return session.get(ProcessInstance, instance_id).state


def only_task(engine, instance_id: int, name: str | None = None) -> dict:
    tasks = [t for t in engine.tasks.query(instance_id=instance_id) if name is None or t["name"] == name]
    assert len(tasks) == 1, tasks
    return tasks[0]


@pytest.mark.slow
def test_a_loop_driven_two_thousand_times_keeps_running_until_its_end_event(looping):
    engine = looping
    instance_id = engine.runtime.start("loop", {"rounds": 0})
    sizes = []
    for round_no in range(2000):
        task = only_task(engine, instance_id)
        engine.tasks.complete(task["id"], "secretary", {"again": True})
        if round_no in (10, 1999):
            sizes.append(len(stored_state(engine, instance_id)))
    instance = engine.runtime.instance(instance_id)
    assert instance["status"] == "running"
    assert instance["variables"]["rounds"] == 2001
    assert sizes[1] <= sizes[0] + 100, f"the stored state grew with the case's age: {sizes}"
    # the steps done long ago are still known as done
    assert set(instance["completed_elements"]) >= {"count", "work", "again"}

    engine.tasks.complete(only_task(engine, instance_id)["id"], "secretary", {"again": False})
    instance = engine.runtime.instance(instance_id)
    assert instance["status"] == "completed"
    assert engine.tasks.query(instance_id=instance_id) == []
    events = [e["type"] for e in engine.history.for_instance(instance_id)]
    assert events.count("task_completed") == 2001 and events[-1] == "instance_completed"


def test_timers_parallel_branches_and_called_processes_survive_pruning(looping):
    engine = looping
    instance_id = engine.runtime.start("loop_rich", {"rounds": 0, "reminders": 0})
    sizes = []
    for round_no in range(40):
        if round_no % 4 == 0:  # let the boundary timer fire on this round's report, leaving the report open
            engine.clock.advance(days=2)
            engine.management.sweep()
        for name in ("Отметка агентства", "Отчет за круг"):
            engine.tasks.complete(only_task(engine, instance_id, name)["id"], "secretary", {"again": True})
        sizes.append(len(stored_state(engine, instance_id)))
    state = json.loads(stored_state(engine, instance_id))
    instance = engine.runtime.instance(instance_id)
    assert instance["status"] == "running"
    assert instance["variables"]["rounds"] == 41
    assert instance["variables"]["tallied"] == 40
    fired = [e for e in engine.history.for_instance(instance_id) if e["type"] == "timer_fired"]
    assert len(fired) == 10
    assert len(state["subprocesses"]) <= 1, "called processes of finished rounds are dropped"
    assert max(sizes[20:]) <= max(sizes[:5]) + 500, f"the stored state grew with the case's age: {sizes}"
    assert {"count", "work", "note", "join", "sub", "remind"} <= set(instance["completed_elements"])

    engine.tasks.complete(only_task(engine, instance_id, "Отметка агентства")["id"], "secretary", {})
    engine.tasks.complete(only_task(engine, instance_id, "Отчет за круг")["id"], "secretary", {"again": False})
    assert engine.runtime.instance(instance_id)["status"] == "completed"


def test_the_diagram_state_lists_pruned_steps_as_completed(looping):
    engine = looping
    instance_id = engine.runtime.start("loop", {"rounds": 0})
    for _ in range(5):
        engine.tasks.complete(only_task(engine, instance_id)["id"], "secretary", {"again": True})
    state = json.loads(stored_state(engine, instance_id))
    root = state["tasks"][state["root"]]
    assert {"again", "work"} <= set(root["internal_data"][PRUNED_KEY]), "finished rounds were dropped"
    states = engine.runtime.activity_states(instance_id)
    assert {element for _file, element in states["completed"]} >= {"count", "work", "again"}
    assert {element for _file, element in states["active"]} == {"work"}


def test_migration_still_refuses_to_drop_a_step_done_long_ago(looping):
    engine = looping
    instance_id = engine.runtime.start("loop", {"rounds": 0})
    for _ in range(3):
        engine.tasks.complete(only_task(engine, instance_id)["id"], "secretary", {"again": True})
    source = (DIAGRAMS / "loop.bpmn").read_text(encoding="utf-8")
    # version 2 has no "again" gateway: the report leads straight to the end
    v2 = (source.replace('<bpmn:sequenceFlow id="f3" sourceRef="work" targetRef="again" />',
                         '<bpmn:sequenceFlow id="f3" sourceRef="work" targetRef="end" />')
          .split('<bpmn:exclusiveGateway id="again"')[0]
          + '<bpmn:endEvent id="end" name="Конец" />\n  </bpmn:process>\n</bpmn:definitions>\n')
    engine.repository.deploy([("loop.bpmn", v2)], deployed_by="tester")
    plan = engine.migration.plan("loop")
    assert [i.instance_id for i in plan.blocked] == [instance_id]
    assert plan.blocked[0].reasons == ["выполненный шаг «Еще круг?» (again) удален в версии 2"]

