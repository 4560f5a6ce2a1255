#!/usr/bin/env python
"""Kurator engine benchmark: task completions, the timer sweep and saved state size, against bare SpiffWorkflow.

Run from the repository root:

    .venv/bin/python bench/engine_bench.py                    # SQLite and PostgreSQL, default sizes
    .venv/bin/python bench/engine_bench.py --quick            # small smoke run (well under a minute)
    .venv/bin/python bench/engine_bench.py --database sqlite --instances 100 --timers 2000
    .venv/bin/python bench/engine_bench.py --quick --json --database sqlite   # sop_case figures as JSON only
    .venv/bin/python bench/engine_bench.py --quick --json --no-spec-cache     # the same, parsing specs per load
    .venv/bin/python bench/engine_bench.py --profile-sop --database postgres  # cProfile a completion and a timer

Each database gets a fresh schema (a temporary SQLite file, or a private PostgreSQL schema that is dropped at
the end). The same diagrams then run in memory on bare SpiffWorkflow, with the serializer configuration the
engine uses, so that the ratio Kurator/bare shows what the database, the inbox rows and history cost.
Figures are printed as a table and written as JSON to bench/out/engine_bench.json (the generated diagrams go to
bench/out/diagrams/). See bench/RESULTS.md.
"""

# The engine is imported after the repository root is put on sys.path.
# ruff: noqa: E402

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import importlib.metadata
import json
import os
import platform
import pstats
import shutil
import sqlite3
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from uuid import UUID

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import func, select, text

from engine import Database, FrozenClock, ProcessEngine
from engine.bpmn.parser import KuratorParser
from engine.bpmn.script_engine import CURRENT_CLOCK, is_iso_literal
from engine.bpmn.serializer import _CONFIG
from engine.clock import parse_instant
from engine.models import HistoryEvent, HumanTask, ProcessDefinition, ProcessInstance
from sop.migrations import BRANCH as SOP_MIGRATIONS
from sop.roles import ROLES as SOP_ROLES
from tests.support import create_postgres_schema, drop_postgres_schema, open_database

OUT_DIR = ROOT / "bench" / "out"
DEFAULT_OUTPUT = OUT_DIR / "engine_bench.json"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"

START_AT = "2025-10-30T09:00:00+03:00"  # a Thursday; the production calendar covers 2025
TIMER_DURATION = "PT1H"
AFTER_TIMERS = timedelta(hours=1, minutes=1)  # where the clock moves before the sweep

ROLE = "commission_secretary"
USER = "bench_secretary"
SEQUENCE_KEY = "bench_sequence"
TIMER_KEY = "bench_timer"

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"


# -- diagrams ---------------------------------------------------------------------------------------------------


def _definitions(defs_id: str, body: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<bpmn:definitions xmlns:bpmn="{BPMN_NS}" xmlns:camunda="{CAMUNDA_NS}" id="{defs_id}"\n'
        '                  targetNamespace="http://kurator.example/bench">\n'
        f"{body}"
        "</bpmn:definitions>\n"
    )


def _lane(node_ids: list[str]) -> str:
    refs = "".join(f"        <bpmn:flowNodeRef>{node}</bpmn:flowNodeRef>\n" for node in node_ids)
    return (
        '    <bpmn:laneSet id="lanes">\n'
        f'      <bpmn:lane id="lane_secretary" name="{ROLE}">\n{refs}      </bpmn:lane>\n'
        "    </bpmn:laneSet>\n"
    )


def sequence_diagram(tasks: int) -> str:
    """A straight line of `tasks` user tasks in the secretary's lane, each due in 5 working days."""
    task_ids = [f"task_{i:02d}" for i in range(1, tasks + 1)]
    nodes = ["start", *task_ids, "end"]
    lines = ['    <bpmn:startEvent id="start" name="Case registered" />\n']
    for index, task_id in enumerate(task_ids, start=1):
        lines.append(f'    <bpmn:userTask id="{task_id}" name="Step {index}" '
                     'camunda:dueDate="${working_days(5)}" />\n')
    lines.append('    <bpmn:endEvent id="end" name="Case closed" />\n')
    for index, (source, target) in enumerate(zip(nodes, nodes[1:], strict=False)):
        lines.append(f'    <bpmn:sequenceFlow id="flow_{index:02d}" sourceRef="{source}" targetRef="{target}" />\n')
    body = (f'  <bpmn:process id="{SEQUENCE_KEY}" name="Benchmark: {tasks} user tasks" isExecutable="true">\n'
            + _lane(nodes) + "".join(lines) + "  </bpmn:process>\n")
    return _definitions("bench_sequence_defs", body)


def timer_diagram() -> str:
    """Start, an intermediate timer catch event (one hour), a follow-up user task, end."""
    nodes = ["start", "wait", "follow_up", "end"]
    body = (
        f'  <bpmn:process id="{TIMER_KEY}" name="Benchmark: one timer" isExecutable="true">\n'
        + _lane(nodes)
        + '    <bpmn:startEvent id="start" name="Case registered" />\n'
        '    <bpmn:intermediateCatchEvent id="wait" name="Wait an hour">\n'
        '      <bpmn:timerEventDefinition id="wait_timer">\n'
        f"        <bpmn:timeDuration>{TIMER_DURATION}</bpmn:timeDuration>\n"
        "      </bpmn:timerEventDefinition>\n"
        "    </bpmn:intermediateCatchEvent>\n"
        '    <bpmn:userTask id="follow_up" name="Follow up after the timer" />\n'
        '    <bpmn:endEvent id="end" name="Done" />\n'
        '    <bpmn:sequenceFlow id="flow_0" sourceRef="start" targetRef="wait" />\n'
        '    <bpmn:sequenceFlow id="flow_1" sourceRef="wait" targetRef="follow_up" />\n'
        '    <bpmn:sequenceFlow id="flow_2" sourceRef="follow_up" targetRef="end" />\n'
        "  </bpmn:process>\n"
    )
    return _definitions("bench_timer_defs", body)


def completion_data(step: int) -> dict[str, Any]:
    """What a form submits at `step`: one new variable per step, as a typical form would add."""
    return {f"answer_{step:02d}": f"checked at step {step}"}


# -- statistics and formatting ----------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    """Linear-interpolated percentile (numpy's default method)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def latency_summary(seconds: list[float]) -> dict[str, float]:
    total = sum(seconds)
    return {
        "count": len(seconds),
        "total_s": total,
        "per_s": len(seconds) / total if total else float("nan"),
        "median_ms": percentile(seconds, 0.5) * 1000,
        "p95_ms": percentile(seconds, 0.95) * 1000,
        "max_ms": max(seconds) * 1000 if seconds else float("nan"),
    }


def progress(message: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {message}", flush=True)


def loud_error(message: str) -> None:
    bar = "!" * 100
    print(f"\n{bar}\n!!! BENCHMARK CHECK FAILED: {message}\n{bar}\n", file=sys.stderr, flush=True)


# -- databases --------------------------------------------------------------------------------------------------


@contextmanager
def fresh_database(kind: str, postgres_url: str) -> Iterator[Database]:
    """A migrated, empty database: a temporary SQLite file, or a private PostgreSQL schema."""
    if kind == "sqlite":
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        directory = Path(tempfile.mkdtemp(prefix="sqlite-", dir=OUT_DIR))
        db = open_database(f"sqlite:///{directory / 'bench.db'}")
        db.bench_target = (db.url, None)  # how another process opens the same database
        try:
            db.upgrade([SOP_MIGRATIONS])  # the schema of the product: the engine's and the domain's
            yield db
        finally:
            db.dispose()
            shutil.rmtree(directory, ignore_errors=True)
    else:
        schema = create_postgres_schema(postgres_url)
        db = open_database(postgres_url, schema)
        db.bench_target = (postgres_url, schema)
        try:
            db.upgrade([SOP_MIGRATIONS])  # the schema of the product: the engine's and the domain's
            yield db
        finally:
            db.dispose()
            drop_postgres_schema(postgres_url, schema)


def server_version(db: Database) -> str:
    if db.is_postgresql:
        with db.engine.connect() as conn:
            return str(conn.execute(text("SHOW server_version")).scalar())
    return f"SQLite {sqlite3.sqlite_version}"


def state_sizes(engine: ProcessEngine, instance_ids: list[int]) -> dict[str, float]:
    """Bytes of the stored state (`process_instance.state`), first instance and mean over all."""
    with engine.db.session() as session:
        rows = dict(session.execute(select(ProcessInstance.id, ProcessInstance.state)
                                    .where(ProcessInstance.id.in_(instance_ids))).all())
    sizes = [len(rows[i].encode("utf-8")) for i in instance_ids]
    return {"first": sizes[0], "mean": sum(sizes) / len(sizes)}


def open_task_id(engine: ProcessEngine, instance_id: int) -> str:
    tasks = engine.tasks.query(instance_id=instance_id)
    if len(tasks) != 1:
        raise RuntimeError(f"instance {instance_id}: expected one open task, found {len(tasks)}: {tasks}")
    return tasks[0]["id"]


# -- Kurator ----------------------------------------------------------------------------------------------------


def new_engine(db: Database, diagrams: dict[str, str]) -> ProcessEngine:
    engine = ProcessEngine(db, FrozenClock(START_AT))
    engine.identity.ensure_default_roles()
    engine.identity.ensure_roles(SOP_ROLES)  # the domain's roles, used by its diagrams
    engine.identity.add_user(USER, [ROLE])
    result = engine.repository.deploy(list(diagrams.items()), deployed_by="bench")
    for warning in result.warnings:
        progress(f"deployment warning: {warning.to_dict()}")
    return engine


def kurator_completions(engine: ProcessEngine, instances: int, tasks: int) -> dict[str, Any]:
    """Start `instances` cases of the sequence, then complete step 1 of every case, step 2 of every case, ..."""
    ids = [engine.runtime.start(SEQUENCE_KEY, {"case_no": i}, business_key=f"seq-{i}") for i in range(instances)]
    sizes = {"0": state_sizes(engine, ids)}
    checkpoints = {tasks // 2, tasks}
    latencies: list[float] = []
    by_step: dict[int, list[float]] = {}
    gc.collect()
    wall = time.perf_counter()
    for step in range(1, tasks + 1):
        for instance_id in ids:
            task_id = open_task_id(engine, instance_id)  # what the inbox shows; not part of the completion
            data = completion_data(step)
            began = time.perf_counter()
            engine.tasks.complete(task_id, USER, data)
            elapsed = time.perf_counter() - began
            latencies.append(elapsed)
            by_step.setdefault(step, []).append(elapsed)
        if step in checkpoints:
            sizes[str(step)] = state_sizes(engine, ids)
    wall = time.perf_counter() - wall
    with engine.db.session() as session:
        statuses = dict(session.execute(select(ProcessInstance.status, func.count())
                                        .where(ProcessInstance.id.in_(ids))
                                        .group_by(ProcessInstance.status)).all())
    if statuses != {"completed": instances}:
        loud_error(f"after {tasks} completions each, instance statuses are {statuses}, "
                   f"expected all {instances} completed")
    summary = latency_summary(latencies)
    summary["wall_s_including_inbox_queries"] = wall
    summary["first_step_median_ms"] = percentile(by_step[1], 0.5) * 1000
    summary["last_step_median_ms"] = percentile(by_step[tasks], 0.5) * 1000
    summary["instance_statuses"] = statuses
    return {"completion": summary, "state_bytes": sizes}


def kurator_timers(engine: ProcessEngine, count: int, batch: int) -> dict[str, Any]:
    """Start `count` timer cases (untimed set-up, in batches), move the clock past the timers, time one sweep."""
    began = time.perf_counter()
    ids: list[int] = []
    for first in range(0, count, batch):
        for i in range(first, min(first + batch, count)):
            ids.append(engine.runtime.start(TIMER_KEY, {"case_no": i}, business_key=f"timer-{i}"))
        progress(f"started {len(ids)}/{count} timer instances ({len(ids) / (time.perf_counter() - began):.0f}/s)")
    start_s = time.perf_counter() - began
    with engine.db.session() as session:
        due = session.scalar(select(func.count()).select_from(ProcessInstance)
                             .where(ProcessInstance.process_key == TIMER_KEY, ProcessInstance.status == "running",
                                    ProcessInstance.next_wakeup.is_not(None)))
        timer_state = session.scalar(select(ProcessInstance.state).where(ProcessInstance.id == ids[0]))
    if due != count:
        loud_error(f"{due} of {count} timer instances have a next wake-up before the sweep")
    engine.clock.set(parse_instant(START_AT) + AFTER_TIMERS)
    gc.collect()
    began = time.perf_counter()
    result = engine.management.sweep()
    sweep_s = time.perf_counter() - began
    with engine.db.session() as session:
        follow_ups = session.scalar(select(func.count()).select_from(HumanTask)
                                    .where(HumanTask.process_key == TIMER_KEY, HumanTask.status == "open"))
    ok = result.timers_fired == count and result.instances == count and not result.incidents
    if not ok:
        loud_error(f"the sweep fired {result.timers_fired} timers in {result.instances} instances, expected {count}; "
                   f"incidents: {result.incidents[:3]}{' ...' if len(result.incidents) > 3 else ''}")
    if follow_ups != count:
        loud_error(f"{follow_ups} follow-up tasks are open after the sweep, expected {count}")
    again = engine.management.sweep()
    if again.timers_fired:
        loud_error(f"a second sweep fired {again.timers_fired} timers again")
    return {
        "instances": count,
        "start_s": start_s,
        "starts_per_s": count / start_s if start_s else float("nan"),
        "sweep_s": sweep_s,
        "timers_fired": result.timers_fired,
        "instances_moved": result.instances,
        "incidents": len(result.incidents),
        "overdue_marked": result.overdue_marked,
        "timers_per_s": result.timers_fired / sweep_s if sweep_s else float("nan"),
        "follow_up_tasks_open": follow_ups,
        "verified": ok and follow_ups == count,
        "state_bytes_waiting": len(timer_state.encode("utf-8")),
    }


def stored_spec_sizes(engine: ProcessEngine) -> dict[str, int]:
    with engine.db.session() as session:
        rows = session.execute(select(ProcessDefinition.key, ProcessDefinition.spec_json)).all()
    return {key: len(spec.encode("utf-8")) for key, spec in rows}


def profile_completions(engine: ProcessEngine, tasks: int, top: int) -> dict[str, Any]:
    """cProfile every completion of one extra case; figures are per completion (averaged over `tasks`)."""
    instance_id = engine.runtime.start(SEQUENCE_KEY, {"case_no": -1}, business_key="profiled")
    profile = cProfile.Profile()
    for step in range(1, tasks + 1):
        task_id = open_task_id(engine, instance_id)
        profile.enable()
        engine.tasks.complete(task_id, USER, completion_data(step))
        profile.disable()
    stats = pstats.Stats(profile)
    rows = []
    for (filename, line, name), (_primitive, calls, tottime, cumtime, _callers) in stats.stats.items():
        rows.append({"function": f"{_short_path(filename)}:{line}({name})", "calls": calls / tasks,
                     "tottime_ms": tottime * 1000 / tasks, "cumtime_ms": cumtime * 1000 / tasks})
    # builtins and context-manager plumbing only repeat their callers' cumulative time
    plumbing = ("~:", "contextlib.py:")
    by_cumulative = sorted((row for row in rows if not row["function"].startswith(plumbing)
                            and "/contextlib.py:" not in row["function"]),
                           key=lambda row: row["cumtime_ms"], reverse=True)[:top]
    engine_functions = sorted((row for row in rows if row["function"].startswith("engine/")),
                              key=lambda row: row["cumtime_ms"], reverse=True)[:top]
    by_own_time = sorted(rows, key=lambda row: row["tottime_ms"], reverse=True)[:top]
    return {"completions": tasks, "per_completion_ms": stats.total_tt * 1000 / tasks,
            "by_cumulative": by_cumulative, "engine_functions": engine_functions, "by_own_time": by_own_time}


def format_profile(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'calls':>7}  {'own ms':>7}  {'cum ms':>7}  function"]
    for row in rows:
        lines.append(f"{row['calls']:7.1f}  {row['tottime_ms']:7.2f}  {row['cumtime_ms']:7.2f}  {row['function']}")
    return "\n".join(lines)


def _short_path(filename: str) -> str:
    for marker in ("site-packages/", str(ROOT) + "/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def run_database(kind: str, args: argparse.Namespace, diagrams: dict[str, str]) -> dict[str, Any]:
    print(f"\n== {kind} ==", flush=True)
    with fresh_database(kind, args.postgres_url) as db:
        engine = new_engine(db, diagrams)
        result: dict[str, Any] = {"server": server_version(db)}
        progress(f"{result['server']}; completing {args.instances} x {args.tasks} tasks")
        result.update(kurator_completions(engine, args.instances, args.tasks))
        c = result["completion"]
        progress(f"{c['per_s']:.1f} completions/s, median {c['median_ms']:.2f} ms, p95 {c['p95_ms']:.2f} ms")
        result["spec_bytes"] = stored_spec_sizes(engine)
        if args.profile:
            result["profile"] = profile_completions(engine, args.tasks, args.profile_top)
        progress(f"starting {args.timers} timer instances (set-up, not timed)")
        result["timers"] = kurator_timers(engine, args.timers, args.start_batch)
        t = result["timers"]
        progress(f"sweep: {t['timers_fired']} timers in {t['sweep_s']:.2f} s = {t['timers_per_s']:.1f} timers/s")
        return result


# -- bare SpiffWorkflow ------------------------------------------------------------------------------------------


class IsoLiteralScriptEngine(PythonScriptEngine):
    """Plain Python evaluation, except that ISO 8601 timer literals (`PT1H`) are returned as text.

    Camunda writes timer definitions as bare ISO 8601 text while SpiffWorkflow evaluates them as Python, so
    plain Spiff would fail on `PT1H`; this is the smallest change that lets bare Spiff run the same diagram.
    """

    def evaluate(self, task, expression, external_context=None):
        if is_iso_literal(expression):
            return expression.strip()
        return super().evaluate(task, expression, external_context)


def bare_specs(diagram: str, key: str):
    parser = KuratorParser()
    parser.add_bpmn_str(diagram.encode("utf-8"), filename=f"{key}.bpmn")
    return parser.get_spec(key), parser.get_subprocess_specs(key)


def bare_start(spec, subprocess_specs, script_engine: PythonScriptEngine, variables: dict[str, Any]) -> BpmnWorkflow:
    workflow = BpmnWorkflow(spec, subprocess_specs, script_engine=script_engine)
    for task in workflow.get_tasks(state=TaskState.READY):
        task.data.update(variables)
    workflow.do_engine_steps()
    return workflow


def ready_user_task(workflow: BpmnWorkflow) -> UUID:
    ready = workflow.get_tasks(state=TaskState.READY, manual=True)
    if len(ready) != 1:
        raise RuntimeError(f"bare workflow: expected one ready user task, found {len(ready)}")
    return ready[0].id


def bare_completions(serializer: BpmnWorkflowSerializer, diagram: str, instances: int,
                     tasks: int) -> dict[str, Any]:
    """Per completion: deserialize_json, complete the task, do_engine_steps, serialize_json (spec included)."""
    spec, subprocess_specs = bare_specs(diagram, SEQUENCE_KEY)
    script_engine = PythonScriptEngine()
    states: list[str] = []
    next_ids: list[UUID] = []
    for i in range(instances):
        workflow = bare_start(spec, subprocess_specs, script_engine, {"case_no": i})
        next_ids.append(ready_user_task(workflow))
        states.append(serializer.serialize_json(workflow))
    sizes = {"0": len(states[0].encode("utf-8"))}
    checkpoints = {tasks // 2, tasks}
    latencies: list[float] = []
    completed = 0
    gc.collect()
    for step in range(1, tasks + 1):
        for index in range(instances):
            data = completion_data(step)
            began = time.perf_counter()
            workflow = serializer.deserialize_json(states[index])
            workflow.script_engine = script_engine
            task = workflow.get_task_from_id(next_ids[index])
            task.set_data(**data)
            task.run()
            workflow.do_engine_steps()
            states[index] = serializer.serialize_json(workflow)
            latencies.append(time.perf_counter() - began)
            if step < tasks:
                next_ids[index] = ready_user_task(workflow)
            elif workflow.is_completed():
                completed += 1
        if step in checkpoints:
            sizes[str(step)] = len(states[0].encode("utf-8"))
    if completed != instances:
        loud_error(f"bare Spiff: {completed} of {instances} workflows completed after {tasks} tasks")
    summary = latency_summary(latencies)
    return {"completion": summary, "state_bytes": sizes}


def bare_timers(serializer: BpmnWorkflowSerializer, diagram: str, count: int, clock: FrozenClock) -> dict[str, Any]:
    """Per workflow: deserialize_json, refresh_timers, do_engine_steps, serialize_json."""
    spec, subprocess_specs = bare_specs(diagram, TIMER_KEY)
    script_engine = IsoLiteralScriptEngine()
    clock.set(START_AT)
    states = [serializer.serialize_json(bare_start(spec, subprocess_specs, script_engine, {"case_no": i}))
              for i in range(count)]
    waiting_bytes = len(states[0].encode("utf-8"))
    clock.set(parse_instant(START_AT) + AFTER_TIMERS)
    fired = 0
    gc.collect()
    began = time.perf_counter()
    for index, state in enumerate(states):
        workflow = serializer.deserialize_json(state)
        workflow.script_engine = script_engine
        workflow.refresh_timers()
        workflow.do_engine_steps()
        states[index] = serializer.serialize_json(workflow)
        if not workflow.get_tasks(state=TaskState.WAITING):
            fired += 1
    elapsed = time.perf_counter() - began
    if fired != count:
        loud_error(f"bare Spiff: {fired} of {count} timers fired")
    return {"instances": count, "sweep_s": elapsed, "timers_fired": fired,
            "timers_per_s": fired / elapsed if elapsed else float("nan"), "verified": fired == count,
            "state_bytes_waiting": waiting_bytes}


def run_bare(args: argparse.Namespace, diagrams: dict[str, str]) -> dict[str, Any]:
    print("\n== bare SpiffWorkflow (in memory) ==", flush=True)
    serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(_CONFIG))
    clock = FrozenClock(START_AT)
    token = CURRENT_CLOCK.set(clock)  # Spiff's timers read the same frozen clock as the engine's
    try:
        result = bare_completions(serializer, diagrams["sequence.bpmn"], args.instances, args.tasks)
        c = result["completion"]
        progress(f"{c['per_s']:.1f} completions/s, median {c['median_ms']:.2f} ms, p95 {c['p95_ms']:.2f} ms")
        result["timers"] = bare_timers(serializer, diagrams["timer.bpmn"], args.timers, clock)
        t = result["timers"]
        progress(f"timers: {t['timers_fired']} in {t['sweep_s']:.2f} s = {t['timers_per_s']:.1f} timers/s")
    finally:
        CURRENT_CLOCK.reset(token)
    return result


# -- sop_case: completion ratio, age ratio, state size (--json) ---------------------------------------------------

SOP_USERS = {"commission_secretary": "secretary", "commission": "chair", "curator": "curator1",
             "agency_specialist": "specialist", "guardianship": "guardian", "police": "inspector",
             "social_protection": "social", "regional_secretary": "regional"}
SOP_START = {"case_id": 7, "intake_id": 107, "received": "2025-10-30", "municipality": "Йошкар-Ола",
             "family_name": "Ивановы"}
SOP_CHECK = {"minor_name": "Иванов Петр, 12.03.2012", "parents_names": "Иванова Анна Сергеевна",
             "living_conditions": "Отдельного места для занятий нет", "family_criteria": ["c1", "c2"],
             "danger_level": "high", "sop_confirmed": True, "conclusion": "Семья находится в СОП"}
SOP_RECOGNITION = {"decision": "recognize", "meeting_date": "2025-12-23", "resolution_number": "45/3",
                   "curator": "curator1", "working_group": ["police", "education"], "consent_obtained": True}
SOP_CARD = {"detection_date": "2025-10-29", "detected_by": "МБОУ СОШ № 5", "minor_name": "Иванов Петр, 12.03.2012",
            "parents_names": "Иванова Анна Сергеевна", "parents_characteristic": "incompetent",
            "sop_kind": ["evasion"], "family_category": ["single_parent"], "school": "СОШ № 5, 7 «Б»"}
SOP_PROPOSAL = {"agency_name": "ОМВД", "proposal_situation": "Мать злоупотребляет алкоголем",
                "proposal_tasks": "Стабилизировать ситуацию", "proposal_activities": "Профилактическая беседа",
                "proposal_term": "до 01.03.2026"}
SOP_DRAFT = {"consilium_conclusion": "Реабилитационный потенциал средний", "goal": "Вывести семью из СОП",
             "programme_activities": "Беседа инспектора ПДН; ежемесячно; ОМВД\n\nПатронаж; еженедельно; КЦСОН\n",
             "patronage_kind": "periodic"}
SOP_APPROVE = {"decision": "approve", "protocol_number": "2", "approval_date": "2026-01-15"}
SOP_REWORK = {"decision": "rework", "protocol_number": "1", "approval_date": "2026-01-14",
              "comment": "Добавить мероприятия здравоохранения"}
SOP_DISPATCH = {"programme_sent": True, "programme_sent_date": "2026-01-16"}
# the user tasks of one case in order, from the check to the approved programme sent out (8 completions); the two
# proposals are the multi-instance of the called process sop_programme
SOP_PATH = [("sop_check", SOP_CHECK), ("sop_recognition", SOP_RECOGNITION), ("sop_registration_card", SOP_CARD),
            ("sop_proposals", SOP_PROPOSAL), ("sop_proposals", SOP_PROPOSAL), ("sop_programme_draft", SOP_DRAFT),
            ("sop_programme_approval", SOP_APPROVE), ("sop_programme_dispatch", SOP_DISPATCH)]
SOP_MEETING = "2025-12-23T10:00:00+03:00"  # where the clock moves after the check (as in the tests)
AGED_TASKS = 500


# Cases run first on each side and not counted: the first case of a process pays one-time costs (a diagram's
# first parse and load, the forms read, the statements' first compilation, the connection pool's first
# connection) that no later completion pays.
WARM_UP_CASES = 1


def sop_engine(db: Database) -> ProcessEngine:
    engine = ProcessEngine(db, FrozenClock(START_AT))
    engine.identity.ensure_default_roles()
    engine.identity.ensure_roles(SOP_ROLES)  # the domain's roles, used by its diagrams
    files = sorted((ROOT / "workflows").glob("*.bpmn")) + sorted((ROOT / "forms").glob("*.json"))
    result = engine.repository.deploy(files, deployed_by="bench")
    if result.warnings:
        loud_error(f"sop deployment warnings: {[w.to_dict() for w in result.warnings]}")
    engine.identity.add_agency("КДНиЗП г. Йошкар-Олы", "Йошкар-Ола", kind="commission")
    for role, user in SOP_USERS.items():
        engine.identity.add_user(user, [role], agency="КДНиЗП г. Йошкар-Олы")
    return engine


def sop_open_task(engine: ProcessEngine, instance_id: int, element: str) -> dict[str, Any]:
    for task in engine.tasks.query(instance_id=instance_id):
        if task["element_id"] == element:
            return task
    raise RuntimeError(f"instance {instance_id}: no open task {element}")


def sop_complete(engine: ProcessEngine, instance_id: int, element: str, data: dict[str, Any]) -> float:
    """Complete the open task of `element` as a user of its role; returns the seconds inside `complete`."""
    task = sop_open_task(engine, instance_id, element)
    user = task["assignee"] or SOP_USERS[task["candidate_roles"][0]]
    began = time.perf_counter()
    engine.tasks.complete(task["id"], user, data)
    return time.perf_counter() - began


def business_free_bytes(state: str) -> int:
    """Bytes of a stored state with the business data of every task and (sub)process emptied (compact JSON; a
    data field the layout leaves out is not added)."""
    dct = json.loads(state)

    def strip(wf: dict[str, Any]) -> None:
        for holder in [wf, *wf.get("tasks", {}).values()]:
            for key in ("data", "delta"):
                if key in holder:
                    holder[key] = {}

    strip(dct)
    for sp in dct.get("subprocesses", {}).values():
        strip(sp)
    return len(json.dumps(dct, separators=(",", ":")).encode("utf-8"))


def sop_kurator(engine: ProcessEngine, instances: int, age_samples: int,
                warm_up: int = WARM_UP_CASES) -> dict[str, Any]:
    """Completions along the SOP path in fresh cases (after `warm_up` cases whose times are not counted), the state
    after approval, and the rework loop young and old."""
    latencies: list[float] = []
    state_bytes = None
    for i in range(warm_up + instances):
        engine.clock.set(START_AT)
        instance_id = engine.runtime.start("sop_case", dict(SOP_START, case_id=i), business_key=f"case-{i}")
        for element, data in SOP_PATH:
            seconds = sop_complete(engine, instance_id, element, data)
            if i >= warm_up:
                latencies.append(seconds)
            if element == "sop_check":
                engine.clock.set(SOP_MEETING)
            if element == "sop_programme_approval" and state_bytes is None:
                with engine.db.session() as session:
                    state = session.get(ProcessInstance, instance_id).state
                state_bytes = {"raw": len(state.encode("utf-8")), "without_business_data": business_free_bytes(state)}
    # the rework loop (draft -> approval "rework" -> draft ...) inside the called programme process
    engine.clock.set(START_AT)
    old, young = (engine.runtime.start("sop_case", dict(SOP_START, case_id=10_000 + n), business_key=f"loop-{n}")
                  for n in range(2))
    for instance_id in (old, young):
        engine.clock.set(START_AT)
        for element, data in SOP_PATH[:5]:
            sop_complete(engine, instance_id, element, data)
            if element == "sop_check":
                engine.clock.set(SOP_MEETING)
    done = 5
    loop = [("sop_programme_draft", SOP_DRAFT), ("sop_programme_approval", SOP_REWORK)]
    while done < AGED_TASKS or (done - 5) % 2:  # the old case stops where the young one is: before a draft
        sop_complete(engine, old, *loop[(done - 5) % 2])
        done += 1
    aged: list[float] = []
    fresh: list[float] = []
    for n in range(age_samples):  # interleaved, so that both see the same machine load
        aged.append(sop_complete(engine, old, *loop[n % 2]))
        fresh.append(sop_complete(engine, young, *loop[n % 2]))
    return {"completion": latency_summary(latencies), "state_bytes": state_bytes,
            "aged_completion": latency_summary(aged) | {"completed_tasks_before": done},
            "fresh_loop_completion": latency_summary(fresh)}


def bare_sop_case(script_engine: PythonScriptEngine, case_id: int) -> BpmnWorkflow:
    """A `sop_case` started on bare SpiffWorkflow in memory, on spec objects of its own: SpiffWorkflow's Camunda
    multi-instance rewrites its spec when it runs, so a second case on the same objects would fail."""
    parser = KuratorParser()
    parser.add_bpmn_files([str(path) for path in sorted((ROOT / "workflows").glob("*.bpmn"))])
    workflow = BpmnWorkflow(parser.get_spec("sop_case"), parser.get_subprocess_specs("sop_case"),
                            script_engine=script_engine)
    for task in workflow.get_tasks(state=TaskState.READY):
        task.data.update(dict(SOP_START, case_id=case_id))
    workflow.do_engine_steps()
    return workflow


def bare_ready(workflow: BpmnWorkflow, element: str) -> Any:
    """The ready user task of `element` in a bare workflow."""
    return next(t for t in workflow.get_tasks(state=TaskState.READY, manual=True) if t.task_spec.bpmn_id == element)


def bare_step(workflow: BpmnWorkflow, task: Any, data: dict[str, Any]) -> None:
    """The baseline's step: the user task given its data and run, then the engine steps."""
    task.set_data(**data)
    task.run()
    workflow.do_engine_steps()


def sop_bare(engine: ProcessEngine, instances: int, warm_up: int = WARM_UP_CASES) -> dict[str, Any]:
    """The same path on bare SpiffWorkflow in memory: set_data + run + do_engine_steps per user task (after
    `warm_up` cases whose times are not counted)."""
    script_engine = engine.executor.script_engine("Europe/Moscow")  # evaluates the Camunda expressions
    clock = FrozenClock(START_AT)
    token = CURRENT_CLOCK.set(clock)
    latencies: list[float] = []
    try:
        for i in range(warm_up + instances):
            clock.set(START_AT)
            workflow = bare_sop_case(script_engine, i)
            for element, data in SOP_PATH:
                task = bare_ready(workflow, element)
                began = time.perf_counter()
                bare_step(workflow, task, data)
                if i >= warm_up:
                    latencies.append(time.perf_counter() - began)
                if element == "sop_check":
                    clock.set(SOP_MEETING)
    finally:
        CURRENT_CLOCK.reset(token)
    return latency_summary(latencies)


def insert_commit(db: Database, count: int) -> dict[str, Any]:
    """One single-row INSERT and COMMIT on the database's own driver connection, `count` times."""
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("CREATE TABLE bench_probe (id INTEGER PRIMARY KEY, payload TEXT)")
        raw.commit()
        marker = "%s" if db.is_postgresql else "?"
        latencies = []
        for i in range(count):
            began = time.perf_counter()
            cursor.execute(f"INSERT INTO bench_probe (id, payload) VALUES ({marker}, {marker})", (i, "x" * 200))
            raw.commit()
            latencies.append(time.perf_counter() - began)
        cursor.execute("DROP TABLE bench_probe")
        raw.commit()
    finally:
        raw.close()
    return latency_summary(latencies)


def completion_floor(engine: ProcessEngine, db: Database, cases: int) -> dict[str, Any]:
    """The floor's medians of bench/completion_floor.py (the least a durable completion costs) over `cases` cases,
    on the same database after the engine's cases."""
    if str(ROOT / "bench") not in sys.path:
        sys.path.insert(0, str(ROOT / "bench"))
    import completion_floor as floor

    _engine_times, floor_times = floor.run_cases(engine, db, cases, with_engine=False, first=20_000)
    return floor.floor_medians(floor_times)


def run_sop(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    with fresh_database(kind, args.postgres_url) as db:
        engine = sop_engine(db)
        instances, age_samples = (5, 20) if args.quick else (20, 60)
        kurator = sop_kurator(engine, instances, age_samples)
        bare = sop_bare(engine, instances)
        probe = insert_commit(db, 50 if args.quick else 200)
        floor = completion_floor(engine, db, instances) if db.is_postgresql else {}
    sweep = sweep_figures(kind, args)
    median = kurator["completion"]["median_ms"]
    baseline = bare["median_ms"] + probe["median_ms"]
    if floor:  # what no durable completion goes below (bench/completion_floor.py), against the same baseline
        floor = {"completion_floor_median_ms": floor["floor"], "completion_floor_ratio": floor["floor"] / baseline,
                 "completion_over_floor": median / floor["floor"]}
    return floor | {
        "completion_ratio": median / baseline,
        "age_ratio": kurator["aged_completion"]["median_ms"] / kurator["fresh_loop_completion"]["median_ms"],
        "state_bytes": kurator["state_bytes"]["without_business_data"],
        "completion_median_ms": median,
        "bare_step_median_ms": bare["median_ms"],
        "insert_commit_median_ms": probe["median_ms"],
        "aged_median_ms": kurator["aged_completion"]["median_ms"],
        "fresh_loop_median_ms": kurator["fresh_loop_completion"]["median_ms"],
        "state_bytes_raw": kurator["state_bytes"]["raw"],
        "completions": kurator["completion"]["count"],
        "warm_up_cases": WARM_UP_CASES,
        "aged_after_tasks": kurator["aged_completion"]["completed_tasks_before"],
    } | sweep


# -- the timer sweep in several scheduler processes (--json: sweep_ratio) -----------------------------------------


def _scheduler_process(target: tuple[str, str | None], at: str, ready, go, results) -> None:
    """One scheduler process: open the database, warm up, wait for the start, sweep until nothing is due."""
    url, schema = target
    db = open_database(url, schema)
    try:
        engine = ProcessEngine(db, FrozenClock(at))
        definition = engine.repository.definition(TIMER_KEY)  # the version's spec parsed before the clock starts
        engine.executor.serializer.specs(engine.repository.spec_json(definition.id))
        with db.session() as session:
            session.execute(text("SELECT 1"))
        ready.put(os.getpid())
        go.wait()
        began = time.perf_counter()
        fired = moved = sweeps = 0
        incidents: list[dict] = []
        while True:
            result = engine.management.sweep()
            sweeps += 1
            fired += result.timers_fired
            moved += result.instances
            incidents += result.incidents
            if not result.instances:
                break
        results.put({"pid": os.getpid(), "fired": fired, "instances": moved, "sweeps": sweeps,
                     "incidents": incidents[:3], "seconds": time.perf_counter() - began,
                     "finished_at": time.perf_counter()})
    finally:
        db.dispose()


def kurator_parallel_sweep(db: Database, count: int, processes: int) -> dict[str, Any]:
    """`count` timer cases due at once, swept by `processes` scheduler processes started together; checks that
    every timer fired exactly once (one `timer_fired` event and one follow-up task per instance)."""
    import multiprocessing

    engine = ProcessEngine(db, FrozenClock(START_AT))
    engine.identity.ensure_default_roles()
    engine.identity.ensure_roles(SOP_ROLES)
    engine.identity.add_user(USER, [ROLE])
    engine.repository.deploy([("timer.bpmn", timer_diagram())], deployed_by="bench")
    ids = [engine.runtime.start(TIMER_KEY, {"case_no": i}, business_key=f"sweep-{i}") for i in range(count)]
    at = (parse_instant(START_AT) + AFTER_TIMERS).isoformat()
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no connection inherited
    ready, results, go = context.Queue(), context.Queue(), context.Event()
    workers = [context.Process(target=_scheduler_process, args=(db.bench_target, at, ready, go, results))
               for _ in range(processes)]
    for worker in workers:
        worker.start()
    for _ in workers:
        ready.get(timeout=120)
    began = time.perf_counter()
    go.set()
    reports = [results.get(timeout=600) for _ in workers]
    wall = max(r["finished_at"] for r in reports) - began
    for worker in workers:
        worker.join(timeout=60)
    with engine.db.session() as session:
        per_instance = dict(session.execute(
            select(HistoryEvent.instance_id, func.count()).where(HistoryEvent.event_type == "timer_fired",
                                                                  HistoryEvent.instance_id.in_(ids))
            .group_by(HistoryEvent.instance_id)).all())
        follow_ups = session.scalar(select(func.count()).select_from(HumanTask)
                                    .where(HumanTask.process_key == TIMER_KEY, HumanTask.status == "open"))
    engine.clock.set(at)
    again = engine.management.sweep()
    fired = sum(r["fired"] for r in reports)
    once = all(per_instance.get(i) == 1 for i in ids)
    verified = once and fired == count and follow_ups == count and not again.timers_fired
    if not verified:
        twice = sum(1 for i in ids if per_instance.get(i, 0) > 1)
        never = sum(1 for i in ids if not per_instance.get(i))
        loud_error(f"parallel sweep: {fired} timers reported for {count} instances; {twice} fired more than once, "
                   f"{never} never; {follow_ups} follow-up tasks; a later sweep fired {again.timers_fired}; "
                   f"incidents: {[r['incidents'] for r in reports]}")
    return {"processes": processes, "timers": count, "sweep_s": wall, "timers_per_s": count / wall,
            "per_process_fired": sorted(r["fired"] for r in reports), "exactly_once": verified}


def bare_timer_rate(count: int) -> dict[str, Any]:
    """Bare SpiffWorkflow's in-memory timer rate on the same diagram (one process), as `bare_timers` measures."""
    serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(_CONFIG))
    clock = FrozenClock(START_AT)
    token = CURRENT_CLOCK.set(clock)
    try:
        return bare_timers(serializer, timer_diagram(), count, clock)
    finally:
        CURRENT_CLOCK.reset(token)


def sweep_figures(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """`sweep_ratio`: timers/s of several scheduler processes (4 on PostgreSQL; SQLite has no SKIP LOCKED and
    runs one scheduler) over bare SpiffWorkflow's in-memory timer rate, measured in the same run."""
    count = args.sweep_timers
    processes = args.schedulers if kind == "postgres" else 1
    with fresh_database(kind, args.postgres_url) as db:
        parallel = kurator_parallel_sweep(db, count, processes)
    bare = bare_timer_rate(count)
    return {"sweep_ratio": parallel["timers_per_s"] / bare["timers_per_s"],
            "sweep_timers_per_s": parallel["timers_per_s"], "sweep_processes": processes,
            "sweep_timers": count, "sweep_exactly_once": parallel["exactly_once"],
            "sweep_per_process": parallel["per_process_fired"], "bare_timers_per_s": bare["timers_per_s"]}


# -- profile of one sop_case completion and one timer (--profile-sop) ----------------------------------------------


def _profile_table(profile: cProfile.Profile, per: int, top: int) -> dict[str, Any]:
    """Top functions by cumulative and by own time, per unit of work (`per` completions or timers)."""
    stats = pstats.Stats(profile)
    rows = []
    for (filename, line, name), (_primitive, calls, tottime, cumtime, _callers) in stats.stats.items():
        rows.append({"function": f"{_short_path(filename)}:{line}({name})", "calls": calls / per,
                     "tottime_ms": tottime * 1000 / per, "cumtime_ms": cumtime * 1000 / per})
    plumbing = ("~:", "contextlib.py:", "<sqlalchemy generated", "<string>")
    by_cumulative = sorted((row for row in rows if not row["function"].startswith(plumbing)
                            and "/contextlib.py:" not in row["function"]),
                           key=lambda row: row["cumtime_ms"], reverse=True)[:top]
    engine_functions = sorted((row for row in rows if row["function"].startswith("engine/")),
                              key=lambda row: row["cumtime_ms"], reverse=True)[:top]
    by_own_time = sorted(rows, key=lambda row: row["tottime_ms"], reverse=True)[:top]
    return {"ms_under_profiler": stats.total_tt * 1000 / per, "by_cumulative": by_cumulative,
            "engine_functions": engine_functions, "by_own_time": by_own_time}


@contextmanager
def counted_statements(db: Database) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    sqlalchemy_event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        sqlalchemy_event.remove(db.engine, "before_cursor_execute", count)


def profile_sop(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """cProfile the 8 completions of one sop_case (after one warm-up case) and one sweep of due timers."""
    timers = 200
    with fresh_database(kind, args.postgres_url) as db:
        engine = sop_engine(db)
        engine.repository.deploy([("timer.bpmn", timer_diagram())], deployed_by="bench")
        sop_kurator(engine, 1, 2, warm_up=0)  # warm-up: specs parsed, forms read, connections open
        engine.clock.set(START_AT)
        instance_id = engine.runtime.start("sop_case", dict(SOP_START, case_id=999), business_key="profiled")
        profile = cProfile.Profile()
        statements: dict[str, int] = {}
        for element, data in SOP_PATH:
            task = sop_open_task(engine, instance_id, element)
            user = task["assignee"] or SOP_USERS[task["candidate_roles"][0]]
            with counted_statements(db) as seen:
                profile.enable()
                engine.tasks.complete(task["id"], user, data)
                profile.disable()
            statements[element] = len(seen)
            if element == "sop_check":
                engine.clock.set(SOP_MEETING)
        completion = _profile_table(profile, len(SOP_PATH), args.profile_top)
        completion["statements"] = statements
        engine.clock.set(START_AT)
        for i in range(timers):
            engine.runtime.start(TIMER_KEY, {"case_no": i}, business_key=f"profiled-timer-{i}")
        engine.clock.set(parse_instant(START_AT) + AFTER_TIMERS)
        profile = cProfile.Profile()
        with counted_statements(db) as seen:
            profile.enable()
            result = engine.management.fire_due_timers()
            profile.disable()
        if result.timers_fired != timers:
            loud_error(f"profiled sweep fired {result.timers_fired} of {timers} timers")
        timer = _profile_table(profile, timers, args.profile_top)
        timer["statements_per_timer"] = len(seen) / timers
    return {"completion": completion, "timer": timer}


def main_profile(args: argparse.Namespace, databases: list[str]) -> int:
    load = os.getloadavg()
    print(f"cProfile, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    document = {}
    for kind in databases:
        found = document[kind] = profile_sop(kind, args)
        completion, timer = found["completion"], found["timer"]
        print(f"\n== {kind}: one sop_case completion, {completion['ms_under_profiler']:.2f} ms under the profiler "
              f"(mean of the {len(SOP_PATH)} completions of one case); SQL statements: {completion['statements']}")
        for name, rows in (("by cumulative time", completion["by_cumulative"]),
                           ("engine functions (engine/) by cumulative time", completion["engine_functions"]),
                           ("by own time", completion["by_own_time"])):
            print(f"-- top {args.profile_top} {name}")
            print(format_profile(rows))
        print(f"\n== {kind}: one timer, {timer['ms_under_profiler']:.2f} ms under the profiler (mean of one sweep of "
              f"200 due timers); SQL statements per timer: {timer['statements_per_timer']:.2f}")
        for name, rows in (("by cumulative time", timer["by_cumulative"]),
                           ("engine functions (engine/) by cumulative time", timer["engine_functions"]),
                           ("by own time", timer["by_own_time"])):
            print(f"-- top {args.profile_top} {name}")
            print(format_profile(rows))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    output = args.output.with_name("engine_profile.json")
    output.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"\nJSON written to {output}")
    return 0


def disable_spec_cache() -> None:
    """Parse the version's spec at every load and start, as the engine did before `SpecCache` (a comparison)."""
    from engine.bpmn import serializer

    def restore(self, state_json: str, spec_json: str) -> BpmnWorkflow:
        dct = json.loads(state_json)
        specs = json.loads(spec_json)
        dct["spec"], dct["subprocess_specs"] = specs["spec"], specs["subprocess_specs"]
        self._serializer.migrate(dct)
        return self._serializer.from_dict(dct)

    def new_workflow(self, spec_json: str, script_engine) -> BpmnWorkflow:
        specs = self._build_specs(spec_json)
        return BpmnWorkflow(specs.spec, dict(specs.subprocess_specs), script_engine=script_engine)

    serializer.StateSerializer.restore = restore
    serializer.StateSerializer.new_workflow = new_workflow


def web_keys(args: argparse.Namespace) -> dict[str, Any]:
    """The web figures of issue 13 from bench/web_bench.py, always on PostgreSQL (`--postgres-url`): inbox API and
    page p95 (the worse of the secretary and the school specialist) and completions/s over HTTP with gunicorn -w 2
    and 8 clients. `--quick` uses web_bench's scaled-down data (10,000 open / 100,000 completed tasks instead of
    100,000 / 1,000,000), which `web` says. Its progress goes to stderr, so that stdout stays one JSON object."""
    sys.path.insert(0, str(ROOT / "bench"))
    import web_bench

    argv = ["--no-index-variants", "--workers", "2", "--clients", "8", "--postgres-url", args.postgres_url,
            "--output", str(OUT_DIR / "web_bench_issue13.json")] + (["--quick"] if args.quick else [])
    try:
        web_args = web_bench.parse_args(argv)
        with contextlib.redirect_stdout(sys.stderr):
            results = web_bench.measure(web_args)
    except Exception:  # no PostgreSQL server, say: the engine figures still stand
        results = {"error": traceback.format_exc()}
        web_args = None
    keys = web_bench.issue_keys(results)
    keys["web"] = {"open_tasks": web_args.open if web_args else None,
                   "completed_tasks": web_args.completed if web_args else None,
                   "scaled_down": bool(args.quick), "database": "postgresql", "gunicorn_workers": 2, "clients": 8,
                   "wall_s": results.get("wall_s"), "error": results.get("error"),
                   "latency": {key: {"median_ms": value.get("median_ms"), "p95_ms": value.get("p95_ms")}
                               for key, value in results.get("latency", {}).get("engine indexes", {}).items()}}
    return keys


def main_json(args: argparse.Namespace, databases: list[str]) -> int:
    """`--json`: the sop_case figures and the web figures (`web_keys`), as one JSON object on stdout (the first
    database at the top level)."""
    by_database = {kind: run_sop(kind, args) for kind in databases}
    first = by_database[databases[0]]
    document = {key: first[key] for key in ("completion_ratio", "age_ratio", "state_bytes", "sweep_ratio")}
    document.update(web_keys(args))
    document.update(database=databases[0], by_database=by_database)
    print(json.dumps(document, indent=2))
    return 0


# -- report -----------------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(),
                            "cores": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["ram_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    except OSError:
        pass
    for package in ("SpiffWorkflow", "SQLAlchemy", "psycopg"):
        try:
            info[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            info[package] = None
    return info


def _ratio(value: float | None, base: float | None) -> float | None:
    if value is None or base is None or not base:
        return None
    return value / base


def table_rows(results: dict[str, Any], bare: dict[str, Any] | None, tasks: int) -> list[tuple]:
    """(label, {db: value}, bare value, digits) for every figure of the table."""
    dbs = list(results)
    half = str(tasks // 2)

    def pick(path: Callable[[dict], Any]) -> dict[str, Any]:
        values = {}
        for db in dbs:
            try:
                values[db] = path(results[db])
            except (KeyError, TypeError):
                values[db] = None
        return values

    def bare_pick(path: Callable[[dict], Any]) -> Any:
        try:
            return path(bare) if bare else None
        except (KeyError, TypeError):
            return None

    rows = [
        ("Task completions/s", pick(lambda r: r["completion"]["per_s"]),
         bare_pick(lambda b: b["completion"]["per_s"]), 1),
        ("Completion latency median, ms", pick(lambda r: r["completion"]["median_ms"]),
         bare_pick(lambda b: b["completion"]["median_ms"]), 2),
        ("Completion latency p95, ms", pick(lambda r: r["completion"]["p95_ms"]),
         bare_pick(lambda b: b["completion"]["p95_ms"]), 2),
        ("  median at step 1, ms", pick(lambda r: r["completion"]["first_step_median_ms"]), None, 2),
        (f"  median at step {tasks}, ms", pick(lambda r: r["completion"]["last_step_median_ms"]), None, 2),
        ("Timer sweep, timers/s", pick(lambda r: r["timers"]["timers_per_s"]),
         bare_pick(lambda b: b["timers"]["timers_per_s"]), 1),
        ("Timer sweep, seconds", pick(lambda r: r["timers"]["sweep_s"]),
         bare_pick(lambda b: b["timers"]["sweep_s"]), 2),
        ("Timers fired (expected = instances)", pick(lambda r: r["timers"]["timers_fired"]),
         bare_pick(lambda b: b["timers"]["timers_fired"]), 0),
        ("Timer case starts/s (set-up)", pick(lambda r: r["timers"]["starts_per_s"]), None, 1),
        ("State bytes, 0 tasks done", pick(lambda r: r["state_bytes"]["0"]["first"]),
         bare_pick(lambda b: b["state_bytes"]["0"]), 0),
        (f"State bytes, {half} tasks done", pick(lambda r: r["state_bytes"][half]["first"]),
         bare_pick(lambda b: b["state_bytes"][half]), 0),
        (f"State bytes, {tasks} tasks done", pick(lambda r: r["state_bytes"][str(tasks)]["first"]),
         bare_pick(lambda b: b["state_bytes"][str(tasks)]), 0),
        ("State bytes, timer case waiting", pick(lambda r: r["timers"]["state_bytes_waiting"]),
         bare_pick(lambda b: b["timers"]["state_bytes_waiting"]), 0),
        (f"Stored spec bytes, {tasks}-task process", pick(lambda r: r["spec_bytes"][SEQUENCE_KEY]), None, 0),
        ("Stored spec bytes, timer process", pick(lambda r: r["spec_bytes"][TIMER_KEY]), None, 0),
    ]
    return rows


def _fmt(value: Any, digits: int) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and value != value:  # NaN
        return "nan"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def print_table(rows: list[tuple], dbs: list[str], with_bare: bool) -> str:
    header = ["Figure", *dbs]
    if with_bare:
        header += ["bare Spiff", *[f"{db}/bare" for db in dbs]]
    lines = []
    for label, values, bare_value, digits in rows:
        line = [label, *[_fmt(values.get(db), digits) for db in dbs]]
        if with_bare:
            line.append(_fmt(bare_value, digits))
            line += [_fmt(_ratio(values.get(db), bare_value), 2) for db in dbs]
        lines.append(line)
    widths = [max(len(str(row[i])) for row in [header, *lines]) for i in range(len(header))]
    out = []
    for index, row in enumerate([header, *lines]):
        cells = [str(cell).ljust(widths[0]) if i == 0 else str(cell).rjust(widths[i]) for i, cell in enumerate(row)]
        out.append("  ".join(cells))
        if index == 0:
            out.append("  ".join("-" * w for w in widths))
    table = "\n".join(out)
    print(table)
    return table


# -- main -------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="both",
                        help="which database(s) to run the engine on")
    parser.add_argument("--quick", action="store_true",
                        help="small smoke run: 5 instances and 500 timers unless given explicitly")
    parser.add_argument("--instances", type=int, default=None,
                        help="instances of the sequence process to complete (default 50; --quick 5)")
    parser.add_argument("--tasks", type=int, default=20, help="user tasks in the sequence process")
    parser.add_argument("--timers", type=int, default=None,
                        help="timer instances for the sweep (default 10000; --quick 500)")
    parser.add_argument("--start-batch", type=int, default=1000,
                        help="timer instances started between progress lines")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare SpiffWorkflow comparison")
    parser.add_argument("--no-spec-cache", action="store_true",
                        help="parse each version's spec at every load, as before the spec cache (a comparison)")
    parser.add_argument("--json", action="store_true",
                        help="only the sop_case figures (completion_ratio, age_ratio, state_bytes), sweep_ratio "
                             "and the web figures of web_bench on PostgreSQL (inbox_api_p95_ms, inbox_page_p95_ms, "
                             "http_completions_per_s) as JSON on stdout; --quick makes the samples smaller")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile the completions of one extra instance on each database")
    parser.add_argument("--profile-top", type=int, default=10, help="functions to show in the profile")
    parser.add_argument("--profile-sop", action="store_true",
                        help="cProfile the completions of one sop_case and one sweep of due timers on each database "
                             "(figures per completion and per timer, with SQL statements counted); nothing else runs")
    parser.add_argument("--sweep-timers", type=int, default=None,
                        help="due timers for sweep_ratio in --json (default 4000; --quick 1000)")
    parser.add_argument("--schedulers", type=int, default=4,
                        help="scheduler processes sweeping at once for sweep_ratio on PostgreSQL")
    parser.add_argument("--postgres-url",
                        default=os.environ.get("KURATOR_BENCH_POSTGRES_URL") or DEFAULT_POSTGRES_URL,
                        help="PostgreSQL server (a private schema is created and dropped); "
                             "env KURATOR_BENCH_POSTGRES_URL")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the JSON results")
    args = parser.parse_args(argv)
    if args.instances is None:
        args.instances = 5 if args.quick else 50
    if args.timers is None:
        args.timers = 500 if args.quick else 10_000
    if args.sweep_timers is None:
        args.sweep_timers = 1000 if args.quick else 4000
    if args.instances < 1 or args.timers < 1 or args.tasks < 2 or args.start_batch < 1:
        parser.error("--instances and --timers must be at least 1, --tasks at least 2")
    return args


def ratios(results: dict[str, Any], bare: dict[str, Any] | None) -> dict[str, Any] | None:
    if bare is None:
        return None
    return {kind: {
        "completions_per_s": _ratio(result["completion"]["per_s"], bare["completion"]["per_s"]),
        "completion_median_ms": _ratio(result["completion"]["median_ms"], bare["completion"]["median_ms"]),
        "completion_p95_ms": _ratio(result["completion"]["p95_ms"], bare["completion"]["p95_ms"]),
        "timers_per_s": _ratio(result["timers"]["timers_per_s"], bare["timers"]["timers_per_s"]),
    } for kind, result in results.items()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    databases = ["sqlite", "postgres"] if args.database == "both" else [args.database]
    if args.no_spec_cache:
        disable_spec_cache()
    if args.profile_sop:
        return main_profile(args, databases)
    if args.json:
        return main_json(args, databases)
    diagrams = {"sequence.bpmn": sequence_diagram(args.tasks), "timer.bpmn": timer_diagram()}
    (OUT_DIR / "diagrams").mkdir(parents=True, exist_ok=True)
    for name, diagram in diagrams.items():  # a copy of what runs, to open in a modeler
        (OUT_DIR / "diagrams" / name).write_text(diagram, encoding="utf-8")
    started = datetime.now(timezone.utc)
    info = machine()
    load_before = os.getloadavg()
    print(f"Kurator engine benchmark, {started.astimezone():%Y-%m-%d %H:%M %Z}: {args.instances} instances x "
          f"{args.tasks} tasks, {args.timers} timers; databases: {', '.join(databases)}")
    print(f"Python {info['python']}, SpiffWorkflow {info['SpiffWorkflow']}, SQLAlchemy {info['SQLAlchemy']}, "
          f"{info.get('cpu', '?')} x {info['cores']}, {info.get('ram_gib', '?')} GiB RAM, "
          f"load average {load_before[0]:.2f}")

    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for kind in databases:
        try:
            results[kind] = run_database(kind, args, diagrams)
        except Exception:  # report the failure and carry on with the other database
            errors[kind] = traceback.format_exc()
            loud_error(f"{kind} run failed:\n{errors[kind]}")
    bare = None if args.no_bare else run_bare(args, diagrams)
    load_after = os.getloadavg()

    print(f"\n== Results: {args.instances} instances x {args.tasks} tasks; {args.timers} timers; "
          f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after ==")
    table = print_table(table_rows(results, bare, args.tasks), list(results), bare is not None)
    for kind, result in results.items():
        if "profile" in result:
            profile = result["profile"]
            print(f"\n== cProfile, {kind}: {profile['per_completion_ms']:.1f} ms per completion under the profiler, "
                  f"averaged over the {profile['completions']} completions of one instance ==")
            print(f"-- top {args.profile_top} by cumulative time")
            print(format_profile(profile["by_cumulative"]))
            print(f"-- top {args.profile_top} engine functions (engine/) by cumulative time")
            print(format_profile(profile["engine_functions"]))
            print(f"-- top {args.profile_top} by own time")
            print(format_profile(profile["by_own_time"]))

    document = {
        "started_at": started.isoformat(),
        "finished_at": datetime.now(timezone.utc).isoformat(),
        "machine": info | {"load_average_before": load_before, "load_average_after": load_after},
        "options": {"databases": databases, "instances": args.instances, "tasks": args.tasks,
                    "timers": args.timers, "quick": args.quick, "timer_duration": TIMER_DURATION,
                    "clock_start": START_AT},
        "kurator": results,
        "bare_spiff": bare,
        "ratios_kurator_over_bare": ratios(results, bare),
        "errors": errors,
        "table": table,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nJSON written to {args.output}")
    failed = bool(errors) or any(not r["timers"]["verified"] for r in results.values()) or (
        bare is not None and not bare["timers"]["verified"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
