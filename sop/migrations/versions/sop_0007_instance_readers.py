"""Who may read each case's instances (sop_instance_reader), kept by database triggers

Revision ID: sop_0007
Revises: sop_0006
Create Date: 2026-12-05 12:00:00

An agency's staff see the cases their agency takes part in, those in which it holds or held a task, those they
curate and those in which they hold or held or completed a task (`webapp.access`). Until now every inbox statement
of such a user rebuilt that set from the working groups, the curators and the whole task history of the agency
and the user, then the instances of those cases: tens of thousands of rows read per statement at 1,000,000 tasks.
This table holds the answer, one row per reader ("agency:<id>" or "user:<name>") and instance of a case, so the
scope is one index read.

Triggers keep it in step with the rows it is derived from, whichever code writes them (the engine's task writes,
bulk ones included, the domain's working groups and curators): human_task (its instance, agency, assignee and
completed_by), sop_instance_scope, sop_case_agency, sop_case (curator) and process_instance (status: whether the
instance runs, since only a running instance has open tasks and the inbox reads only those). A reader gained is added for every
instance of the case; a reader that may have been lost (a task given back or sent to another agency, an agency
leaving the working group, another curator) is removed only when nothing else of the case still names it. The
same triggers, in each database's dialect: a PL/pgSQL function per trigger on PostgreSQL, the statements in the
trigger itself on SQLite. The existing rows are filled at the end (`backfill_instance_readers`).
"""

import sqlalchemy as sa
from alembic import op

from sop.migrations import backfill_instance_readers

revision = 'sop_0007'
down_revision = 'sop_0006'
branch_labels = None
depends_on = None

TABLE = "sop_instance_reader"


def _case_of(instance: str) -> str:
    return f"(SELECT case_id FROM sop_instance_scope WHERE instance_id = {instance})"


def _case_readers(case: str) -> str:
    """The readers of a case, from the rows they are derived from."""
    tasks = f"FROM sop_instance_scope rs JOIN human_task rt ON rt.instance_id = rs.instance_id WHERE rs.case_id = {case}"
    return (f"SELECT 'agency:' || ra.agency_id AS reader FROM sop_case_agency ra WHERE ra.case_id = {case} "
            f"UNION SELECT 'user:' || rc.curator FROM sop_case rc WHERE rc.id = {case} AND rc.curator IS NOT NULL "
            f"UNION SELECT 'agency:' || rt.agency_id {tasks} AND rt.agency_id IS NOT NULL "
            f"UNION SELECT 'user:' || rt.assignee {tasks} AND rt.assignee IS NOT NULL "
            f"UNION SELECT 'user:' || rt.completed_by {tasks} AND rt.completed_by IS NOT NULL")


def _task_readers(row: str) -> str:
    """The readers a task row names (NULL for a column that is empty)."""
    return (f"SELECT 'agency:' || {row}.agency_id AS reader UNION SELECT 'user:' || {row}.assignee "
            f"UNION SELECT 'user:' || {row}.completed_by")


def _add(readers: str, case: str, dialect: str) -> str:
    """Rows for these readers on every instance of the case (those present stay)."""
    insert = "INSERT OR IGNORE INTO" if dialect == "sqlite" else "INSERT INTO"
    conflict = "" if dialect == "sqlite" else " ON CONFLICT DO NOTHING"
    return (f"{insert} {TABLE} (reader, instance_id, case_id, running) "
            f"SELECT nr.reader, ns.instance_id, ns.case_id, ni.status = 'running' "
            f"FROM sop_instance_scope ns JOIN process_instance ni ON ni.id = ns.instance_id "
            f"JOIN ({readers}) nr ON nr.reader IS NOT NULL WHERE ns.case_id = {case}{conflict}")


def _prune(case: str, readers: str | None = None) -> str:
    """Remove the case's rows of these readers (of any reader, without `readers`) that the case no longer names."""
    which = f" AND reader IN ({readers})" if readers else ""
    return f"DELETE FROM {TABLE} WHERE case_id = {case}{which} AND reader NOT IN ({_case_readers(case)})"


def _triggers(dialect: str) -> list[tuple[str, str, str, str | None, list[str]]]:
    """(name, table, event, condition, statements) of every trigger."""
    differs = (lambda a, b: f"{a} IS NOT {b}") if dialect == "sqlite" else (lambda a, b: f"{a} IS DISTINCT FROM {b}")
    task_columns = ("instance_id", "agency_id", "assignee", "completed_by")
    named = " OR ".join(f"NEW.{c} IS NOT NULL" for c in task_columns[1:])
    changed = " OR ".join(differs(f"OLD.{c}", f"NEW.{c}") for c in task_columns)
    lost = " OR ".join([differs("OLD.instance_id", "NEW.instance_id")]
                       + [f"(OLD.{c} IS NOT NULL AND {differs(f'OLD.{c}', f'NEW.{c}')})" for c in task_columns[1:]])
    old_named = " OR ".join(f"OLD.{c} IS NOT NULL" for c in task_columns[1:])
    new_case, old_case = _case_of("NEW.instance_id"), _case_of("OLD.instance_id")
    return [
        ("sop_reader_task_insert", "human_task", "INSERT", named,
         [_add(_task_readers("NEW"), new_case, dialect)]),
        ("sop_reader_task_gain", "human_task", "UPDATE OF " + ", ".join(task_columns), f"({changed}) AND ({named})",
         [_add(_task_readers("NEW"), new_case, dialect)]),
        ("sop_reader_task_loss", "human_task", "UPDATE OF " + ", ".join(task_columns), lost,
         [_prune(old_case, _task_readers("OLD"))]),
        ("sop_reader_task_delete", "human_task", "DELETE", old_named,
         [_prune(old_case, _task_readers("OLD"))]),
        ("sop_reader_scope_insert", "sop_instance_scope", "INSERT", "NEW.case_id IS NOT NULL",
         [_add(_case_readers("NEW.case_id"), "NEW.case_id", dialect)]),
        ("sop_reader_scope_update", "sop_instance_scope", "UPDATE OF instance_id, case_id",
         f"{differs('OLD.instance_id', 'NEW.instance_id')} OR {differs('OLD.case_id', 'NEW.case_id')}",
         [f"DELETE FROM {TABLE} WHERE instance_id = OLD.instance_id", _prune("OLD.case_id"),
          _add(_case_readers("NEW.case_id"), "NEW.case_id", dialect)]),
        ("sop_reader_scope_delete", "sop_instance_scope", "DELETE", "OLD.case_id IS NOT NULL",
         [f"DELETE FROM {TABLE} WHERE instance_id = OLD.instance_id", _prune("OLD.case_id")]),
        ("sop_reader_agency_insert", "sop_case_agency", "INSERT", None,
         [_add("SELECT 'agency:' || NEW.agency_id AS reader", "NEW.case_id", dialect)]),
        ("sop_reader_agency_update", "sop_case_agency", "UPDATE OF case_id, agency_id",
         f"{differs('OLD.case_id', 'NEW.case_id')} OR {differs('OLD.agency_id', 'NEW.agency_id')}",
         [_prune("OLD.case_id", "SELECT 'agency:' || OLD.agency_id AS reader"),
          _add("SELECT 'agency:' || NEW.agency_id AS reader", "NEW.case_id", dialect)]),
        ("sop_reader_agency_delete", "sop_case_agency", "DELETE", None,
         [_prune("OLD.case_id", "SELECT 'agency:' || OLD.agency_id AS reader")]),
        ("sop_reader_curator", "sop_case", "UPDATE OF curator", differs("OLD.curator", "NEW.curator"),
         [_prune("OLD.id", "SELECT 'user:' || OLD.curator AS reader"),
          _add("SELECT 'user:' || NEW.curator AS reader", "NEW.id", dialect)]),
        # every save of an instance sets its status; only a change of it reaches the readers' rows
        ("sop_reader_instance_status", "process_instance", "UPDATE OF status", differs("OLD.status", "NEW.status"),
         [f"UPDATE {TABLE} SET running = (NEW.status = 'running') WHERE instance_id = NEW.id"]),
    ]


TRIGGERS = [name for name, *_rest in _triggers("sqlite")]


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column('reader', sa.String(120), nullable=False),
        sa.Column('instance_id', sa.Integer(), sa.ForeignKey('process_instance.id', ondelete='CASCADE'),
                  nullable=False),
        sa.Column('case_id', sa.Integer(), sa.ForeignKey('sop_case.id', ondelete='CASCADE'), nullable=False),
        sa.Column('running', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('reader', 'instance_id'),
    )
    op.create_index('ix_sop_instance_reader_case', TABLE, ['case_id', 'reader'])
    op.create_index('ix_sop_instance_reader_instance', TABLE, ['instance_id'])
    op.create_index('ix_sop_instance_reader_running', TABLE, ['reader', 'instance_id'],
                    postgresql_where=sa.text("running"), sqlite_where=sa.text("running = 1"))
    dialect = op.get_bind().dialect.name
    for name, table, event, condition, statements in _triggers(dialect):
        when = f" WHEN ({condition})" if condition else ""
        if dialect == "postgresql":
            body = "".join(f"  {statement};\n" for statement in statements)
            op.execute(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n{body}"
                       f"  RETURN NULL;\nEND\n$$")
            op.execute(f"CREATE TRIGGER {name} AFTER {event} ON {table} FOR EACH ROW{when} EXECUTE FUNCTION {name}()")
        else:
            body = "".join(f"  {statement};\n" for statement in statements)
            op.execute(f"CREATE TRIGGER {name} AFTER {event} ON {table} FOR EACH ROW{when}\nBEGIN\n{body}END")
    backfill_instance_readers(op.get_bind())


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name, table, *_rest in _triggers(dialect):
        if dialect == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_index('ix_sop_instance_reader_running', table_name=TABLE)
    op.drop_index('ix_sop_instance_reader_instance', table_name=TABLE)
    op.drop_index('ix_sop_instance_reader_case', table_name=TABLE)
    op.drop_table(TABLE)
