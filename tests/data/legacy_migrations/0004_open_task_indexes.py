"""Partial indexes for the inbox on open tasks (order by due date; stage and process lists)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 09:30:00

Measured with bench/web_bench.py on 100,000 open and 1,000,000 completed tasks (bench/RESULTS.md).
"""

from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

OPEN = sa.text("status = 'open'")


def upgrade() -> None:
    op.create_index('ix_human_task_open_order', 'human_task', [sa.text('(due IS NULL)'), 'due', 'created_at', 'id'],
                    postgresql_where=OPEN, sqlite_where=OPEN)
    op.create_index('ix_human_task_open_lists', 'human_task', ['process_key', 'element_id', 'name'],
                    postgresql_where=OPEN, sqlite_where=OPEN)


def downgrade() -> None:
    op.drop_index('ix_human_task_open_lists', table_name='human_task')
    op.drop_index('ix_human_task_open_order', table_name='human_task')
