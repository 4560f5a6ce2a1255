"""The stored instance state: the compact layout restores exactly what SpiffWorkflow's own layout restores, states
written in the old layout still load and run, and a `sop_case` state stays small."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from engine.bpmn.serializer import STATE_FORMAT, STATE_FORMAT_KEY
from engine.models import ProcessDefinition, ProcessInstance

from . import test_long_cases, test_spec_cache
from .test_sop_diagrams import APPROVE, CARD, CHECK, DRAFT, PROPOSAL, RECOGNITION
from .test_spec_cache import complete, scenario, start

STATES = Path(__file__).parent / "states"
looping = test_long_cases.looping  # fixtures: the loop diagrams deployed; workflows/ and forms/ deployed
sop = test_spec_cache.sop


def stored(engine, instance_id: int) -> tuple[str, str]:
    """The stored state of an instance and its version's spec."""
    with engine.db.session() as session:
        row = session.get(ProcessInstance, instance_id)
        state, definition_id = row.state, row.definition_id
    return state, engine.repository.spec_json(definition_id)


def picture(workflow) -> dict:
    """Everything a restored workflow holds: each (sub)process's attributes and every task's fields."""
    def one(wf) -> dict:
        return {"data": wf.data, "success": wf.success, "completed": wf.completed, "correlations": wf.correlations,
                "last_task": wf.last_task.id if wf.last_task is not None else None, "root": wf.task_tree.id,
                "spec": wf.spec.name,
                "tasks": {t.id: (t.task_spec.name, t.state, t._parent, list(t._children), t.triggered,
                                 t.internal_data, t.data, t.last_state_change) for t in wf.tasks.values()}}
    return {"top": one(workflow),
            "subprocesses": {key: one(sp) | {"parent_task_id": sp.parent_task_id}
                             for key, sp in workflow.subprocesses.items()},
            "events": [(type(e.event_definition).__name__, e.payload) for e in workflow.bpmn_events],
            "waiting": sorted(map(str, workflow.event_manager.tasks))}


def assert_layouts_agree(engine, instance_id: int) -> None:
    """The stored (compact) state and the same workflow in SpiffWorkflow's layout restore to the same thing, and
    writing the restored workflow again gives the stored text back (subprocesses in the stored order)."""
    serializer = engine.executor.serializer
    state, spec_json = stored(engine, instance_id)
    assert json.loads(state)[STATE_FORMAT_KEY] == STATE_FORMAT
    workflow = serializer.restore(state, spec_json)
    legacy = serializer.legacy_state_to_json(workflow)
    assert STATE_FORMAT_KEY not in json.loads(legacy)
    assert picture(serializer.restore(legacy, spec_json)) == picture(workflow)
    assert serializer.state_to_json(workflow) == state
    assert len(state) < len(legacy)


def test_compact_and_old_layouts_restore_the_same_sop_case_at_every_step(sop):
    engine = sop
    instance_id = start(engine, 1, "layouts")
    assert_layouts_agree(engine, instance_id)
    # a threat signal (an event subprocess beside the flow), a multi-instance in a called process
    for step in scenario(["police", "education"], True):
        step(engine, instance_id)
        assert_layouts_agree(engine, instance_id)


def test_compact_and_old_layouts_restore_the_same_loop_with_timers(looping):
    engine = looping
    instance_id = engine.runtime.start("loop_rich", {"rounds": 0, "reminders": 0})
    for round_no in range(6):
        if round_no % 3 == 0:  # a boundary timer fires on the round's report, which stays open
            engine.clock.advance(days=2)
            engine.management.sweep()
            assert_layouts_agree(engine, instance_id)
        for name in ("Отметка агентства", "Отчет за круг"):
            task = next(t for t in engine.tasks.query(instance_id=instance_id) if t["name"] == name)
            engine.tasks.complete(task["id"], "secretary", {"again": True})
            assert_layouts_agree(engine, instance_id)


def test_a_state_stored_before_the_compact_layout_loads_and_runs_to_the_end(deployed):
    """`lifecycle_before_compact_state.json` was written by the engine before the compact layout: the lifecycle
    case after its check, at "Draft the programme" in the called process. It is put in place of a new case's
    state, moved on by the engine, and ends as such a case ends."""
    engine = deployed
    legacy = (STATES / "lifecycle_before_compact_state.json").read_text(encoding="utf-8")
    assert STATE_FORMAT_KEY not in json.loads(legacy)
    instance_id = engine.runtime.start("lifecycle", {"received": "2025-10-30", "curator": "curator",
                                                     "plan_items": [1, 2, 3]}, business_key="case-1")
    with engine.db.session() as session:
        row = session.get(ProcessInstance, instance_id)
        assert row.definition_id == session.scalar(select(ProcessDefinition.id)
                                                   .where(ProcessDefinition.key == "lifecycle"))
        row.state = legacy
    engine.executor.instances.clear()  # as after an upgrade: a new process has kept no live workflow
    with engine.executor.operation(instance_id, "tester"):
        pass  # loaded from the old layout, saved in the new one, the inbox brought in line with it
    state, _spec = stored(engine, instance_id)
    assert json.loads(state)[STATE_FORMAT_KEY] == STATE_FORMAT
    variables = engine.runtime.instance(instance_id)["variables"]
    assert (variables["sop_confirmed"], variables["danger_level"], variables["plan_items"]) == (True, "high", [1, 2, 3])
    (draft,) = engine.tasks.query(instance_id=instance_id)
    assert (draft["name"], draft["assignee"]) == ("Draft the programme", "curator")
    engine.tasks.complete(draft["id"], "curator", {})
    (review,) = engine.tasks.query(instance_id=instance_id)
    engine.tasks.complete(review["id"], "chair", {})
    info = engine.runtime.instance(instance_id)
    assert info["status"] == "completed"
    assert info["variables"]["plan_done"] is True and info["variables"]["activities"] == 3


def business_free_bytes(state: str) -> int:
    """As `bench/engine_bench.py` counts `state_bytes`: compact JSON with every data field emptied."""
    dct = json.loads(state)
    for wf in [dct, *dct.get("subprocesses", {}).values()]:
        for holder in [wf, *wf.get("tasks", {}).values()]:
            for key in ("data", "delta"):
                if key in holder:
                    holder[key] = {}
    return len(json.dumps(dct, separators=(",", ":")).encode("utf-8"))


def test_a_sop_case_after_the_approved_programme_stores_under_5000_bytes_without_its_data(sop):
    engine = sop
    instance_id = start(engine, 1, "size")
    complete(engine, instance_id, "sop_check", CHECK)
    complete(engine, instance_id, "sop_recognition", {**RECOGNITION, "working_group": ["police", "education"]})
    complete(engine, instance_id, "sop_registration_card", CARD)
    complete(engine, instance_id, "sop_proposals", PROPOSAL)
    complete(engine, instance_id, "sop_proposals", PROPOSAL)
    complete(engine, instance_id, "sop_programme_draft", DRAFT)
    complete(engine, instance_id, "sop_programme_approval", APPROVE)
    assert [t["element_id"] for t in engine.tasks.query(instance_id=instance_id)] == ["sop_programme_dispatch"]
    state, _spec = stored(engine, instance_id)
    assert business_free_bytes(state) <= 5000, business_free_bytes(state)
