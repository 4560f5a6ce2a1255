"""Database access: SQLAlchemy engine, sessions and the schema (Alembic migrations)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import DateTime, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

DEFAULT_DATABASE_URL = "sqlite:///instance/kurator.db"
# The session of the instance change in progress (set by `Executor.change`): directory lookups that diagram
# expressions call (`IdentityService.agency_of_kind`) read in that transaction instead of opening their own.
CURRENT_SESSION: ContextVar[Session | None] = ContextVar("kurator_current_session", default=None)
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class Base(DeclarativeBase):
    """Declarative base of every engine table (the web app shares it)."""


class UTCDateTime(TypeDecorator):
    """A timestamp stored as UTC and always returned time-zone-aware, on SQLite as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def database_url(explicit: str | None = None) -> str:
    """The database URL: explicit, else `KURATOR_DATABASE_URL`, else an SQLite file under ./instance/."""
    return explicit or os.environ.get("KURATOR_DATABASE_URL") or DEFAULT_DATABASE_URL


def make_engine(url: str, **kwargs) -> Engine:
    """An SQLAlchemy engine configured for Kurator (SQLite: WAL, foreign keys, busy timeout)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:" and not path.startswith("file:"):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"timeout": 30})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


class Database:
    """One database: its engine and a session factory."""

    def __init__(self, url: str | None = None, engine: Engine | None = None):
        self.url = database_url(url)
        self.engine = engine or make_engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_postgresql(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def session(self, join: Session | None = None) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any error.

        With `join`, the work happens in that caller's session and transaction (no commit here), so several
        engine calls and the caller's own records are saved together or not at all.
        """
        if join is not None:
            yield join
            return
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def upgrade(self) -> None:
        """Bring the schema to the latest migration (creates it on an empty database)."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def dispose(self) -> None:
        self.engine.dispose()


def utcnow() -> datetime:
    """Wall-clock now in UTC; only for technical timestamps, never for deadlines (use the engine clock)."""
    return datetime.now(timezone.utc)
