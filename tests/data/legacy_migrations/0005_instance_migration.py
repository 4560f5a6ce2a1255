"""Migration of running instances between process versions: batches and per-instance records

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 11:15:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import engine.db

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table('migration_batch',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('process_key', sa.String(length=200), nullable=False),
    sa.Column('target_definition_id', sa.Integer(), nullable=False),
    sa.Column('target_version', sa.Integer(), nullable=False),
    sa.Column('instance_ids', JSON, nullable=False),
    sa.Column('filters', JSON, nullable=True),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('done', sa.Integer(), nullable=False),
    sa.Column('moved', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('created_by', sa.String(length=100), nullable=True),
    sa.Column('created_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', engine.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['target_definition_id'], ['process_definition.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('migration_batch', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_migration_batch_process_key'), ['process_key'], unique=False)

    op.create_table('instance_migration',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=True),
    sa.Column('instance_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('from_definition_id', sa.Integer(), nullable=False),
    sa.Column('to_definition_id', sa.Integer(), nullable=False),
    sa.Column('previous_state', sa.Text(), nullable=True),
    sa.Column('previous_revision', sa.Integer(), nullable=True),
    sa.Column('revision_after', sa.Integer(), nullable=True),
    sa.Column('previous_tasks', JSON, nullable=True),
    sa.Column('changes', JSON, nullable=True),
    sa.Column('migrated_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('migrated_by', sa.String(length=100), nullable=True),
    sa.Column('reverted_at', engine.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('reverted_by', sa.String(length=100), nullable=True),
    sa.ForeignKeyConstraint(['batch_id'], ['migration_batch.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['instance_id'], ['process_instance.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['from_definition_id'], ['process_definition.id'], ),
    sa.ForeignKeyConstraint(['to_definition_id'], ['process_definition.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('batch_id', 'instance_id')
    )
    with op.batch_alter_table('instance_migration', schema=None) as batch_op:
        batch_op.create_index('ix_instance_migration_instance', ['instance_id', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('instance_migration', schema=None) as batch_op:
        batch_op.drop_index('ix_instance_migration_instance')
    op.drop_table('instance_migration')
    with op.batch_alter_table('migration_batch', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_migration_batch_process_key'))
    op.drop_table('migration_batch')
