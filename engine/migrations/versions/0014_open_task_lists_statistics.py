"""The inbox's filter lists by municipality, and PostgreSQL statistics on human_task (assignee, status)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 09:00:00

- ix_human_task_open_lists (process_key, element_id, name) of the open tasks gets the municipality in front. The
  stage and process lists of «Мои задачи» read one municipality's open tasks (migration 0008), which the old
  index could not select, so they went through the heap of every open task of the municipality; with it they are
  read from the index alone. The emergency flag finds the open steps of the emergency in a municipality through
  it as well.
- The open tasks nobody has taken (`assignee IS NULL AND status = 'open'`: every offered-task query, the API's
  `scope=candidate`, the inbox) are most of the open tasks, but PostgreSQL multiplied the two columns' separate
  frequencies and expected about a tenth of them. It then read every unassigned open task of every
  municipality through ix_human_task_assignee and sorted them, instead of walking the open tasks in due order
  (ix_human_task_open_order) until a page was full. Extended statistics on the pair (its most common value
  combinations) give it the real share. SQLite has no such statistics and needs none here.

Measured with bench/web_bench.py (bench/RESULTS.md, «Inbox at scale», 2026-12-05).
"""

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

OPEN = sa.text("status = 'open'")


def upgrade() -> None:
    op.drop_index('ix_human_task_open_lists', table_name='human_task')
    op.create_index('ix_human_task_open_lists', 'human_task', ['municipality_id', 'process_key', 'element_id', 'name'],
                    postgresql_where=OPEN, sqlite_where=OPEN)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE STATISTICS IF NOT EXISTS st_human_task_assignee_status (mcv) ON assignee, status "
                   "FROM human_task")
        op.execute("ANALYZE human_task")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP STATISTICS IF EXISTS st_human_task_assignee_status")
    op.drop_index('ix_human_task_open_lists', table_name='human_task')
    op.create_index('ix_human_task_open_lists', 'human_task', ['process_key', 'element_id', 'name'],
                    postgresql_where=OPEN, sqlite_where=OPEN)
