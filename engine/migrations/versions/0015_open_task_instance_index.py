"""The open tasks of given instances, and the instances outside any municipality, each read through an index

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 12:00:00

- ix_human_task_open_instance: human_task (instance_id) of the open tasks only. A user who sees some cases of a
  municipality (a school's specialist) has an inbox of the open tasks of those cases' instances: a few thousand
  instances at most, each looked up here, instead of walking every open task of the region in due order and
  testing each against the user's scope. The engine's own reads of an instance's open rows use it as well. Its
  condition is a literal (`status = 'open'`), which the inbox's statements spell out the same way, so PostgreSQL
  may use it in a generic plan of a prepared statement too.
- ix_process_instance_no_municipality: process_instance (id) of the instances that belong to no municipality (a
  methodologist's test runs). Their tasks carry no case data and are in every user's scope; the scope reads them
  here instead of scanning every instance.

Measured with bench/web_bench.py (bench/RESULTS.md, «The inbox at full size»).
"""

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

OPEN = sa.text("status = 'open'")
NO_MUNICIPALITY = sa.text("municipality_id IS NULL")


def upgrade() -> None:
    op.create_index('ix_human_task_open_instance', 'human_task', ['instance_id'],
                    postgresql_where=OPEN, sqlite_where=OPEN)
    op.create_index('ix_process_instance_no_municipality', 'process_instance', ['id'],
                    postgresql_where=NO_MUNICIPALITY, sqlite_where=NO_MUNICIPALITY)


def downgrade() -> None:
    op.drop_index('ix_process_instance_no_municipality', table_name='process_instance')
    op.drop_index('ix_human_task_open_instance', table_name='human_task')
