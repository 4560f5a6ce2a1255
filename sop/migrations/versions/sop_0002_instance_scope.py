"""The data scope of a process instance: its case and municipality (sop_instance_scope)

Revision ID: sop_0002
Revises: sop_0001
Create Date: 2026-11-26 08:11:39.187880

Until the split this table was created by the engine's revision 0003, beside the audit log.
"""

from alembic import op
import sqlalchemy as sa

revision = 'sop_0002'
down_revision = 'sop_0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sop_instance_scope',
    sa.Column('instance_id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=True),
    sa.Column('municipality_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['sop_case.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['instance_id'], ['process_instance.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['municipality_id'], ['municipality.id'], ),
    sa.PrimaryKeyConstraint('instance_id')
    )
    with op.batch_alter_table('sop_instance_scope', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sop_instance_scope_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sop_instance_scope_municipality_id'), ['municipality_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('sop_instance_scope', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sop_instance_scope_municipality_id'))
        batch_op.drop_index(batch_op.f('ix_sop_instance_scope_case_id'))

    op.drop_table('sop_instance_scope')
