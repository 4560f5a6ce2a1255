"""Human tasks addressed to an agency (organisation)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 15:30:00
"""

from alembic import op
import sqlalchemy as sa

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('human_task', schema=None) as batch_op:
        batch_op.add_column(sa.Column('agency_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_human_task_agency', 'agency', ['agency_id'], ['id'])
        batch_op.create_index('ix_human_task_agency', ['agency_id', 'status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('human_task', schema=None) as batch_op:
        batch_op.drop_index('ix_human_task_agency')
        batch_op.drop_constraint('fk_human_task_agency', type_='foreignkey')
        batch_op.drop_column('agency_id')
