"""Database access: SQLAlchemy engine, sessions and the schema (Alembic migrations)."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    DateTime,
    Executable,
    Insert,
    Table,
    bindparam,
    create_engine,
    event,
    func,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.orm import DeclarativeBase, ORMExecuteState, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from .errors import Conflict

if TYPE_CHECKING:
    from alembic.config import Config

DEFAULT_DATABASE_URL = "sqlite:///instance/kurator.db"
# The session of the instance change in progress (set by `Executor.change`): directory lookups that diagram
# expressions call (`IdentityService.agency_of_kind`) read in that transaction instead of opening their own.
CURRENT_SESSION: ContextVar[Session | None] = ContextVar("kurator_current_session", default=None)
# A pooled PostgreSQL connection unused for longer than this is checked (`SELECT 1`) before it is handed out, so a
# server restart or a dropped idle connection costs no failed request; one used more recently is not (a round trip
# saved on every transaction of a busy worker). A connection that breaks within this window fails the statement
# that meets it, and the pool then replaces every connection of that server.
PING_AFTER_IDLE_SECONDS = 10.0
_AFTER_COMMIT = "kurator_after_commit"
_BEFORE_COMMIT = "kurator_before_commit"
_SAVEPOINTS = "kurator_savepoints"  # Session.info key: per open savepoint, how many after-commit callbacks preceded it
_TEMPLATES: dict[tuple, Insert] = {}  # `Database.insert_rows`'s statements by shape
_COMBINED: dict[tuple, Executable] = {}  # `send_queued`'s statements by the writes they hold (bounded)
_COMBINED_SIZE = 512
_COMBINED_LOCK = threading.Lock()
ROWS_IN_ONE_SELECT = 20  # `insert_rows`: more rows go to the driver's executemany (planning a long UNION ALL costs)
_QUEUE = "kurator_write_queue"  # Session.info key of the writes `Database.queue` holds
_LOCKED = "kurator_locked_rows"  # Session.info key of the rows the transaction has locked (`note_row_locked`)
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
ENGINE_VERSIONS = MIGRATIONS_DIR / "versions"  # the engine's own chain of revisions (no domain table in it)


# PostgreSQL's refusals of a transaction that met another one (deadlock_detected, serialization_failure): the
# other transaction goes on, this one is rolled back and can simply be tried again
_CONCURRENT_SQLSTATES = frozenset({"40P01", "40001"})
CONCURRENT_CHANGE = ("Одновременно сохранялось другое изменение тех же данных, и это изменение не сохранено; "
                     "обновите страницу и повторите.")


def is_concurrent_change(exc: BaseException) -> bool:
    """Whether a database error means only that another transaction got in the way (PostgreSQL's deadlock or
    serialization failure, SQLite's lock held past the busy timeout): nothing is wrong with the change itself."""
    if not isinstance(exc, OperationalError):
        return False
    if getattr(exc.orig, "sqlstate", None) in _CONCURRENT_SQLSTATES:
        return True
    return "database is locked" in str(exc.orig)


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
    engine = create_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _ping_idle_connections(engine)
    return engine


def _ping_idle_connections(engine: Engine) -> None:
    """Check a pooled connection before use when it has been idle for `PING_AFTER_IDLE_SECONDS` (SQLAlchemy's
    `pool_pre_ping` checks every time, a round trip per transaction)."""

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_connection, record) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_connection, record, _proxy) -> None:
        since = record.info.pop(_IDLE_SINCE, None)
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
            dbapi_connection.rollback()
        except Exception as exc:  # the pool then discards this connection and hands out a new one
            raise DisconnectionError(f"pooled connection is gone: {exc}") from exc


_IDLE_SINCE = "kurator_idle_since"


@dataclass(frozen=True)
class MigrationBranch:
    """A plugin's own Alembic branch of the schema, applied beside the engine's chain by `Database.upgrade`.

    `versions` is the folder of the branch's revision files. Its first revision has `branch_labels` and
    `depends_on` the engine revision whose tables it references; later ones may depend on later engine revisions.

    `adopt(connection)` serves databases whose schema already holds (part of) the branch's tables without any of
    its revisions in `alembic_version`, e.g. tables an older release created in the engine's chain. It is called
    before upgrading when the database has revisions but none of this branch's; it returns the branch revision the
    existing schema corresponds to, which is then stamped as applied (the upgrade goes on from there), or None when
    the schema holds nothing of the branch (the branch is then applied from its first revision).
    """

    versions: Path
    adopt: Callable[[Connection], str | None] | None = None


def migration_config(branches: Sequence[MigrationBranch] = ()) -> Config:
    """The Alembic configuration of the engine's chain plus the given plugins' branches (no alembic.ini needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    locations = [ENGINE_VERSIONS, *(Path(branch.versions) for branch in branches)]
    config.set_main_option("version_locations", os.pathsep.join(str(path) for path in locations))
    return config


class Database:
    """One database: its engine and a session factory."""

    def __init__(self, url: str | None = None, engine: Engine | None = None):
        self.url = database_url(url)
        self.engine = engine or make_engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        event.listen(self._sessions, "after_transaction_create", _note_savepoint)
        event.listen(self._sessions, "after_commit", _run_after_commit)
        event.listen(self._sessions, "after_rollback", _forget_after_commit)
        # queued writes go out before anything else the session executes, and before it commits (after the
        # callbacks of `before_commit`, whose own statements send them first)
        event.listen(self._sessions, "do_orm_execute", self._before_orm_execute)
        event.listen(self._sessions, "before_commit", self._before_commit)

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
        except OperationalError as exc:
            session.rollback()
            if is_concurrent_change(exc):  # e.g. two changes of one case that waited for each other crosswise
                raise Conflict(CONCURRENT_CHANGE) from exc
            raise
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def upgrade(self, branches: Sequence[MigrationBranch] = ()) -> None:
        """Bring the schema to the latest migration (creates it on an empty database): the engine's chain and the
        given plugins' branches, all to their heads, in one transaction. A branch that an existing schema already
        holds without its revisions is first stamped as far as its `adopt` says (see `MigrationBranch`).

        A database with revisions that none of the given folders knows (a plugin's branch that was not given, or a
        newer release) is left as it is when the given migrations are all applied already, and refused with a clear
        error, before anything changes, when some are not (Alembic cannot upgrade past revisions it does not know).

        On SQLite, foreign keys are not enforced while the migrations run: a revision that alters a table there
        rebuilds it (a copy, then DROP of the original), and a DROP with enforcement on would first delete the
        rows that reference it with ON DELETE CASCADE (an instance's tasks, for instance). They are checked at the
        end instead: a violation fails the upgrade with the offending rows.
        """
        from alembic import command
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        from .errors import KuratorError

        config = migration_config(branches)
        script = ScriptDirectory.from_config(config)
        folder_of = {rev.revision: Path(rev.path).resolve().parent for rev in script.walk_revisions()}
        sqlite = self.engine.dialect.name == "sqlite"
        with self.engine.connect() as connection:
            if sqlite:  # only outside a transaction does SQLite take this pragma
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
                connection.commit()
            try:
                with connection.begin():
                    context = MigrationContext.configure(connection)
                    applied = set(context.get_current_heads())
                    unknown = sorted(applied - set(folder_of))
                    if unknown and set(script.get_heads()) <= applied:
                        return  # the given migrations are all applied; the others are not this call's business
                    if unknown:
                        raise KuratorError(
                            f"The database has schema revisions that are not among the migrations given: "
                            f"{', '.join(unknown)}. They belong to a plugin that is not attached (a domain's own "
                            f"branch) or to a newer release; upgrade with the engine that has them "
                            f"(`kurator init-db`).")
                    for branch in branches:
                        own = {rev for rev, folder in folder_of.items() if folder == Path(branch.versions).resolve()}
                        if branch.adopt is None or not applied or applied & own:
                            continue
                        revision = branch.adopt(connection)
                        if revision is not None:
                            if revision not in own:
                                raise ValueError(f"adopt() of {branch.versions} gave '{revision}', not one of its "
                                                 f"revisions")
                            context.stamp(script, revision)
                    config.attributes["connection"] = connection
                    command.upgrade(config, "heads")
                    if sqlite:
                        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                        if broken:
                            raise KuratorError(f"The upgraded schema breaks foreign keys (table, row, parent): "
                                               f"{[tuple(row[:3]) for row in broken[:5]]}")
            finally:
                if sqlite:
                    connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                    connection.commit()

    def dispose(self) -> None:
        self.engine.dispose()

    def insert_rows(self, table: Table, rows: list[dict[str, Any]], key: Sequence[str] | None = None,
                    prefix: str = "r", derived: dict[str, tuple[str, Callable[[Any], Any]]] | None = None
                    ) -> tuple[Insert, dict[str, Any] | list[dict[str, Any]]]:
        """An INSERT of `rows` (all with the same columns) and its parameters. With `key`, a row whose key exists
        already is updated to the values given instead (`ON CONFLICT ... DO UPDATE`). `derived` columns are
        computed in SQL from another column's value: {column: (source column, expression of its parameter)}.

        On PostgreSQL a few rows are one statement that can join others in `send_queued`: a SELECT of parameters
        named `<prefix><row>_<column>` (a UNION ALL for several; a multi-row VALUES list cannot be cached by
        SQLAlchemy). Otherwise (SQLite, or many rows) the parameters are a list, one set per row, for the driver's
        executemany. Either statement is built and compiled once per shape and costs neither after."""
        defaults = _python_defaults(table, {**rows[0], **(derived or {})})
        if defaults:
            rows = [{**defaults, **row} for row in rows]
        columns = tuple(rows[0])
        derived = derived or {}
        one_statement = self.is_postgresql and len(rows) <= ROWS_IN_ONE_SELECT
        shape = (self.engine.dialect.name, table.name, columns, len(rows) if one_statement else 0, tuple(key or ()),
                 prefix, tuple((name, source, id(make)) for name, (source, make) in derived.items()))
        statement = _TEMPLATES.get(shape)
        if statement is None:
            statement = _TEMPLATES.setdefault(shape, self._insert_template(table, columns, len(rows) if one_statement
                                                                          else 0, key, prefix, derived))
        if not one_statement:
            return statement, rows
        return statement, {f"{prefix}{n}_{name}": value for n, row in enumerate(rows) for name, value in row.items()}

    def _insert_template(self, table: Table, columns: tuple[str, ...], count: int, key: Sequence[str] | None,
                         prefix: str, derived: dict[str, tuple[str, Callable[[Any], Any]]]) -> Insert:
        """`insert_rows`'s statement: a SELECT of `count` rows of parameters, or (count 0) one row of parameters
        named as the columns, for executemany."""
        dialect_insert = postgresql_insert if self.is_postgresql else sqlite_insert

        def param(name: str, n: int | None = None):
            return bindparam(name if n is None else f"{prefix}{n}_{name}", type_=table.c[name].type)

        if count:
            source = [select(*[param(name, n) for name in columns],
                             *[make(param(source, n)) for source, make in derived.values()]) for n in range(count)]
            statement = dialect_insert(table).from_select(
                [*columns, *derived], source[0] if count == 1 else union_all(*source), include_defaults=False)
        else:
            statement = dialect_insert(table).values({**{name: param(name) for name in columns},
                                                      **{name: make(param(source))
                                                         for name, (source, make) in derived.items()}})
        if key is not None:
            statement = statement.on_conflict_do_update(
                index_elements=list(key), set_={name: statement.excluded[name]
                                                for name in [*columns, *derived] if name not in key})
        return statement

    @contextmanager
    def write_queue(self, session: Session) -> Iterator[None]:
        """Within: `queue` holds the session's writes to send them together (`send_queued`); on leaving, whatever
        is still queued is sent. Not re-entrant on purpose: an inner block shares the outer one's queue."""
        if _QUEUE in session.info:
            yield
            return
        session.info[_QUEUE] = []
        try:
            yield
            self.send_queued(session)
        finally:
            session.info.pop(_QUEUE, None)

    @staticmethod
    def queueing(session: Session) -> list | None:
        """The session's queue of writes inside a `write_queue` block (a new one for every block), else None."""
        return session.info.get(_QUEUE)

    def queue(self, session: Session, statement: Executable, params: dict[str, Any] | list | None = None,
              check: Callable[[int], None] | None = None, touches: Sequence[Any] = ()) -> None:
        """Hold a write (an INSERT, UPDATE or DELETE and its parameters, or a function that gives both when the
        queue is sent, for a write that may still grow) until `send_queued`, or send it at once outside a
        `write_queue` block. `check` gets the number of rows it changed, once sent (it raises to refuse
        the transaction); `touches` are the keys of the rows it changes (see `send_queued`). For the writes to go
        out together their named parameters must differ (`insert_rows`'s `prefix`)."""
        held = session.info.get(_QUEUE)
        if held is None:
            if callable(statement):
                statement, params = statement()
            result = session.execute(statement, params or {})
            if check is not None:
                check(result.rowcount)
            return
        held.append((statement, params or {}, check, tuple(touches)))

    # execution option of a query that reads none of the tables queued writes change (reference data such as agencies
    # and municipalities): it runs without sending the queue first, so the writes still go out in one statement
    READS_NO_QUEUED_TABLE = "kurator_reads_no_queued_table"

    def _before_orm_execute(self, state: ORMExecuteState) -> None:
        if not state.execution_options.get(self.READS_NO_QUEUED_TABLE):
            self.send_queued(state.session)

    def send_queued(self, session: Session) -> None:
        """Send the queued writes: on PostgreSQL in one statement (each write a data-modifying `WITH` part, one
        round trip for all), elsewhere one after the other; then run their checks, in the order queued.

        The parts of one PostgreSQL statement all see the database as it was before it, so writes that change the
        same row (the same key in `touches`), or whose parameters share a name, are sent one after the other."""
        held = session.info.get(_QUEUE)
        if not held:
            return
        items = [(*statement(), check, touches) if callable(statement) else (statement, params, check, touches)
                 for statement, params, check, touches in held]
        held.clear()
        if session.new or session.dirty or session.deleted:
            session.flush()  # the session's own objects first, as autoflush would have written them
        connection = session.connection()
        keys = [key for *_rest, touches in items for key in touches]
        params: dict[str, Any] = {}
        together = (self.is_postgresql and len(items) > 1 and len(keys) == len(set(keys))
                    and all(isinstance(own, dict) for _statement, own, _check, _touches in items))
        if together:
            for _statement, own, _check, _touches in items:
                params.update(own)
            together = len(params) == sum(len(own) for _statement, own, _check, _touches in items)
        if together:
            counts = connection.execute(_together(tuple(statement for statement, *_rest in items)), params).one()
        else:
            counts = [connection.execute(statement, own).rowcount for statement, own, _check, _touches in items]
        for (_statement, _own, check, _touches), count in zip(items, counts, strict=True):
            if check is not None:
                check(count)

    @staticmethod
    def before_commit(session: Session, key: str, callback: Callable[[Session], None]) -> None:
        """Run `callback(session)` once when the session's transaction is about to commit, inside it (what it
        writes commits with the rest; an error it raises rolls everything back). One callback per `key`, however
        often it is asked for: for a domain that keeps derived rows in step with what a whole change did."""
        session.info.setdefault(_BEFORE_COMMIT, {}).setdefault(key, callback)

    def _before_commit(self, session: Session) -> None:
        if session.new or session.dirty or session.deleted:
            session.flush()  # what the flush at commit would write, first: it may ask for callbacks too
        callbacks = session.info.get(_BEFORE_COMMIT)
        while callbacks:  # in the order asked for; a callback may ask for another
            callback = callbacks.pop(next(iter(callbacks)))
            callback(session)
        self.send_queued(session)

    @staticmethod
    def after_commit(session: Session, callback: Callable[[], None]) -> None:
        """Run `callback` once the session's transaction has committed (never if it rolls back, nor if the savepoint
        it was asked for in does; a savepoint released is not the commit); in order of registration. For keeping
        in memory what the transaction wrote (e.g. a live workflow): a failing callback is logged, the commit
        stands."""
        session.info.setdefault(_AFTER_COMMIT, []).append(callback)


def _together(statements: tuple[Executable, ...]) -> Executable:
    """One SELECT whose `WITH` parts are the writes, giving the rows each changed; kept per tuple of statements
    (the callers' statements are built once, so this is too, and its compiled form is cached)."""
    combined = _COMBINED.get(statements)
    if combined is None:
        parts = [statement.returning(literal_column("1")).cte(f"w{n}") for n, statement in enumerate(statements)]
        combined = select(*[select(func.count()).select_from(part).scalar_subquery() for part in parts])
        with _COMBINED_LOCK:  # the oldest shapes go first
            combined = _COMBINED.setdefault(statements, combined)
            while len(_COMBINED) > _COMBINED_SIZE:
                _COMBINED.pop(next(iter(_COMBINED)))
    return combined


def _python_defaults(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """The column defaults SQLAlchemy would fill in for the columns `row` leaves out (scalars and callables)."""
    defaults = {}
    for column in table.c:
        default = column.default
        if column.name in row or default is None or column.primary_key:
            continue
        if default.is_scalar:
            defaults[column.name] = default.arg
        elif default.is_callable:
            defaults[column.name] = default.arg(None)
    return defaults


def _note_savepoint(session: Session, transaction: Any) -> None:
    if transaction.nested:
        session.info.setdefault(_SAVEPOINTS, []).append(len(session.info.get(_AFTER_COMMIT) or ()))


def _run_after_commit(session: Session) -> None:
    # SQLAlchemy says "after commit" when a savepoint is released too: what was asked for then waits for the
    # transaction itself
    if session.in_nested_transaction():
        marks = session.info.get(_SAVEPOINTS)
        if marks:
            marks.pop()
        return
    session.info.pop(_SAVEPOINTS, None)
    session.info.pop(_LOCKED, None)
    callbacks = session.info.pop(_AFTER_COMMIT, None)
    for callback in callbacks or ():
        try:
            callback()
        except Exception:  # the data is committed; what runs after it only keeps memory in step
            logging.getLogger(__name__).exception("after-commit callback failed")


def _forget_after_commit(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint rolled back: only what was asked for inside it is forgotten
        marks = session.info.get(_SAVEPOINTS)
        kept = marks.pop() if marks else 0
        callbacks = session.info.get(_AFTER_COMMIT)
        if callbacks:
            del callbacks[kept:]
        return
    session.info.pop(_SAVEPOINTS, None)
    session.info.pop(_AFTER_COMMIT, None)
    session.info.pop(_BEFORE_COMMIT, None)
    session.info.pop(_LOCKED, None)


def note_row_locked(session: Session, model: type, key: Any) -> None:
    """Note that the session's transaction holds the lock of a row (PostgreSQL `SELECT ... FOR [NO KEY] UPDATE`),
    so that code further on does not lock it again; forgotten when the transaction ends."""
    session.info.setdefault(_LOCKED, set()).add((model, key))


def row_locked(session: Session, model: type, key: Any) -> bool:
    """Whether `note_row_locked` said so in the session's current transaction. A savepoint rolled back releases
    the locks taken in it while the note stays: whoever relies on the lock still checks what it writes (as the
    instance's revision check does)."""
    locked = session.info.get(_LOCKED)
    return locked is not None and (model, key) in locked


def utcnow() -> datetime:
    """Wall-clock now in UTC; only for technical timestamps, never for deadlines (use the engine clock)."""
    return datetime.now(timezone.utc)
