"""Scripts and expressions from diagrams are untrusted: escapes are refused at deploy time or fail at run time
with a clear error, and the instance is left unchanged."""

from __future__ import annotations

import pytest

from engine import ExecutionError, ValidationFailed

from .test_repository import diagram

ESCAPES = [
    "__import__('os').system('true')",
    "x = ().__class__.__base__.__subclasses__()",
    "data = open('/etc/passwd').read()",
    "g = getattr(print, '__globals__')",
    "import os",
]


def script_diagram(script: str, key: str = "p") -> tuple[str, str]:
    body = ('<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="t"/>'
            '<bpmn:userTask id="t" name="Before" camunda:candidateGroups="admin"/>'
            '<bpmn:sequenceFlow id="f2" sourceRef="t" targetRef="sc"/>'
            f'<bpmn:scriptTask id="sc" name="Untrusted"><bpmn:script><![CDATA[{script}]]></bpmn:script>'
            '</bpmn:scriptTask><bpmn:sequenceFlow id="f3" sourceRef="sc" targetRef="e"/><bpmn:endEvent id="e"/>')
    return diagram(body, key)


@pytest.mark.parametrize("script", ESCAPES)
def test_escape_refused_at_deploy_time(engine, script):
    with pytest.raises(ValidationFailed) as err:
        engine.repository.deploy([script_diagram(script)])
    problem = [p for p in err.value.problems if p.severity == "error"][0]
    assert problem.element_id == "sc" and "Script of 'Untrusted'" in problem.message


@pytest.mark.parametrize("script, words", [
    ("while True:\n    n = 1", "too long"),
    ("s = 'x' * (10 ** 10)", "too large"),
    ("y = missing_variable + 1", "missing_variable"),
    ("a = [list(range(1000000))] * 1000000\nb = [list(range(1000000))] * 1000000\nsame = a == b",
     "seconds of processor time"),
])
def test_runtime_failure_leaves_the_instance_unchanged(engine, script, words):
    engine.identity.add_user("admin", ["admin"])
    engine.repository.deploy([script_diagram(script)])
    instance_id = engine.runtime.start("p")
    task = engine.tasks.query(instance_id=instance_id)[0]
    before = engine.runtime.instance(instance_id)
    with pytest.raises(ExecutionError) as err:
        engine.tasks.complete(task["id"], "admin", {"note": "x"})
    assert err.value.element_id == "sc"
    assert words in err.value.message.lower() or words in err.value.message
    after = engine.runtime.instance(instance_id)
    assert after["revision"] == before["revision"] and after["variables"] == before["variables"]
    assert engine.tasks.query(instance_id=instance_id)[0]["id"] == task["id"]
    assert "task_completed" not in [e["type"] for e in engine.history.for_instance(instance_id)]
