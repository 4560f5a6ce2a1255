"""Form versions pinned per process version; modeler drafts of diagrams and forms

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 11:20:00
"""

from alembic import op
import sqlalchemy as sa
import engine.db
from sqlalchemy.dialects import postgresql

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    with op.batch_alter_table('process_definition', schema=None) as batch_op:
        batch_op.add_column(sa.Column('form_versions', JSON, nullable=True))

    op.create_table('modeler_draft',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=True),
    sa.Column('name', sa.String(length=300), nullable=True),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('base_version', sa.Integer(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=100), nullable=True),
    sa.Column('created_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('saved_by', sa.String(length=100), nullable=True),
    sa.Column('saved_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_modeler_draft_kind_key', 'modeler_draft', ['kind', 'key'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_modeler_draft_kind_key', table_name='modeler_draft')
    op.drop_table('modeler_draft')
    with op.batch_alter_table('process_definition', schema=None) as batch_op:
        batch_op.drop_column('form_versions')
