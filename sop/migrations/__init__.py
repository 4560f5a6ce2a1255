"""The SOP domain's own Alembic branch of the schema (`versions/`, branch label `sop`).

The engine's chain (`engine/migrations/versions`, revisions 0001…) holds only the engine's tables. The domain's
tables are this branch: `sop_0001` depends on the engine's 0001 (municipality, agency, process_instance, which its
tables reference), `sop_0003` on the engine's 0008 (the municipality columns it fills). The domain declares the
branch as `SopService.migrations`; `ProcessEngine.init_db` (`kurator init-db`) applies it beside the engine's
chain, both to their heads, so `alembic_version` ends with one row per head ("0015" and "sop_0011" today).

Databases created before the split. Until then these tables were created by the engine's own revisions (0002,
0003, 0008, 0009, 0011, 0012), which are now empty; such a database has the domain's tables and an engine revision
in `alembic_version`, but no revision of this branch. Two ways were possible:

- every revision of this branch creates its tables only when they do not exist yet. Each revision would carry
  that guard forever, and a half-present revision (a table there, its index or column not) would pass unnoticed;
- the branch is stamped once as applied up to where the existing schema is, and upgraded normally from there.

This module does the second (`adopt`, called by `Database.upgrade` when the database has revisions but none of
this branch's): the revisions stay plain Alembic scripts and the knowledge of the old layout lives in this one
place. The point to stamp is read from the schema, each revision of the branch being recognised by what it created
(the longest run of them, in order, that the schema shows), rather than from the engine revision: it is then right
also for a database whose engine chain was brought further without the domain attached. The one revision that
created nothing of its own, `sop_0003` (it fills the engine's municipality columns from `sop_instance_scope`), is
recognised by those columns; its fill only touches rows that have no municipality yet, so adoption runs it again
to cover a database whose columns were added by the engine alone after the split.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from engine.db import MigrationBranch
from engine.errors import KuratorError

VERSIONS = Path(__file__).parent / "versions"


def backfill_scope_municipality(connection: Connection) -> None:
    """Copy the municipality of each scoped instance onto the instance and its tasks where they have none yet."""
    connection.execute(text(
        "UPDATE process_instance SET municipality_id = (SELECT s.municipality_id FROM sop_instance_scope s "
        "WHERE s.instance_id = process_instance.id) "
        "WHERE municipality_id IS NULL AND id IN (SELECT instance_id FROM sop_instance_scope)"))
    connection.execute(text(
        "UPDATE human_task SET municipality_id = (SELECT s.municipality_id FROM sop_instance_scope s "
        "WHERE s.instance_id = human_task.instance_id) "
        "WHERE municipality_id IS NULL AND instance_id IN (SELECT instance_id FROM sop_instance_scope)"))


def backfill_instance_readers(connection: Connection) -> None:
    """Fill sop_instance_reader from scratch: every reader of every case (its working group's agencies, its
    curator, the agencies its tasks are or were addressed to, the users who hold or held or completed one) on every
    instance of the case, with whether the instance runs. The triggers of sop_0007 keep it so afterwards; this is
    for existing rows (the migration) and for rows written with the triggers off (a bulk load)."""
    tasks = ("FROM sop_instance_scope ts JOIN human_task t ON t.instance_id = ts.instance_id "
             "WHERE ts.case_id IS NOT NULL")
    connection.execute(text("DELETE FROM sop_instance_reader"))
    connection.execute(text(
        "INSERT INTO sop_instance_reader (reader, instance_id, case_id, running) "
        "SELECT r.reader, s.instance_id, s.case_id, p.status = 'running' FROM sop_instance_scope s "
        "JOIN process_instance p ON p.id = s.instance_id JOIN ("
        "SELECT a.case_id, 'agency:' || a.agency_id AS reader FROM sop_case_agency a "
        "UNION SELECT c.id, 'user:' || c.curator FROM sop_case c WHERE c.curator IS NOT NULL "
        f"UNION SELECT ts.case_id, 'agency:' || t.agency_id {tasks} AND t.agency_id IS NOT NULL "
        f"UNION SELECT ts.case_id, 'user:' || t.assignee {tasks} AND t.assignee IS NOT NULL "
        f"UNION SELECT ts.case_id, 'user:' || t.completed_by {tasks} AND t.completed_by IS NOT NULL"
        ") r ON r.case_id = s.case_id"))


def _table(name: str) -> Callable[[Connection], bool]:
    return lambda connection: inspect(connection).has_table(name)


def _column(table: str, column: str) -> Callable[[Connection], bool]:
    def present(connection: Connection) -> bool:
        inspector = inspect(connection)
        return inspector.has_table(table) and column in {c["name"] for c in inspector.get_columns(table)}
    return present


SCOPE_FILL = "sop_0003"  # the revision that creates nothing: it fills the engine's columns

# each revision of the branch, in order, and what shows in a schema that has it
_SIGNS: tuple[tuple[str, Callable[[Connection], bool]], ...] = (
    ("sop_0001", _table("sop_family")),
    ("sop_0002", _table("sop_instance_scope")),
    ("sop_0003", _column("process_instance", "municipality_id")),
    ("sop_0004", _table("sop_meeting")),
    ("sop_0005", _table("sop_podrostok_campaign")),
    ("sop_0006", _table("kpi_indicator")),
    ("sop_0007", _table("sop_instance_reader")),
)


def adopt(connection: Connection) -> str | None:
    """The revision of this branch that a schema created before the split already has (None: nothing of it).

    A schema showing a later revision's tables without an earlier one's is refused: stamping it anywhere would
    either skip a revision or create tables that exist. (`sop_0003` is recognised by the engine's columns, which
    the engine alone may have added: it does not count as a later revision's tables.)
    """
    present = [sign(connection) for _revision, sign in _SIGNS]
    run = next((n for n, here in enumerate(present) if not here), len(present))  # revisions 0..run-1 are there
    beyond = [revision for n, (revision, _sign) in enumerate(_SIGNS)
              if n > run and present[n] and revision != SCOPE_FILL]
    if beyond:
        reached = _SIGNS[run - 1][0] if run else "none"
        raise KuratorError(f"The database has the tables of SOP migrations {', '.join(beyond)} but not all those "
                           f"before them (it has them up to {reached}): its schema cannot be adopted as it is")
    if run == 0:
        return None
    if run > [revision for revision, _sign in _SIGNS].index(SCOPE_FILL):
        backfill_scope_municipality(connection)
    return _SIGNS[run - 1][0]


BRANCH = MigrationBranch(VERSIONS, adopt)
