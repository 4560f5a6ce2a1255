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
trigger itself on SQLite. The existing rows are filled at the end (`backfill_instance_readers`). The statements
are built by `sop.migrations.reader_triggers`.
"""

import sqlalchemy as sa
from alembic import op

from sop.migrations import backfill_instance_readers
from sop.migrations.reader_triggers import TABLE, postgresql_function, triggers

revision = 'sop_0007'
down_revision = 'sop_0006'
branch_labels = None
depends_on = None


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
    for name, table, event, condition, statements, cases in triggers(dialect):
        when = f" WHEN ({condition})" if condition else ""
        if dialect == "postgresql":  # without the case lock, which sop_0010 adds
            op.execute(postgresql_function(name, statements, cases, locked=False))
            op.execute(f"CREATE TRIGGER {name} AFTER {event} ON {table} FOR EACH ROW{when} EXECUTE FUNCTION {name}()")
        else:
            body = "".join(f"  {statement};\n" for statement in statements)
            op.execute(f"CREATE TRIGGER {name} AFTER {event} ON {table} FOR EACH ROW{when}\nBEGIN\n{body}END")
    backfill_instance_readers(op.get_bind())


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name, table, *_rest in triggers(dialect):
        if dialect == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_index('ix_sop_instance_reader_running', table_name=TABLE)
    op.drop_index('ix_sop_instance_reader_instance', table_name=TABLE)
    op.drop_index('ix_sop_instance_reader_case', table_name=TABLE)
    op.drop_table(TABLE)
