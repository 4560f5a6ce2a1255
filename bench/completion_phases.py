"""Where a `sop_case` completion's time goes, phase by phase, without a profiler's overhead.

    .venv/bin/python bench/completion_phases.py                      # PostgreSQL, 8 cases after a warm-up case
    .venv/bin/python bench/completion_phases.py --cases 20 --database sqlite

The engine's phases are timed with `time.perf_counter` around the functions that carry them, wrapped for the run:
the completion's read (`tasks._rows`), the workflow's load, SpiffWorkflow's run of the task and the engine steps
that follow (`Executor.advance`), the save plan (pruning, serialising the state, the inbox rows), the combined write
(`Database.send_queued`) and the COMMIT. "rest" is the completion's time outside those phases (the checks of the
user and the form, the history, the session). Printed per step: the median of each phase over the cases, in ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import engine_bench as eb  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from engine import db as db_module  # noqa: E402
from engine import executor as executor_module  # noqa: E402
from engine import tasks as tasks_module  # noqa: E402

# (label, owner, attribute): what each phase times
PHASES = (("read", tasks_module, "_rows"), ("load", executor_module.Executor, "load"),
          ("SpiffWorkflow", executor_module.Executor, "advance"), ("save plan", executor_module.Executor, "plan_save"),
          ("write", db_module.Database, "send_queued"), ("commit", Session, "commit"))


@contextmanager
def timed_phases() -> Iterator[dict[str, float]]:
    """Within: the seconds spent in each phase since the dictionary was last cleared."""
    spent: dict[str, float] = defaultdict(float)
    originals = []
    for label, owner, name in PHASES:
        original = getattr(owner, name)
        originals.append((owner, name, original))
        setattr(owner, name, _timer(original, label, spent))
    try:
        yield spent
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


def _timer(function: Callable[..., Any], label: str, spent: dict[str, float]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[label] += time.perf_counter() - began
    return timed


def measure(kind: str, url: str, cases: int) -> dict[str, dict[str, float]]:
    per_step: dict[str, list[dict[str, float]]] = defaultdict(list)
    with eb.fresh_database(kind, url) as db:
        engine = eb.sop_engine(db)
        with timed_phases() as spent:
            for case in range(eb.WARM_UP_CASES + cases):
                engine.clock.set(eb.START_AT)
                instance_id = engine.runtime.start("sop_case", dict(eb.SOP_START, case_id=case),
                                                   business_key=f"phases-{case}")
                for element, data in eb.SOP_PATH:
                    task = eb.sop_open_task(engine, instance_id, element)
                    user = task["assignee"] or eb.SOP_USERS[task["candidate_roles"][0]]
                    spent.clear()
                    began = time.perf_counter()
                    engine.tasks.complete(task["id"], user, data)
                    total = time.perf_counter() - began
                    if case >= eb.WARM_UP_CASES:
                        per_step[element].append({"total": total, **spent})
                    if element == "sop_check":
                        engine.clock.set(eb.SOP_MEETING)
    result = {}
    for element, samples in per_step.items():
        medians = {label: statistics.median(s.get(label, 0.0) for s in samples) * 1000
                   for label in ("total", *(label for label, _owner, _name in PHASES))}
        medians["rest"] = medians["total"] - sum(medians[label] for label, _owner, _name in PHASES)
        result[element] = medians
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--database", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--postgres-url", default=eb.DEFAULT_POSTGRES_URL)
    args = parser.parse_args(argv)
    figures = measure(args.database, args.postgres_url, args.cases)
    labels = ["total", *(label for label, _owner, _name in PHASES), "rest"]
    print(f"{args.database}, {args.cases} cases after {eb.WARM_UP_CASES} warm-up; median ms per step")
    print(f"{'step':26s}" + "".join(f"{label:>14s}" for label in labels))
    for element, medians in figures.items():
        print(f"{element:26s}" + "".join(f"{medians[label]:14.2f}" for label in labels))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
