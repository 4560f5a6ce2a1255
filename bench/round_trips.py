"""What a round trip to PostgreSQL costs next to the statements around it, and whether pipelining a write with its
COMMIT (psycopg's pipeline mode) saves anything: the question behind sending a change's write and its commit in one
round trip (bench/RESULTS.md, 2026-12-07).

    .venv/bin/python bench/round_trips.py                 # PostgreSQL at KURATOR_BENCH_POSTGRES_URL or 127.0.0.1

Printed, median ms of `--count` runs, each variant measured twice, alternating: a `SELECT 1`; a `SELECT 1` and a
COMMIT; a `SELECT 1`, then a one-row INSERT … RETURNING and a COMMIT sent one after the other; the same with the
INSERT and the COMMIT in one pipeline. The table is a temporary one, dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import psycopg

DEFAULT_URL = os.environ.get("KURATOR_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
INSERT = "WITH w AS (INSERT INTO bench_round_trip (payload) VALUES (%s) RETURNING 1) SELECT count(*) FROM w"
PAYLOAD = "x" * 3000  # about the size of a case's stored state


def variants(connection: psycopg.Connection) -> dict[str, Callable[[], None]]:
    def select_one() -> None:
        connection.execute("SELECT 1").fetchone()

    def select_commit() -> None:
        connection.execute("SELECT 1").fetchone()
        connection.commit()

    def write_then_commit() -> None:
        connection.execute("SELECT 1").fetchone()
        connection.execute(INSERT, (PAYLOAD,)).fetchone()
        connection.commit()

    def write_and_commit_pipelined() -> None:
        connection.execute("SELECT 1").fetchone()
        with connection.pipeline():
            cursor = connection.cursor()
            cursor.execute(INSERT, (PAYLOAD,))
            connection.commit()
            cursor.fetchone()

    return {"SELECT 1": select_one, "SELECT 1 + COMMIT": select_commit,
            "SELECT 1, INSERT, COMMIT one after the other": write_then_commit,
            "SELECT 1, INSERT and COMMIT pipelined": write_and_commit_pipelined}


def median_ms(run: Callable[[], None], count: int) -> float:
    times = []
    for _ in range(count):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres-url", default=DEFAULT_URL)
    parser.add_argument("--count", type=int, default=500, help="runs per variant and round")
    args = parser.parse_args()
    with psycopg.connect(args.postgres_url) as connection:
        connection.execute("CREATE TEMPORARY TABLE bench_round_trip (id serial PRIMARY KEY, payload text)")
        connection.commit()
        figures: dict[str, list[float]] = {}
        for _round in range(2):
            for name, run in variants(connection).items():
                figures.setdefault(name, []).append(median_ms(run, args.count))
        load = os.getloadavg()
        version = connection.info.server_version
        print(f"PostgreSQL {version // 10000}.{version % 10000}, {args.count} runs per variant and round, "
              f"load average {load[0]:.2f}")
        for name, values in figures.items():
            print(f"  {name:48s} {' / '.join(f'{v:.3f}' for v in values)} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
