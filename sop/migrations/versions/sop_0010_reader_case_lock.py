"""The reader triggers take the case's lock first (PostgreSQL)

Revision ID: sop_0010
Revises: sop_0009
Create Date: 2026-12-06 05:00:00

Two transactions changing the readers of one case at once could leave `sop_instance_reader` without a reader that
an open task names (`sop.migrations.reader_triggers` tells how): the agency's staff would then not see the task.
Each trigger function now first takes the case's transaction-level advisory lock (`sop.case_lock`), so such changes
of one case follow one another. The functions are replaced; the triggers, their conditions and the rows stay.
SQLite, which has one writer at a time, keeps its triggers as they are.
"""

from alembic import op

from sop.migrations.reader_triggers import postgresql_function, triggers

revision = 'sop_0010'
down_revision = 'sop_0009'
branch_labels = None
depends_on = None


def _replace_functions(locked: bool) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, _table, _event, _condition, statements, cases in triggers("postgresql"):
        op.execute(postgresql_function(name, statements, cases, locked=locked))


def upgrade() -> None:
    _replace_functions(locked=True)


def downgrade() -> None:
    _replace_functions(locked=False)
