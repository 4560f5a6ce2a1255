"""Every BPMN file of the shared conformance corpus is deployed or refused with a message; deployed ones start
or are refused cleanly — never a traceback."""

from __future__ import annotations

import pytest

from engine import KuratorError, ValidationFailed

from .support import CONFORMANCE

FILES = sorted(CONFORMANCE.rglob("*.bpmn")) if CONFORMANCE.is_dir() else []


@pytest.mark.skipif(not FILES, reason="the shared conformance corpus is not present")
@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(CONFORMANCE)) for p in FILES])
def test_deploys_or_is_refused_cleanly(engine, path):
    try:
        result = engine.repository.deploy([path])
    except ValidationFailed as exc:
        errors = [p for p in exc.problems if p.severity == "error"]
        assert errors, "a refusal must say why"
        assert all(p.message and p.file == path.name for p in errors)
        return
    assert result.items
    for item in result.items:
        try:
            instance_id = engine.runtime.start(item.key)
        except KuratorError as exc:  # e.g. the diagram needs variables nobody gave it
            assert exc.message
            continue
        info = engine.runtime.instance(instance_id)
        assert info["status"] in ("running", "completed")


@pytest.mark.skipif(not FILES, reason="the shared conformance corpus is not present")
def test_most_spiffworkflow_diagrams_deploy(engine):
    deployed = 0
    spiff = [p for p in FILES if "spiffworkflow" in p.parts]
    for path in spiff:
        try:
            engine.repository.deploy([path])
            deployed += 1
        except ValidationFailed:
            pass
    assert deployed >= len(spiff) * 0.6, f"only {deployed} of {len(spiff)} deployed"
