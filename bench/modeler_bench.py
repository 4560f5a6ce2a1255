#!/usr/bin/env python
"""Kurator modeler benchmark: instance migration, validation with and without lint, simulation of a draft.

Run from the repository root:

    .venv/bin/python bench/modeler_bench.py --database both           # SQLite and PostgreSQL, 1,000 instances
    .venv/bin/python bench/modeler_bench.py --database both --large   # also 5,000 instances (much longer)
    .venv/bin/python bench/modeler_bench.py --quick                   # smoke run: 100 instances, few repeats

Every figure is measured on each database in the same run. Each migration size gets a fresh schema (a temporary
SQLite file, or a private PostgreSQL schema dropped at the end) with workflows/*.bpmn and forms/*.json deployed.

1. Migration. N running `sop_case` instances are started and spread over three stages (at `sop_check`, at
   `sop_recognition`, at `sop_registration_card`). This set-up is timed and printed, but it is not a modeler
   figure. A version 2 of `sop_case` that changes the due date of `sop_check` is deployed. Then the dry run
   (`engine.migration.plan`) and the whole batch migration (`start_batch` + `run_batch` in chunks) are timed, as
   instances/s, and `revert` of some of the moved instances, one by one.
2. Validation as the modeler's "Проверить" does it: `engine.repository.validate([("diagram.bpmn", xml)],
   lint=True)` against `lint=False` and against the lint rules alone (`engine.bpmn.lint.lint`), median ms.
3. Simulation: `modeler.simulation.simulate` of `sop_case` with a 5-step scenario, median ms. Each run builds a
   throw-away SQLite engine; the parts of it are timed by wrapping the simulator's methods from here (engine
   code is not changed): temporary database with its migrations, copy of the reference data, deployment of the
   draft, clean-up. The rest is the scenario itself.

The table goes to stdout and the JSON to bench/out/modeler_bench.json. The exit status is 1 if a run raised or a
check failed (every movable instance moved, every revert restored version 1, every simulation ok); the script
then prints a loud `BENCHMARK CHECK FAILED`. See bench/RESULTS.md, section "Modeler".
"""

# The engine is imported after the repository root is put on sys.path.
# ruff: noqa: E402

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine_bench import fresh_database, loud_error, percentile, progress, server_version  # noqa: E402
from sqlalchemy import func, select

import modeler.simulation as simulation_module
from engine import Database, FrozenClock, ProcessEngine
from engine.bpmn.lint import lint
from engine.models import InstanceMigration, ProcessInstance
from engine.repository import RepositoryService
from sop.roles import ROLES as SOP_ROLES

OUT_DIR = ROOT / "bench" / "out"
DEFAULT_OUTPUT = OUT_DIR / "modeler_bench.json"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
WORKFLOWS = ROOT / "workflows"
FORMS = ROOT / "forms"
KEY = "sop_case"
START_AT = "2025-10-30T09:00:00+03:00"  # the clock of the test suite: a Thursday
SOURCE = (WORKFLOWS / "sop_case.bpmn").read_text(encoding="utf-8")
OLD_DUE = 'camunda:dueDate="${working_days(5, received)}"'
NEW_DUE = 'camunda:dueDate="${working_days(10, received)}"'

AGENCY = "КДНиЗП г. Йошкар-Олы"
USERS = {"commission_secretary": "secretary", "commission": "chair", "curator": "curator1",
         "agency_specialist": "specialist"}
CHECK = {"minor_name": "Иванов Петр, 12.03.2012", "parents_names": "Иванова Анна Сергеевна",
         "living_conditions": "Отдельного места для занятий нет", "family_criteria": ["c1", "c2"],
         "danger_level": "high", "sop_confirmed": True, "conclusion": "Семья находится в СОП"}
RECOGNITION = {"decision": "recognize", "meeting_date": "2025-10-30", "resolution_number": "45/3",
               "curator": "curator1", "working_group": ["police", "education"], "consent_obtained": True}
# share of the instances left at each stage: the rest stays at sop_check
AT_RECOGNITION = 0.25
AT_REGISTRATION = 0.15

SCENARIO = {"start": "2026-12-28T09:00", "variables": {"received": "2026-12-28"},
            "steps": [{"complete": "sop_check", "data": {"danger_level": "medium", "sop_confirmed": True}},
                      {"complete": "sop_recognition",
                       "data": {"decision": "recognize", "meeting_date": "2026-12-30", "resolution_number": "12/3",
                                "curator": "ivanova", "working_group": ["police"]}},
                      {"complete": "sop_registration_card"},
                      {"complete": "sop_proposals"},
                      {"advance": {"day": 15}}]}


# -- helpers ----------------------------------------------------------------------------------------------------




def median_ms(seconds: list[float]) -> float:
    return statistics.median(seconds) * 1000 if seconds else float("nan")


def p95_ms(seconds: list[float]) -> float:
    return percentile(seconds, 0.95) * 1000


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds else float("nan")




def new_engine(db: Database) -> ProcessEngine:
    """The engine as after installation: the SOP diagrams and forms deployed, one user per role used here."""
    engine = ProcessEngine(db, FrozenClock(START_AT))
    engine.identity.ensure_default_roles()
    engine.identity.ensure_roles(SOP_ROLES)  # the domain's roles, used by its diagrams
    files = [*sorted(WORKFLOWS.glob("*.bpmn")), *sorted(FORMS.glob("*.json"))]
    result = engine.repository.deploy(files, deployed_by="bench")
    for warning in result.warnings:
        progress(f"deployment warning: {warning.to_dict()}")
    engine.identity.add_agency(AGENCY, "Йошкар-Ола", kind="commission")
    for role, user in USERS.items():
        engine.identity.add_user(user, [role], agency=AGENCY)
    return engine


def open_task(engine: ProcessEngine, instance_id: int, element: str) -> dict[str, Any]:
    found = [t for t in engine.tasks.query(instance_id=instance_id) if t["element_id"] == element]
    if len(found) != 1:
        raise RuntimeError(f"instance {instance_id}: expected one open {element}, found {len(found)}")
    return found[0]


def complete(engine: ProcessEngine, instance_id: int, element: str, data: dict[str, Any]) -> None:
    task = open_task(engine, instance_id, element)
    user = task["assignee"] or USERS[task["candidate_roles"][0]]
    engine.tasks.complete(task["id"], user, data)


# -- 1. migration -----------------------------------------------------------------------------------------------


def create_instances(engine: ProcessEngine, count: int) -> dict[str, Any]:
    """Start `count` cases and move some of them on: the set-up of the migration (timed, not a modeler figure)."""
    began = time.perf_counter()
    ids = []
    for n in range(count):
        ids.append(engine.runtime.start(KEY, {"case_id": n + 1, "intake_id": 100_000 + n, "received": "2025-10-30",
                                              "municipality": "Йошкар-Ола", "family_name": f"Семья {n + 1}"},
                                        business_key=f"case-{n + 1}", started_by="secretary"))
        if (n + 1) % 1000 == 0:
            progress(f"started {n + 1}/{count} instances")
    start_s = time.perf_counter() - began
    # spread evenly: of every 20 instances, 3 go on to the registration card and 5 more to the recognition
    to_recognition = [i for n, i in enumerate(ids) if n % 20 < round(20 * (AT_RECOGNITION + AT_REGISTRATION))]
    to_registration = [i for n, i in enumerate(ids) if n % 20 < round(20 * AT_REGISTRATION)]
    began = time.perf_counter()
    for instance_id in to_recognition:
        complete(engine, instance_id, "sop_check", CHECK)
    for instance_id in to_registration:
        complete(engine, instance_id, "sop_recognition", RECOGNITION)
    completions = len(to_recognition) + len(to_registration)
    complete_s = time.perf_counter() - began
    stages = {"sop_check": count - len(to_recognition),
              "sop_recognition": len(to_recognition) - len(to_registration),
              "sop_registration_card": len(to_registration)}
    return {"ids": ids, "stages": stages, "start_s": start_s, "starts_per_s": rate(count, start_s),
            "completions": completions, "complete_s": complete_s,
            "completions_per_s": rate(completions, complete_s), "setup_s": start_s + complete_s}


def deploy_v2(engine: ProcessEngine) -> None:
    if OLD_DUE not in SOURCE:
        raise RuntimeError(f"workflows/sop_case.bpmn no longer has {OLD_DUE}: update the benchmark")
    changed = SOURCE.replace(OLD_DUE, NEW_DUE, 1)
    engine.repository.deploy([("sop_case.bpmn", changed)], deployed_by="bench", comment="срок проверки 10 дней")


def bench_migration(engine: ProcessEngine, count: int, chunk: int, reverts: int) -> dict[str, Any]:
    setup = create_instances(engine, count)
    progress(f"set-up: {count} starts at {setup['starts_per_s']:.1f}/s, {setup['completions']} completions at "
             f"{setup['completions_per_s']:.1f}/s; stages {setup['stages']}")
    ids = setup.pop("ids")
    sample_check = ids[min(len(ids) - 1, 19)]  # the 20th stays at sop_check (unless fewer than 9 instances)
    due_before = open_task(engine, sample_check, "sop_check")["due"]
    deploy_v2(engine)
    checks: list[str] = []

    gc.collect()
    began = time.perf_counter()
    plan = engine.migration.plan(KEY)
    plan_s = time.perf_counter() - began
    if (len(plan.instances), len(plan.movable)) != (count, count):
        checks.append(f"the dry run found {len(plan.instances)} instances, {len(plan.movable)} movable; "
                      f"expected {count} and {count}; first reasons: {[i.reasons for i in plan.blocked[:3]]}")
    progress(f"plan: {count} instances in {plan_s:.2f} s = {rate(count, plan_s):.1f}/s")

    gc.collect()
    chunk_s: list[float] = []
    began = time.perf_counter()
    batch_id = engine.migration.start_batch(plan, actor="bench", comment="срок проверки 10 дней")
    start_batch_s = time.perf_counter() - began
    status = engine.migration.progress(batch_id)
    while status["status"] == "running":
        done = status["done"]
        chunk_began = time.perf_counter()
        status = engine.migration.run_batch(batch_id, chunk, actor="bench")
        chunk_s.append(time.perf_counter() - chunk_began)
        if status["done"] == done:
            checks.append(f"run_batch made no progress at {done}/{status['total']}")
            break
        if len(chunk_s) % 5 == 0:
            progress(f"migrated {status['done']}/{status['total']}")
    migrate_s = time.perf_counter() - began
    if (status["moved"], status["failed"], status["status"]) != (count, 0, "done"):
        checks.append(f"the batch ended with {status}")
    progress(f"batch: {status['moved']} moved, {status['failed']} failed in {migrate_s:.2f} s "
             f"= {rate(status['moved'], migrate_s):.1f}/s")
    due_after = open_task(engine, sample_check, "sop_check")["due"]
    if not (due_before.startswith("2025-11-07") and due_after.startswith("2025-11-14")):
        checks.append(f"sop_check due {due_before} → {due_after}, expected 2025-11-07 → 2025-11-14")

    # reverts: spread over the moved instances (so over the stages), one call each
    with engine.db.session() as session:
        moved = list(session.scalars(select(InstanceMigration.id).where(InstanceMigration.batch_id == batch_id,
                                                                        InstanceMigration.status == "moved")
                                     .order_by(InstanceMigration.id)))
    step = max(1, len(moved) // reverts) if reverts else 1
    chosen = moved[::step][:reverts]
    revert_s: list[float] = []
    reverted_instances = []
    gc.collect()
    for migration_id in chosen:
        began = time.perf_counter()
        answer = engine.migration.revert(migration_id, actor="bench")
        revert_s.append(time.perf_counter() - began)
        reverted_instances.append(answer["instance_id"])
    with engine.db.session() as session:
        v1 = engine.repository.definition(KEY, 1).id
        back = session.scalar(select(func.count()).select_from(ProcessInstance)
                              .where(ProcessInstance.id.in_(reverted_instances),
                                     ProcessInstance.definition_id == v1)) if reverted_instances else 0
    if back != len(chosen):
        checks.append(f"{back} of {len(chosen)} reverted instances are back on version 1")
    if reverts:
        progress(f"revert: {len(chosen)} in {sum(revert_s):.2f} s, median {median_ms(revert_s):.1f} ms")
    for message in checks:
        loud_error(f"migration of {count}: {message}")
    return {
        "instances": count,
        "setup": setup,
        "plan_s": plan_s,
        "plan_per_s": rate(count, plan_s),
        "start_batch_s": start_batch_s,
        "chunk": chunk,
        "chunks": len(chunk_s),
        "chunk_median_s": statistics.median(chunk_s) if chunk_s else float("nan"),
        "migrate_s": migrate_s,
        "moved": status["moved"],
        "failed": status["failed"],
        "migrate_per_s": rate(status["moved"], migrate_s),
        "migrate_ms_per_instance": migrate_s * 1000 / status["moved"] if status["moved"] else float("nan"),
        "reverts": len(chosen),
        "revert_s": sum(revert_s),
        "revert_per_s": rate(len(chosen), sum(revert_s)),
        "revert_median_ms": median_ms(revert_s),
        "revert_p95_ms": p95_ms(revert_s),
        "sop_check_due": [due_before, due_after],
        "checks_failed": checks,
    }


# -- 2. validation ----------------------------------------------------------------------------------------------


def interleaved_runs(runs: int, calls: dict[str, Callable[[], Any]]) -> tuple[dict[str, list[float]], dict]:
    """Time each call `runs` times, round-robin in a rotating order, so that drift and load hit all alike."""
    names = list(calls)
    results = {name: call() for name, call in calls.items()}  # warm-up: imports, caches
    seconds: dict[str, list[float]] = {name: [] for name in names}
    gc.collect()
    for round_no in range(runs):
        for name in names[round_no % len(names):] + names[:round_no % len(names)]:
            began = time.perf_counter()
            results[name] = calls[name]()
            seconds[name].append(time.perf_counter() - began)
    return seconds, results


def bench_validation(engine: ProcessEngine, runs: int) -> dict[str, Any]:
    files = [("diagram.bpmn", SOURCE)]
    seconds, found = interleaved_runs(runs, {
        "lint_true": lambda: engine.repository.validate(files, lint=True),
        "lint_false": lambda: engine.repository.validate(files, lint=False),
        "lint_alone": lambda: lint(SOURCE, "diagram.bpmn"),
    })
    with_lint, without_lint, lint_only = seconds["lint_true"], seconds["lint_false"], seconds["lint_alone"]
    problems_lint, problems_plain, problems_only = found["lint_true"], found["lint_false"], found["lint_alone"]
    errors = [p for p in problems_lint if p.severity == "error"]
    if errors:
        loud_error(f"validation of sop_case reports errors: {[p.message for p in errors[:3]]}")
    result = {
        "runs": runs,
        "lint_true_median_ms": median_ms(with_lint),
        "lint_false_median_ms": median_ms(without_lint),
        "lint_alone_median_ms": median_ms(lint_only),
        "lint_true_min_ms": min(with_lint) * 1000,
        "lint_false_min_ms": min(without_lint) * 1000,
        "lint_alone_min_ms": min(lint_only) * 1000,
        "problems_lint_true": len(problems_lint),
        "problems_lint_false": len(problems_plain),
        "problems_lint_alone": len(problems_only),
        "xml_bytes": len(SOURCE.encode("utf-8")),
    }
    progress(f"validate: lint=True {result['lint_true_median_ms']:.1f} ms, lint=False "
             f"{result['lint_false_median_ms']:.1f} ms, lint alone {result['lint_alone_median_ms']:.1f} ms")
    return result


# -- 3. simulation ----------------------------------------------------------------------------------------------


class PhaseTimer:
    """Wraps methods of a class for the time of a `with`, adding up the seconds spent in each."""

    def __init__(self, targets: dict[str, tuple[type, str]]):
        self.targets = targets
        self.seconds = dict.fromkeys(targets, 0.0)
        self._saved: list[tuple[type, str, Any]] = []

    def __enter__(self) -> PhaseTimer:
        for phase, (cls, name) in self.targets.items():
            original = cls.__dict__[name]
            self._saved.append((cls, name, original))
            setattr(cls, name, self._wrap(phase, original))
        return self

    def __exit__(self, *exc_info) -> None:
        for cls, name, original in reversed(self._saved):
            setattr(cls, name, original)
        self._saved.clear()

    def _wrap(self, phase: str, original: Callable) -> Callable:
        seconds = self.seconds

        def timed(*args, **kwargs):
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                seconds[phase] += time.perf_counter() - began

        return timed

    def reset(self) -> None:
        for phase in self.seconds:
            self.seconds[phase] = 0.0


def bench_simulation(engine: ProcessEngine, runs: int) -> dict[str, Any]:
    simulator = simulation_module.Simulator
    phases = {"database": (simulator, "__enter__"), "reference": (simulator, "_copy_reference_data"),
              "deploy": (RepositoryService, "deploy"), "cleanup": (simulator, "__exit__")}
    totals: list[float] = []
    by_phase: dict[str, list[float]] = {phase: [] for phase in phases}
    failures = []
    with PhaseTimer(phases) as timer:
        simulation_module.simulate(engine, SOURCE, SCENARIO, actor="bench")  # warm-up
        gc.collect()
        for _ in range(runs):
            timer.reset()
            began = time.perf_counter()
            result = simulation_module.simulate(engine, SOURCE, SCENARIO, actor="bench")
            totals.append(time.perf_counter() - began)
            for phase, seconds in timer.seconds.items():
                by_phase[phase].append(seconds)
            if not result["ok"] or len(result["steps"]) != len(SCENARIO["steps"]) + 1:
                failures.append(result["problems"] or [s["error"] for s in result["steps"] if s["error"]])
    if failures:
        loud_error(f"{len(failures)} of {runs} simulations failed: {failures[0]}")
    setup = [sum(by_phase[p][i] for p in phases) for i in range(runs)]
    scenario = [totals[i] - setup[i] for i in range(runs)]
    result = {
        "runs": runs,
        "steps": len(SCENARIO["steps"]),
        "total_median_ms": median_ms(totals),
        "total_min_ms": min(totals) * 1000,
        "setup_median_ms": median_ms(setup),
        "scenario_median_ms": median_ms(scenario),
        **{f"{phase}_median_ms": median_ms(values) for phase, values in by_phase.items()},
        "setup_share": statistics.median(setup[i] / totals[i] for i in range(runs)),
        "failed_runs": len(failures),
    }
    progress(f"simulate: {result['total_median_ms']:.0f} ms, of which throw-away set-up "
             f"{result['setup_median_ms']:.0f} ms ({result['setup_share']:.0%})")
    return result


# -- runs -------------------------------------------------------------------------------------------------------


def run_database(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    print(f"\n== {kind} ==", flush=True)
    result: dict[str, Any] = {"migration": {}}
    with fresh_database(kind, args.postgres_url) as db:
        engine = new_engine(db)
        result["server"] = ("PostgreSQL " if db.is_postgresql else "") + server_version(db)
        progress(f"{result['server']}; validation x {args.validate_runs}, simulation x {args.simulate_runs}")
        result["validation"] = bench_validation(engine, args.validate_runs)
        result["simulation"] = bench_simulation(engine, args.simulate_runs)
    for count in args.sizes:
        with fresh_database(kind, args.postgres_url) as db:
            engine = new_engine(db)
            progress(f"migration of {count} instances")
            result["migration"][str(count)] = bench_migration(engine, count, args.chunk, args.reverts)
    return result


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


def _fmt(value: Any, digits: int) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and value != value:  # NaN
        return "nan"
    if isinstance(value, str):
        return value
    return f"{value:,.{digits}f}"


def table_rows(results: dict[str, Any], sizes: list[int], args: argparse.Namespace) -> list[tuple]:
    """(label, {db: value}, digits) for every row; set-up rows come last and are marked as such."""
    def pick(path: Callable[[dict], Any]) -> dict[str, Any]:
        values = {}
        for db, result in results.items():
            try:
                values[db] = path(result)
            except (KeyError, TypeError):
                values[db] = None
        return values

    rows: list[tuple] = []
    for n in sizes:
        m = str(n)
        rows += [
            (f"Migration N={n:,}: plan() dry run, instances/s",
             pick(lambda r, m=m: r["migration"][m]["plan_per_s"]), 1),
            (f"Migration N={n:,}: plan() dry run, s", pick(lambda r, m=m: r["migration"][m]["plan_s"]), 1),
            (f"Migration N={n:,}: batch (start_batch + run_batch x{args.chunk}), instances/s",
             pick(lambda r, m=m: r["migration"][m]["migrate_per_s"]), 1),
            (f"Migration N={n:,}: batch, s", pick(lambda r, m=m: r["migration"][m]["migrate_s"]), 1),
            (f"Migration N={n:,}: batch, ms per instance",
             pick(lambda r, m=m: r["migration"][m]["migrate_ms_per_instance"]), 1),
            (f"Migration N={n:,}: moved / failed",
             pick(lambda r, m=m: f"{r['migration'][m]['moved']:,} / {r['migration'][m]['failed']:,}"), 0),
            (f"Revert of {args.reverts} (N={n:,}): reverts/s", pick(lambda r, m=m: r["migration"][m]["revert_per_s"]),
             1),
            (f"Revert of {args.reverts} (N={n:,}): median / p95, ms",
             pick(lambda r, m=m: f"{r['migration'][m]['revert_median_ms']:.1f} / "
                                 f"{r['migration'][m]['revert_p95_ms']:.1f}"), 0),
        ]
    v, s = args.validate_runs, args.simulate_runs
    rows += [
        (f"validate(lint=True), median of {v}, ms", pick(lambda r: r["validation"]["lint_true_median_ms"]), 1),
        (f"validate(lint=False), median of {v}, ms", pick(lambda r: r["validation"]["lint_false_median_ms"]), 1),
        (f"lint(xml) alone, median of {v}, ms", pick(lambda r: r["validation"]["lint_alone_median_ms"]), 1),
        ("problems reported: lint=True / lint=False / lint alone",
         pick(lambda r: f"{r['validation']['problems_lint_true']} / {r['validation']['problems_lint_false']} / "
                        f"{r['validation']['problems_lint_alone']}"), 0),
        (f"simulate(), {len(SCENARIO['steps'])} steps, median of {s}, ms",
         pick(lambda r: r["simulation"]["total_median_ms"]), 0),
        ("  throw-away set-up (all four below), ms", pick(lambda r: r["simulation"]["setup_median_ms"]), 0),
        ("    temp SQLite + Alembic migrations + engine, ms", pick(lambda r: r["simulation"]["database_median_ms"]),
         0),
        ("    copy of roles, calendar, forms, called processes, ms",
         pick(lambda r: r["simulation"]["reference_median_ms"]), 0),
        ("    deploy of the draft in the throw-away engine, ms", pick(lambda r: r["simulation"]["deploy_median_ms"]),
         0),
        ("    dispose + delete the temp directory, ms", pick(lambda r: r["simulation"]["cleanup_median_ms"]), 0),
        ("  scenario itself (start + 5 steps + snapshots), ms",
         pick(lambda r: r["simulation"]["scenario_median_ms"]), 0),
    ]
    for n in sizes:
        m = str(n)
        rows += [
            (f"(set-up, not a modeler figure) N={n:,}: starts/s",
             pick(lambda r, m=m: r["migration"][m]["setup"]["starts_per_s"]), 1),
            (f"(set-up, not a modeler figure) N={n:,}: task completions/s",
             pick(lambda r, m=m: r["migration"][m]["setup"]["completions_per_s"]), 1),
            (f"(set-up, not a modeler figure) N={n:,}: total, s",
             pick(lambda r, m=m: r["migration"][m]["setup"]["setup_s"]), 1),
        ]
    return rows


def markdown_table(rows: list[tuple], dbs: list[str], servers: dict[str, str]) -> str:
    header = ["Figure", *[servers.get(db, db) for db in dbs]]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * len(dbs)]
    for label, values, digits in rows:
        lines.append("| " + " | ".join([label, *[_fmt(values.get(db), digits) for db in dbs]]) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--database", choices=["sqlite", "postgresql", "postgres", "both"], default="both",
                        help="which database(s) to run on (postgres = postgresql)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 100 instances, 20 reverts, 5 validations, 3 simulations")
    parser.add_argument("--instances", type=int, default=None, help="running instances to migrate (default 1000)")
    parser.add_argument("--large", action="store_true", help="also migrate 5,000 instances (fresh schema)")
    parser.add_argument("--chunk", type=int, default=50, help="instances per run_batch call")
    parser.add_argument("--reverts", type=int, default=None, help="migrations to revert (default 100)")
    parser.add_argument("--validate-runs", type=int, default=None, help="repeats of each validation (default 20)")
    parser.add_argument("--simulate-runs", type=int, default=None, help="repeats of the simulation (default 10)")
    parser.add_argument("--postgres-url",
                        default=os.environ.get("KURATOR_BENCH_POSTGRES_URL") or DEFAULT_POSTGRES_URL,
                        help="PostgreSQL server (a private schema is created and dropped); "
                             "env KURATOR_BENCH_POSTGRES_URL")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the JSON results")
    args = parser.parse_args(argv)
    quick = args.quick
    args.instances = args.instances or (100 if quick else 1000)
    args.reverts = args.reverts if args.reverts is not None else (20 if quick else 100)
    args.validate_runs = args.validate_runs or (5 if quick else 20)
    args.simulate_runs = args.simulate_runs or (3 if quick else 10)
    args.sizes = [args.instances] + ([5000] if args.large and args.instances != 5000 else [])
    if args.instances < 1 or args.chunk < 1 or args.reverts < 0 or args.reverts > args.instances:
        parser.error("--instances and --chunk must be at least 1, --reverts between 0 and --instances")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    databases = {"both": ["sqlite", "postgresql"], "postgres": ["postgresql"]}.get(args.database, [args.database])
    started = datetime.now(timezone.utc)
    info = machine()
    load_before = os.getloadavg()
    print(f"Kurator modeler benchmark, {started.astimezone():%Y-%m-%d %H:%M %Z}: migration of "
          f"{', '.join(f'{n:,}' for n in args.sizes)} sop_case instances, {args.reverts} reverts, validation x "
          f"{args.validate_runs}, simulation x {args.simulate_runs}; databases: {', '.join(databases)}")
    print(f"Python {info['python']}, SpiffWorkflow {info['SpiffWorkflow']}, SQLAlchemy {info['SQLAlchemy']}, "
          f"{info.get('cpu', '?')} x {info['cores']}, {info.get('ram_gib', '?')} GiB RAM, "
          f"load average {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")

    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for kind in databases:
        try:
            results[kind] = run_database(kind, args)
        except Exception:  # report the failure and carry on with the other database
            errors[kind] = traceback.format_exc()
            loud_error(f"{kind} run failed:\n{errors[kind]}")
    load_after = os.getloadavg()
    finished = datetime.now(timezone.utc)

    servers = {kind: r.get("server", kind) for kind, r in results.items()}
    table = markdown_table(table_rows(results, args.sizes, args), list(results), servers)
    print(f"\n== Results, {finished.astimezone():%Y-%m-%d %H:%M %Z}; {info.get('cpu', '?')} x {info['cores']} cores; "
          f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after; "
          f"{(finished - started).total_seconds() / 60:.1f} min ==\n")
    print(table)

    document = {
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat(),
        "machine": info | {"load_average_before": load_before, "load_average_after": load_after},
        "options": {"databases": databases, "sizes": args.sizes, "chunk": args.chunk, "reverts": args.reverts,
                    "validate_runs": args.validate_runs, "simulate_runs": args.simulate_runs,
                    "scenario": SCENARIO, "clock_start": START_AT},
        "results": results,
        "errors": errors,
        "table": table,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nJSON written to {args.output}")
    failed = bool(errors) or any(m["checks_failed"] for r in results.values() for m in r["migration"].values()) \
        or any(r["simulation"]["failed_runs"] for r in results.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
