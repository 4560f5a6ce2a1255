"""A multi-instance task whose collection variable is missing (or is not a collection) stops the change with a
message naming the element and the variable — in the engine, the API and the modeler's simulation — with no
traceback anywhere, and changes nothing."""

from __future__ import annotations

import logging

import pytest

from engine import ExecutionError

from .modeler_support import modeler_app, post_json, signed_in
from .support import DIAGRAMS
from .test_api import build_app, token_headers

DIAGRAM = DIAGRAMS / "mi_collection.bpmn"


def no_tracebacks(caplog) -> None:
    logged = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert logged == [], [r.getMessage() for r in logged]


def start_and_prepare(engine, **variables) -> tuple[int, str]:
    engine.repository.deploy([DIAGRAM], deployed_by="tester")
    instance_id = engine.runtime.start("mi_collection", variables)
    [task] = engine.tasks.query(instance_id=instance_id)
    return instance_id, task["id"]


@pytest.mark.parametrize(("variables", "said"), [({}, "is not set"), ({"reviewers": 5}, "must be a list, not int")])
def test_the_engine_names_the_element_and_the_variable(engine, caplog, variables, said):
    engine.identity.add_user("secretary", ["commission_secretary"])
    instance_id, task_id = start_and_prepare(engine, **variables)
    with caplog.at_level(logging.INFO), pytest.raises(ExecutionError) as raised:
        engine.tasks.complete(task_id, "secretary")
    assert raised.value.element_id == "review"
    assert "'reviewers'" in raised.value.message and said in raised.value.message
    no_tracebacks(caplog)
    assert [t["id"] for t in engine.tasks.query(instance_id=instance_id)] == [task_id]  # nothing changed


def test_a_collection_that_is_given_runs_one_task_per_item(engine):
    engine.identity.add_user("secretary", ["commission_secretary"])
    instance_id, task_id = start_and_prepare(engine, reviewers=["a", "b"])
    engine.tasks.complete(task_id, "secretary")
    assert [t["element_id"] for t in engine.tasks.query(instance_id=instance_id)] == ["review", "review"]


def test_the_api_answers_422_naming_the_element_and_the_variable(engine, caplog):
    app = build_app(engine)
    client = app.test_client()
    instance_id, task_id = start_and_prepare(engine)
    with caplog.at_level(logging.INFO):
        response = client.post(f"/api/v1/tasks/{task_id}/complete", json={"data": {}},
                               headers=token_headers(client, "secretary"))
    assert response.status_code == 422, response.get_data(as_text=True)
    message = response.get_json()["message"]
    assert "'reviewers'" in message and "'review'" in message and "Traceback" not in message
    no_tracebacks(caplog)
    assert [t["id"] for t in engine.tasks.query(instance_id=instance_id)] == [task_id]


def test_the_simulation_reports_it_on_the_step(engine, caplog):
    app = modeler_app(engine)
    scenario = {"start": "2026-03-02T09:00", "steps": [{"complete": "prepare"}]}
    with caplog.at_level(logging.INFO):
        response = post_json(signed_in(app), "/modeler/simulate",
                             {"xml": DIAGRAM.read_text(encoding="utf-8"), "scenario": scenario})
    assert response.status_code == 200, response.get_data(as_text=True)
    errors = [step["error"] for step in response.get_json()["steps"] if step.get("error")]
    assert len(errors) == 1 and errors[0]["element_id"] == "review"
    assert "'reviewers'" in errors[0]["message"] and "Traceback" not in errors[0]["message"]
    no_tracebacks(caplog)
