"""The `sop_case` completion figures of two revisions of the engine, measured side by side.

    .venv/bin/python bench/compare_revisions.py --before 6ef3b4b              # the working tree against 6ef3b4b
    .venv/bin/python bench/compare_revisions.py --before HEAD~3 --after HEAD --rounds 5
    .venv/bin/python bench/compare_revisions.py --bench product --before HEAD~1   # with the domain attached

Each revision other than the working tree is checked out into a temporary git worktree (removed at the end). The
rounds alternate between the two, so that both see the same load: each round starts `--cases` `sop_case` cases on
a fresh PostgreSQL schema through that revision's `bench/engine_bench.py` and completes their steps, then runs
the same steps on bare SpiffWorkflow and times single-row INSERT+COMMITs, as `engine_bench.py --json` does for
`completion_ratio` and `age_ratio`. It prints one JSON line per round and a summary table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_POSTGRES_URL = os.environ.get("KURATOR_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

# Run in a child process inside the tree measured, with only the functions every revision's bench has had.
ROUND = """
import json, sys
root, url, cases = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path[:0] = [root, root + "/bench"]
import engine_bench as eb
with eb.fresh_database("postgres", url) as db:
    engine = eb.sop_engine(db)
    kurator = eb.sop_kurator(engine, cases, 30)
    bare = eb.sop_bare(engine, cases)
    probe = eb.insert_commit(db, 200)
median, aged = kurator["completion"]["median_ms"], kurator["aged_completion"]["median_ms"]
print(json.dumps({"completion_ms": median, "bare_step_ms": bare["median_ms"], "insert_commit_ms": probe["median_ms"],
                  "completion_ratio": median / (bare["median_ms"] + probe["median_ms"]),
                  "age_ratio": aged / kurator["fresh_loop_completion"]["median_ms"]}))
"""
KEYS = ("completion_ms", "bare_step_ms", "insert_commit_ms", "completion_ratio", "age_ratio")
# `--bench product`: a case's steps with the domain attached (`bench/product_completion.py` of the working tree,
# run on the engine and domain of the tree measured)
PRODUCT_ROUND = """
import json, sys
root, bench, url, cases = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sys.path[:0] = [root, bench]
import product_completion as pc
every = pc.measure("postgres", url, cases)["all"]
print(json.dumps({"completion_ms": every["median_ms"], "p95_ms": every["p95_ms"],
                  "statements": every["statements"], "transactions": every["transactions"]}))
"""
PRODUCT_KEYS = ("completion_ms", "p95_ms", "statements", "transactions")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="git revision to compare with")
    parser.add_argument("--after", default=None, help="git revision (default: the working tree)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", type=int, default=10, help="sop_case cases per round")
    parser.add_argument("--bench", choices=("engine", "product"), default="engine",
                        help="the engine's sop_case completions (default) or a case's steps with the domain attached")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    return parser.parse_args(argv)


def checkout(revision: str, into: Path) -> Path:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(into), revision], check=True)
    return into


def measure(tree: Path, args: argparse.Namespace) -> dict[str, float]:
    if args.bench == "product":
        command = [sys.executable, "-c", PRODUCT_ROUND, str(tree), str(ROOT / "bench"), args.postgres_url,
                   str(args.cases)]
    else:
        command = [sys.executable, "-c", ROUND, str(tree), args.postgres_url, str(args.cases)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kurator-compare-") as temp:
        trees = {"before": checkout(args.before, Path(temp) / "before")}
        trees["after"] = checkout(args.after, Path(temp) / "after") if args.after else ROOT
        try:
            results: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
            for round_number in range(1, args.rounds + 1):
                for label, tree in trees.items():
                    figures = measure(tree, args)
                    results[label].append(figures)
                    print(json.dumps({"round": round_number, "tree": label, **figures}), flush=True)
        finally:
            for tree in trees.values():
                if tree != ROOT:
                    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"\n{args.before} → {args.after or 'working tree'}, {args.rounds} rounds, {args.cases} cases each, "
          f"load average at the end {load}")
    print(f"{'':20} {'before (rounds)':>34} {'after (rounds)':>34}")
    for key in PRODUCT_KEYS if args.bench == "product" else KEYS:
        cells = [" / ".join(f"{r[key]:.2f}" for r in results[label]) for label in ("before", "after")]
        medians = [statistics.median(r[key] for r in results[label]) for label in ("before", "after")]
        print(f"{key:20} {cells[0]:>34} {cells[1]:>34}   medians {medians[0]:.2f} → {medians[1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
