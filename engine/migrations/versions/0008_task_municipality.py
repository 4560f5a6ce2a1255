"""The data scope on the task row: process_instance.municipality_id and human_task.municipality_id

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08 10:00:00

The inbox filtered tasks by the instances of a scope table (`instance_id IN (…) OR instance_id NOT IN (every scope
row)`), which hashed the whole scope table in every query. The municipality is now copied onto the instance and its
tasks (a domain stamps it when it scopes an instance; new tasks copy it from their instance). Filling the columns
for the instances scoped before is the domain's own revision (it was done here until the split). Partial index:
the inbox order within one municipality's open tasks; an index on completed_by for "cases in which the user
completed a task" (it was a sequential scan of all tasks).
Measured with bench/web_bench.py (bench/RESULTS.md).
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

OPEN = sa.text("status = 'open'")


def upgrade() -> None:
    with op.batch_alter_table('process_instance', schema=None) as batch_op:
        batch_op.add_column(sa.Column('municipality_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_process_instance_municipality', 'municipality', ['municipality_id'], ['id'])
    with op.batch_alter_table('human_task', schema=None) as batch_op:
        batch_op.add_column(sa.Column('municipality_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_human_task_municipality', 'municipality', ['municipality_id'], ['id'])
    op.create_index('ix_human_task_open_municipality', 'human_task',
                    ['municipality_id', sa.text('(due IS NULL)'), 'due', 'created_at', 'id'],
                    postgresql_where=OPEN, sqlite_where=OPEN)
    op.create_index('ix_human_task_completed_by', 'human_task', ['completed_by'])


def downgrade() -> None:
    op.drop_index('ix_human_task_completed_by', table_name='human_task')
    op.drop_index('ix_human_task_open_municipality', table_name='human_task')
    with op.batch_alter_table('human_task', schema=None) as batch_op:
        batch_op.drop_constraint('fk_human_task_municipality', type_='foreignkey')
        batch_op.drop_column('municipality_id')
    with op.batch_alter_table('process_instance', schema=None) as batch_op:
        batch_op.drop_constraint('fk_process_instance_municipality', type_='foreignkey')
        batch_op.drop_column('municipality_id')
