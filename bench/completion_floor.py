"""The least a durable `sop_case` completion can cost on PostgreSQL, beside the engine's and the baseline of
issue 13's `completion_ratio`, in one run on one database.

    .venv/bin/python bench/completion_floor.py                  # 8 cases after a warm-up case
    .venv/bin/python bench/completion_floor.py --cases 20 --json

A "floor" completion does only what any engine that keeps a case's state in the database has to do for a step, and
nothing of its own. It runs on the product's schema (the engine's tables and indexes, the domain's triggers), on one
psycopg connection, without SQLAlchemy, and keeps each case's workflow in memory between steps (no load):

1. one SELECT of the instance's row `FOR NO KEY UPDATE`: the lock, and its revision;
2. SpiffWorkflow's step, as in the baseline: `set_data`, `run`, `do_engine_steps`;
3. the state pruned and serialised as the engine does it (finished branches dropped, compact layout): a state
   that kept every finished task would grow, and its write with it;
4. one statement of data-modifying `WITH` parts writing the instance's row (state, revision, waiting list), the
   completed task's row, a row for each new user task and a history row for each;
5. COMMIT.

It checks no user, no form, no scope, and writes no audit; it evaluates no Camunda attribute of the new tasks
(due date, candidates). The engine does all of these.

Printed: the median per completion over the path of `engine_bench` (8 steps a case) for the engine, the floor, bare
SpiffWorkflow in memory and one INSERT+COMMIT, and the two ratios against the baseline of `completion_ratio`
(bare step + INSERT+COMMIT). The engine's and the floor's cases alternate, so that both see the same load.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import engine_bench as eb  # noqa: E402
from psycopg.types.json import Jsonb  # noqa: E402
from SpiffWorkflow.util.task import TaskState  # noqa: E402
from sqlalchemy import text  # noqa: E402

from engine import ProcessEngine  # noqa: E402
from engine.bpmn.pruning import prune  # noqa: E402
from engine.bpmn.script_engine import CURRENT_CLOCK  # noqa: E402

_READ = "SELECT revision FROM process_instance WHERE id = %(instance)s FOR NO KEY UPDATE"
_INSTANCE = ("UPDATE process_instance SET state = %(state)s, revision = %(revision)s, waiting_for = %(waiting)s "
             "WHERE id = %(instance)s AND revision = %(was)s RETURNING 1")
_COMPLETED = ("UPDATE human_task SET status = 'completed', completed_at = %(at)s, completed_by = %(user)s, "
              "assignee = %(user)s, data = %(data)s WHERE id = %(task)s AND status = 'open' RETURNING 1")
_TASK_COLUMNS = ("id", "instance_id", "process_key", "element_id", "name", "lane", "candidate_roles",
                 "candidate_users", "candidates", "status", "created_at", "overdue")


def _write(new_tasks: int) -> str:
    """The one statement of step 4 for `new_tasks` new user tasks."""
    parts = [f"w0 AS ({_INSTANCE})", f"w1 AS ({_COMPLETED})"]
    history = ["(%(instance)s, %(task)s, 'task_completed', %(user)s, %(at)s, %(data)s)"]
    for n in range(new_tasks):
        values = ", ".join(f"%(t{n}_{column})s" for column in _TASK_COLUMNS)
        parts.append(f"n{n} AS (INSERT INTO human_task ({', '.join(_TASK_COLUMNS)}) VALUES ({values}) RETURNING 1)")
        history.append(f"(%(instance)s, %(t{n}_id)s, 'task_created', NULL, %(at)s, %(t{n}_event)s)")
    parts.append("h AS (INSERT INTO history_event (instance_id, task_id, event_type, actor, at, data) VALUES "
                 + ", ".join(history) + " RETURNING 1)")
    checks = ", ".join(f"(SELECT count(*) FROM {name})" for name in ["w0", "w1"] + [f"n{n}" for n in range(new_tasks)])
    return "WITH " + ", ".join(parts) + f" SELECT {checks}"


class FloorCase:
    """One case driven the floor's way (see the module's text), on its own instance row."""

    def __init__(self, engine: ProcessEngine, raw: Any, definition_id: int, number: int, at: str):
        self.workflow = eb.bare_sop_case(engine.executor.script_engine("Europe/Moscow"), number)
        self.engine, self.raw, self.revision = engine, raw, 1
        cursor = raw.cursor()
        cursor.execute("INSERT INTO process_instance (definition_id, process_key, business_key, status, state, "
                       "revision, timezone, started_at) VALUES (%s, 'sop_case', %s, 'running', %s, 1, "
                       "'Europe/Moscow', %s) RETURNING id",
                       (definition_id, f"floor-{number}", self._state(), at))
        self.instance = cursor.fetchone()[0]
        self.open: set[str] = set()
        self._write_new(cursor, at)
        raw.commit()

    def _state(self) -> str:
        prune(self.workflow)
        return self.engine.executor.serializer.state_to_json(self.workflow)

    def _new_tasks(self) -> list[Any]:
        return [t for t in self.workflow.get_tasks(state=TaskState.READY, manual=True) if str(t.id) not in self.open]

    def _task_values(self, task: Any, n: int, at: str) -> dict[str, Any]:
        lane = task.task_spec.lane
        self.open.add(str(task.id))
        return {f"t{n}_id": str(task.id), f"t{n}_instance_id": self.instance, f"t{n}_process_key": "sop_case",
                f"t{n}_element_id": task.task_spec.bpmn_id, f"t{n}_name": task.task_spec.bpmn_name or "",
                f"t{n}_lane": lane, f"t{n}_candidate_roles": Jsonb([lane] if lane else []),
                f"t{n}_candidate_users": Jsonb([]), f"t{n}_candidates": f"|role:{lane}|" if lane else "|",
                f"t{n}_status": "open", f"t{n}_created_at": at, f"t{n}_overdue": False,
                f"t{n}_event": Jsonb({"element": task.task_spec.bpmn_id})}

    def _write_new(self, cursor: Any, at: str) -> None:
        for n, task in enumerate(self._new_tasks()):
            values = self._task_values(task, n, at)
            cursor.execute(f"INSERT INTO human_task ({', '.join(_TASK_COLUMNS)}) VALUES "
                           f"({', '.join(f'%({k})s' for k in values if not k.endswith('_event'))})", values)

    def complete(self, element: str, data: dict[str, Any], user: str, at: str) -> dict[str, float]:
        """One floor completion of the ready task of `element`: the seconds of each phase and in all."""
        began = time.perf_counter()
        cursor = self.raw.cursor()
        cursor.execute(_READ, {"instance": self.instance})
        was = cursor.fetchone()[0]
        read = time.perf_counter()
        task = eb.bare_ready(self.workflow, element)
        eb.bare_step(self.workflow, task, data)
        stepped = time.perf_counter()
        self.open.discard(str(task.id))
        params = {"instance": self.instance, "state": self._state(), "revision": was + 1, "was": was,
                  "waiting": None, "task": str(task.id), "user": user, "at": at, "data": Jsonb(data)}
        new = self._new_tasks()
        for n, new_task in enumerate(new):
            params.update(self._task_values(new_task, n, at))
        serialised = time.perf_counter()
        cursor.execute(_write(len(new)), params)
        counts = cursor.fetchone()
        written = time.perf_counter()
        self.raw.commit()
        committed = time.perf_counter()
        if any(count != 1 for count in counts):
            raise RuntimeError(f"floor write of {element}: {counts}")
        return {"read": read - began, "step": stepped - read, "serialise": serialised - stepped,
                "write": written - serialised, "commit": committed - written, "total": committed - began}


def strip_schema(db: Any) -> None:
    """`--lean`: drop every trigger and every index but the primary keys of the three tables a completion writes."""
    with db.session() as session:
        for table, name in session.execute(text(
                "SELECT event_object_table, trigger_name FROM information_schema.triggers "
                "WHERE trigger_schema = current_schema()")).all():
            session.execute(text(f'DROP TRIGGER IF EXISTS "{name}" ON "{table}"'))
        for (name,) in session.execute(text(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename IN "
                "('human_task', 'history_event', 'process_instance') AND indexname NOT LIKE '%pkey'")).all():
            session.execute(text(f'DROP INDEX "{name}"'))


PHASES = ("read", "step", "serialise", "write", "commit")


def run_cases(engine: ProcessEngine, db: Any, cases: int, with_engine: bool = True,
              first: int = 0) -> tuple[list[float], list[dict[str, float]]]:
    """`cases` cases along the path after `eb.WARM_UP_CASES` not counted, numbered from `first`: the engine's
    completion times and the floor's phases. With `with_engine`, each step is completed by the engine and then the
    floor's way, in cases of their own; without it, only the floor's way."""
    engine_times: list[float] = []
    floor_times: list[dict[str, float]] = []
    definition_id = engine.repository.definition("sop_case").id
    raw = db.engine.raw_connection()
    token = CURRENT_CLOCK.set(engine.clock)  # the floor's diagram code reads the engine's clock
    try:
        for case in range(first, first + eb.WARM_UP_CASES + cases):
            counted = case >= first + eb.WARM_UP_CASES
            engine.clock.set(eb.START_AT)
            instance_id = (engine.runtime.start("sop_case", dict(eb.SOP_START, case_id=case),
                                                business_key=f"engine-{case}") if with_engine else None)
            floor = FloorCase(engine, raw, definition_id, case, eb.START_AT)
            at = eb.START_AT
            for element, data in eb.SOP_PATH:
                if with_engine:
                    seconds = eb.sop_complete(engine, instance_id, element, data)
                    if counted:
                        engine_times.append(seconds)
                phases = floor.complete(element, data, "bench", at)
                if counted:
                    floor_times.append(phases)
                if element == "sop_check":
                    engine.clock.set(eb.SOP_MEETING)
                    at = eb.SOP_MEETING
    finally:
        CURRENT_CLOCK.reset(token)
        raw.close()
    return engine_times, floor_times


def floor_medians(floor_times: list[dict[str, float]]) -> dict[str, Any]:
    """The floor's median in all and without its read, and of each phase, in ms."""
    return {"floor": statistics.median(p["total"] for p in floor_times) * 1000,
            "floor_without_read": statistics.median(p["total"] - p["read"] for p in floor_times) * 1000,
            "phases": {phase: statistics.median(p[phase] for p in floor_times) * 1000 for phase in PHASES}}


def measure(url: str, cases: int, lean: bool = False) -> dict[str, Any]:
    with eb.fresh_database("postgres", url) as db:
        engine = eb.sop_engine(db)
        if lean:
            strip_schema(db)
        engine_times, floor_times = run_cases(engine, db, cases)
        bare = eb.sop_bare(engine, cases)
        probe = eb.insert_commit(db, 200)
    floor = floor_medians(floor_times)
    median = {"engine": statistics.median(engine_times) * 1000, "floor": floor["floor"],
              "floor_without_read": floor["floor_without_read"],
              "bare_step": bare["median_ms"], "insert_commit": probe["median_ms"]}
    baseline = median["bare_step"] + median["insert_commit"]
    return {"cases": cases, "completions": len(engine_times), "lean_schema": lean, "median_ms": median,
            "floor_phases_median_ms": floor["phases"], "baseline_ms": baseline,
            "engine_ratio": median["engine"] / baseline, "floor_ratio": median["floor"] / baseline,
            "floor_without_read_ratio": median["floor_without_read"] / baseline,
            "engine_over_floor": median["engine"] / median["floor"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--postgres-url", default=eb.DEFAULT_POSTGRES_URL)
    parser.add_argument("--lean", action="store_true",
                        help="drop every trigger and secondary index of the tables a completion writes first (what "
                             "the schema's inbox indexes and the domain's triggers add to the floor)")
    parser.add_argument("--json", action="store_true", help="the figures as JSON")
    args = parser.parse_args(argv)
    figures = measure(args.postgres_url, args.cases, args.lean)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    median = figures["median_ms"]
    schema = "the schema stripped of triggers and secondary indexes" if args.lean else "the product's schema"
    print(f"PostgreSQL, {schema}, {args.cases} cases after {eb.WARM_UP_CASES} warm-up, {figures['completions']} "
          f"completions a side; median ms per completion")
    for label, key in (("engine", "engine"), ("floor", "floor"), ("floor without its read", "floor_without_read"),
                       ("bare SpiffWorkflow step", "bare_step"), ("INSERT+COMMIT", "insert_commit")):
        print(f"  {label:26s}{median[key]:8.2f}")
    print(f"  {'baseline (bare + INSERT)':26s}{figures['baseline_ms']:8.2f}")
    print("floor's phases: " + ", ".join(f"{phase} {value:.2f}"
                                         for phase, value in figures["floor_phases_median_ms"].items()))
    print(f"engine ÷ baseline {figures['engine_ratio']:.2f}; floor ÷ baseline {figures['floor_ratio']:.2f}; "
          f"floor without its read ÷ baseline {figures['floor_without_read_ratio']:.2f}; "
          f"engine ÷ floor {figures['engine_over_floor']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
