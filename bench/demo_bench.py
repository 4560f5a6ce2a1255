#!/usr/bin/env python
"""Demo benchmark: how long `kurator demo` takes to seed, and how much of it the reporting campaigns take.

Run from the repository root:

    .venv/bin/python bench/demo_bench.py                 # seed three times (SQLite), print each and the median
    .venv/bin/python bench/demo_bench.py --repeat 1 --now 2026-11-26T09:00:00+03:00

Each run seeds a fresh temporary SQLite database at `--now` (the demo clock of the browser tests by default) and
prints the wall-clock and CPU time of the whole seed and of its parts that drive the reporting campaigns: operation
«Подросток» of the year and the KPI campaign of the last half-year (on a busy machine the wall clock also counts
waiting for a core).
"""

# The engine is imported after the repository root is put on sys.path.
# ruff: noqa: E402

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine import Database, FrozenClock
from sop import demo
from webapp import build_engine


def timed(spent: dict[str, float], name: str, function):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - start

    return wrapper


def run_once(now: str) -> dict[str, float]:
    spent: dict[str, float] = {}
    podrostok_run, kpi_run = demo._Podrostok.run, demo.kpi_demo.run
    demo._Podrostok.run = timed(spent, "podrostok", podrostok_run)
    demo.kpi_demo.run = timed(spent, "kpi", kpi_run)
    try:
        with tempfile.TemporaryDirectory() as folder:
            engine = build_engine(Database(f"sqlite:///{Path(folder) / 'demo.db'}"), FrozenClock(now))
            cpu, start = time.process_time(), time.perf_counter()
            demo.seed(engine)
            spent["seed"], spent["cpu"] = time.perf_counter() - start, time.process_time() - cpu
            engine.db.dispose()
    finally:
        demo._Podrostok.run, demo.kpi_demo.run = podrostok_run, kpi_run
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--now", default="2026-11-26T09:00:00+03:00", help="the demo clock")
    args = parser.parse_args()
    runs = []
    for number in range(1, args.repeat + 1):
        spent = run_once(args.now)
        runs.append(spent)
        print(f"run {number}: seed {spent['seed']:.1f} s (CPU {spent['cpu']:.1f} s), of which «Подросток» "
              f"{spent.get('podrostok', 0):.2f} s and the KPI campaign {spent.get('kpi', 0):.2f} s")
    if len(runs) > 1:
        print(f"median: seed {statistics.median(r['seed'] for r in runs):.1f} s, «Подросток» "
              f"{statistics.median(r.get('podrostok', 0) for r in runs):.2f} s, KPI "
              f"{statistics.median(r.get('kpi', 0) for r in runs):.2f} s")


if __name__ == "__main__":
    main()
