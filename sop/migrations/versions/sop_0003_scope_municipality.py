"""The municipality of each scoped instance copied onto the engine's rows (process_instance, human_task)

Revision ID: sop_0003
Revises: sop_0002
Depends on: 0008 (process_instance.municipality_id, human_task.municipality_id)
Create Date: 2026-12-08 10:00:00

The engine's revision 0008 added the columns; the domain fills them from sop_instance_scope for the instances it
scoped before (since then it stamps them itself when it scopes an instance). Until the split this backfill was part
of the engine's revision 0008. It only fills rows that have no municipality yet, so it may run again harmlessly.
"""

from alembic import op

from sop.migrations import backfill_scope_municipality

revision = 'sop_0003'
down_revision = 'sop_0002'
branch_labels = None
depends_on = '0008'


def upgrade() -> None:
    backfill_scope_municipality(op.get_bind())


def downgrade() -> None:
    pass  # the columns are the engine's: its revision 0008 drops them on its own downgrade
