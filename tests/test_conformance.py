"""Every BPMN file of the shared conformance corpus is deployed or refused with a message; deployed ones start
or are refused cleanly — never a traceback, neither raised nor logged, nor printed by the command line."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from engine import KuratorError, ValidationFailed

from .support import CONFORMANCE

FILES = sorted(CONFORMANCE.rglob("*.bpmn")) if CONFORMANCE.is_dir() else []
MISSING_COLLECTION = CONFORMANCE / "spiffworkflow" / "camunda" / "parallel_multiinstance_collection.bpmn"


def logged_tracebacks(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


@pytest.mark.skipif(not FILES, reason="the shared conformance corpus is not present")
@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(CONFORMANCE)) for p in FILES])
def test_deploys_or_is_refused_cleanly(engine, path, caplog):
    caplog.set_level(logging.INFO)
    try:
        result = engine.repository.deploy([path])
    except ValidationFailed as exc:
        errors = [p for p in exc.problems if p.severity == "error"]
        assert errors, "a refusal must say why"
        assert all(p.message and p.file == path.name for p in errors)
        assert logged_tracebacks(caplog) == []
        return
    assert result.items
    for item in result.items:
        try:
            instance_id = engine.runtime.start(item.key)
        except KuratorError as exc:  # e.g. the diagram needs variables nobody gave it
            assert exc.message and "Traceback" not in exc.message
            continue
        info = engine.runtime.instance(instance_id)
        assert info["status"] in ("running", "completed")
    assert logged_tracebacks(caplog) == []


@pytest.mark.skipif(not MISSING_COLLECTION.is_file(), reason="the shared conformance corpus is not present")
def test_the_command_line_names_a_missing_collection_without_a_traceback(tmp_path):
    env = {**os.environ, "KURATOR_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}

    def kurator(*args):
        return subprocess.run([sys.executable, "-m", "engine.cli", *args], env=env, capture_output=True, text=True,
                              timeout=120)

    for args in (("init-db",), ("deploy", str(MISSING_COLLECTION))):
        done = kurator(*args)
        assert done.returncode == 0 and "Traceback" not in done.stdout + done.stderr, done.stderr
    started = kurator("start", "main")
    output = started.stdout + started.stderr
    assert started.returncode == 1 and "Traceback" not in output, output
    assert "'input_data'" in output and "any_task" in output, output


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
