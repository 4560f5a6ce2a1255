"""audit log and instance scope

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 08:11:39.187880
"""

from alembic import op
import sqlalchemy as sa
import engine.db
from sqlalchemy.dialects import postgresql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=True),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('object_type', sa.String(length=40), nullable=True),
    sa.Column('object_id', sa.String(length=60), nullable=True),
    sa.Column('ip', sa.String(length=60), nullable=True),
    sa.Column('details', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.create_index('ix_audit_actor_at', ['actor', 'at'], unique=False)
        batch_op.create_index('ix_audit_object', ['object_type', 'object_id'], unique=False)

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
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_object')
        batch_op.drop_index('ix_audit_actor_at')

    op.drop_table('audit_event')
