"""Completed tasks by municipality and completion instant: human_task(municipality_id, status, completed_at)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 19:00:00

Statistics read the tasks of some municipalities completed in a period (deadlines met per step, the inspections of
the emergency path). Without this index both queries scanned every completed task row through
ix_human_task_open_due (status, due); with it they read only the period's rows of the municipalities.
Measured with bench/reports_bench.py (bench/RESULTS.md, «Reports»).
"""

from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_human_task_completed_municipality', 'human_task',
                    ['municipality_id', 'status', 'completed_at'])


def downgrade() -> None:
    op.drop_index('ix_human_task_completed_municipality', table_name='human_task')
