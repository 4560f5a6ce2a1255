"""What a diagram's isolated code costs: a worker forked by the sandbox's host against one forked from the caller.

    .venv/bin/python bench/sandbox_worker.py                  # a caller holding 200 MB, 40 runs per variant
    .venv/bin/python bench/sandbox_worker.py --heap-mb 400 --runs 60

Code over the sandbox's static budget (a loop, a comprehension) runs in a worker process with hard limits. The
caller here holds `--heap-mb` megabytes of small Python objects, as a web worker holds its application and
requests, and runs one such expression (a comprehension over a list of 20 dictionaries, as a script of the СОП
diagrams does) `--runs` times per variant, 20 ms apart, the variants alternating in rounds:

- hosted: the worker is forked by the host process (`engine.sandbox._Host`), warmed up before it is needed;
- forked: the worker is forked from the caller (`KURATOR_SANDBOX_HOST=0`, and the path taken when the host is
  busy).

Printed: the caller's resident memory, the median and p95 of each variant in ms, and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import engine.sandbox as sandbox_module  # noqa: E402
from engine.sandbox import Sandbox  # noqa: E402

EXPRESSION = "[row['n'] * 2 for row in rows if row['kind'] == 'education']"
VARIABLES = {"rows": [{"n": i, "kind": "education" if i % 2 else "police", "title": f"Мероприятие {i}"}
                      for i in range(20)]}


def heap(megabytes: int) -> list[list[str]]:
    """About `megabytes` of small objects that stay referenced (strings in lists, as parsed data is)."""
    return [[f"{block}-{i}" for i in range(12_000)] for block in range(megabytes)]


def resident_mb() -> float:
    """This process's resident memory (VmRSS), in MB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def runs(sandbox: Sandbox, count: int, hosted: bool) -> list[float]:
    sandbox_module._USE_HOST = hosted
    seconds = []
    for _ in range(count):
        time.sleep(0.02)  # runs apart, as steps are: the host's next worker is ready
        began = time.perf_counter()
        sandbox.evaluate(EXPRESSION, VARIABLES)
        seconds.append(time.perf_counter() - began)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--heap-mb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args(argv)
    held = heap(args.heap_mb)
    sandbox = Sandbox()
    runs(sandbox, 3, hosted=True)  # the host's start, once per process
    runs(sandbox, 3, hosted=False)
    figures: dict[str, list[float]] = {"hosted": [], "forked": []}
    for _ in range(args.rounds):
        figures["hosted"] += runs(sandbox, args.runs // args.rounds, hosted=True)
        figures["forked"] += runs(sandbox, args.runs // args.rounds, hosted=False)
    sandbox_module._USE_HOST = True
    print(f"caller: {resident_mb():.0f} MB resident ({len(held)} blocks held); {len(figures['hosted'])} runs per "
          "variant")
    medians = {}
    for name, seconds in figures.items():
        ordered = sorted(seconds)
        medians[name] = statistics.median(ordered) * 1000
        p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000
        print(f"{name:8s} median {medians[name]:7.2f} ms   p95 {p95:7.2f} ms")
    print(f"forked / hosted (medians): {medians['forked'] / medians['hosted']:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
