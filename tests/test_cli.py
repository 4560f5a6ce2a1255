"""The `kurator` command line, end to end on an SQLite file (each command is a fresh process-like call)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from engine.tasks import TASK_FIELDS
from webapp.cli import main  # the `kurator` command: the engine's commands on the product's engine (SOP roles)

from .support import DIAGRAMS

MSK = ZoneInfo("Europe/Moscow")


@pytest.fixture
def kurator(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()

    def run(*args, ok=True):
        result = runner.invoke(main, ["--database-url", url, "--now", "2025-10-30T09:00:00+03:00", *args],
                               catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    run("init-db")
    return run


def test_full_cycle_with_time_travel(kurator):
    kurator("agencies", "add", "КДН", "--municipality", "Йошкар-Ола", "--kind", "commission")
    kurator("users", "add", "secretary", "--role", "commission_secretary", "--agency", "КДН")
    kurator("users", "add", "manager", "--role", "manager")
    out = kurator("deploy", str(DIAGRAMS / "lifecycle.bpmn"), str(DIAGRAMS / "check_form.json"), "--json").output
    assert {i["key"] for i in json.loads(out)["items"]} == {"lifecycle", "plan_sub", "check_form"}
    started = json.loads(kurator("start", "lifecycle", "--var", "received=2025-10-30", "--var", "curator=secretary",
                                 "--business-key", "case-1", "--json").output)
    instance_id = started["instance_id"]

    tasks = json.loads(kurator("tasks", "--user", "secretary", "--json").output)
    assert len(tasks) == 1 and set(tasks[0]) == set(TASK_FIELDS)
    assert datetime.fromisoformat(tasks[0]["due"]) == datetime(2025, 11, 7, 23, 59, 59, tzinfo=MSK)
    task_id = tasks[0]["id"]
    assert json.loads(kurator("claim", task_id, "--user", "secretary", "--json").output)["assignee"] == "secretary"
    kurator("unclaim", task_id, "--user", "secretary")

    tick = json.loads(kurator("tick", "--at", "2025-11-08T09:00:00+03:00", "--json").output)
    assert tick["timers_fired"] == 1 and tick["overdue_marked"] == 1
    overdue = json.loads(kurator("tasks", "--overdue", "--json").output)
    assert [t["id"] for t in overdue] == [task_id]
    escalation = json.loads(kurator("tasks", "--role", "manager", "--json").output)
    assert [t["name"] for t in escalation] == ["Check is overdue: take measures"]

    bad = kurator("complete", task_id, "--user", "secretary", "--data", '{"danger_level": "extreme"}', ok=False)
    assert bad.exit_code == 1 and "danger_level" in bad.output and "Traceback" not in bad.output
    kurator("complete", task_id, "--user", "secretary", "--data", '{"sop_confirmed": false, "danger_level": "low"}')
    history = json.loads(kurator("history", str(instance_id), "--json").output)
    kinds = [e["type"] for e in history]
    assert kinds[0] == "instance_started" and "timer_fired" in kinds and "task_overdue" in kinds
    assert "task_completed" in kinds


def test_errors_are_messages_not_tracebacks(kurator, tmp_path):
    bad = tmp_path / "bad.bpmn"
    bad.write_text("<bpmn:definitions")
    result = kurator("deploy", str(bad), ok=False)
    assert result.exit_code == 1 and "well-formed" in result.output and "Traceback" not in result.output
    result = kurator("start", "nothing", ok=False)
    assert result.exit_code == 1 and "No deployed process 'nothing'" in result.output
    result = kurator("users", "add", "x", "--role", "wizard", ok=False)
    assert "Unknown role(s) wizard" in result.output
    result = kurator("tick", "--at", "yesterday", ok=False)
    assert result.exit_code == 2 and "ISO 8601" in result.output


def test_console_script_runs_as_a_process(tmp_path):
    env = {**os.environ, "KURATOR_DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}"}
    for args in (["init-db"], ["agencies", "add", "A", "--municipality", "M", "--timezone", "Asia/Yekaterinburg"],
                 ["agencies", "list", "--json"]):
        done = subprocess.run([sys.executable, "-m", "engine.cli", *args], env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["timezone"] == "Asia/Yekaterinburg"


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads the process tree from /proc")
def test_run_stopped_with_sigterm_stops_its_scheduler(tmp_path):
    """`kurator run` starts the scheduler as a child process; stopped as a service manager stops it (SIGTERM), it
    stops the scheduler too instead of leaving it running on the database."""
    import signal
    import socket
    import time

    env = {**os.environ, "KURATOR_DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}"}
    subprocess.run([sys.executable, "-m", "webapp.cli", "init-db"], env=env, check=True, capture_output=True,
                   timeout=120)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    web = subprocess.Popen([sys.executable, "-m", "webapp.cli", "run", "--port", str(port)], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def children() -> list[int]:
        with open(f"/proc/{web.pid}/task/{web.pid}/children") as listed:
            return [int(pid) for pid in listed.read().split()]

    try:
        deadline = time.monotonic() + 60
        while not children() and time.monotonic() < deadline:
            time.sleep(0.2)
        [scheduler] = children()
        web.send_signal(signal.SIGTERM)
        assert web.wait(timeout=30) == 0
        deadline = time.monotonic() + 30
        while os.path.exists(f"/proc/{scheduler}") and time.monotonic() < deadline:
            with open(f"/proc/{scheduler}/stat") as stat:
                if stat.read().split(")")[-1].split()[0] == "Z":  # a zombie has stopped; only its entry is left
                    break
            time.sleep(0.2)
        else:
            assert not os.path.exists(f"/proc/{scheduler}"), "the scheduler outlived `kurator run`"
    finally:
        if web.poll() is None:
            web.kill()
