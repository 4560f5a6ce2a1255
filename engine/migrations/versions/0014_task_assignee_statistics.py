"""PostgreSQL statistics on human_task (assignee, status)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 09:00:00

The open tasks nobody has taken (`assignee IS NULL AND status = 'open'`, every offered-task query: the API's
`scope=candidate`, the inbox) are most of the open tasks, but the planner multiplied the two columns' separate
frequencies and expected about a tenth of them. It then read every unassigned open task of every municipality
through ix_human_task_assignee and sorted them, instead of walking the open tasks in due order
(ix_human_task_open_order) until a page was full. Extended statistics on the pair (most common combinations) give
it the real share. SQLite has no such statistics and needs none here. Measured with bench/web_bench.py
(bench/RESULTS.md, «Inbox at scale», 2026-12-05).
"""

from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE STATISTICS IF NOT EXISTS st_human_task_assignee_status (mcv) ON assignee, status "
                   "FROM human_task")
        op.execute("ANALYZE human_task")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP STATISTICS IF EXISTS st_human_task_assignee_status")
