"""Helpers shared by the tests: test databases (SQLite file or a private PostgreSQL schema), engines."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import event, text

import sop.models  # noqa: F401 - the SOP tables are part of the schema the tests clear
from engine import Database, FrozenClock, ProcessEngine
from engine.db import Base, make_engine
from sop.roles import ROLES as SOP_ROLES

ROOT = Path(__file__).resolve().parents[1]
DIAGRAMS = Path(__file__).parent / "diagrams"
CONFORMANCE = Path(__file__).resolve().parents[2] / "shared" / "conformance"
DEFAULT_START = "2025-10-30T09:00:00+03:00"


def postgres_url() -> str | None:
    return os.environ.get("KURATOR_TEST_DATABASE_URL") or None


def open_database(url: str, schema: str | None = None) -> Database:
    """A Database on `url`; on PostgreSQL every connection uses `schema` as its search path."""
    if schema:
        engine = make_engine(url, connect_args={"options": f"-csearch_path={schema}"})
        return Database(url, engine=engine)
    return Database(url, engine=make_engine(url))


def create_postgres_schema(url: str) -> str:
    schema = f"kurator_test_{uuid.uuid4().hex[:10]}"
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    return schema


def drop_postgres_schema(url: str, schema: str) -> None:
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


def clear(db: Database) -> None:
    """Empty every table (fast test isolation on both databases)."""
    with db.engine.begin() as conn:
        if db.is_postgresql:
            names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())


def new_engine(db: Database, at: str = DEFAULT_START) -> ProcessEngine:
    engine = ProcessEngine(db, FrozenClock(at))
    engine.identity.ensure_default_roles()
    engine.identity.ensure_roles(SOP_ROLES)  # the domain's roles, used by its diagrams
    return engine


@contextmanager
def statements_sent(engine: ProcessEngine, keep: Callable[[str], bool] = lambda _statement: True
                    ) -> Iterator[list[str]]:
    """The SQL statements the engine's database is sent while inside (those `keep` accepts), in order."""
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        if keep(statement):
            seen.append(statement)

    event.listen(engine.db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.db.engine, "before_cursor_execute", record)


def in_another_thread(target) -> tuple[threading.Thread, dict]:
    """Run `target` in a thread of its own (another web worker, the scheduler); its result or error in `outcome`."""
    outcome: dict = {}

    def run():
        try:
            outcome["result"] = target()
        except Exception as exc:  # handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def another_transaction_waits_for_a_lock(engine) -> bool:
    """Whether, within 20 s, another connection of this database is waiting for a lock (PostgreSQL)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with engine.db.engine.connect() as watcher:
            if watcher.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                   "AND datname = current_database() AND pid <> pg_backend_pid()")):
                return True
        time.sleep(0.02)
    return False
