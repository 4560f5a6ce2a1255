"""Operation «Подросток»: the campaign of a municipality and year, and the agencies' App. 2 entries

Revision ID: sop_0005
Revises: sop_0004
Create Date: 2026-12-04 19:00:00

Until the split it was the engine's revision 0011, unchanged.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import engine.db

revision = 'sop_0005'
down_revision = 'sop_0004'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table(
        'sop_podrostok_campaign',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('municipality_id', sa.Integer(), sa.ForeignKey('municipality.id'), nullable=False),
        sa.Column('year', sa.Integer(), nullable=False),
        sa.Column('process_instance_id', sa.Integer(), sa.ForeignKey('process_instance.id'), nullable=True),
        sa.Column('started_at', engine.db.UTCDateTime(), nullable=False),
        sa.Column('reports', JSON, nullable=True),
        sa.UniqueConstraint('municipality_id', 'year'),
    )
    op.create_table(
        'sop_podrostok_entry',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('campaign_id', sa.Integer(), sa.ForeignKey('sop_podrostok_campaign.id', ondelete='CASCADE'),
                  nullable=False, index=True),
        sa.Column('agency_id', sa.Integer(), sa.ForeignKey('agency.id'), nullable=True),
        sa.Column('month', sa.String(7), nullable=False),
        sa.Column('person_id', sa.Integer(), sa.ForeignKey('sop_person.id', ondelete='CASCADE'), nullable=False,
                  index=True),
        sa.Column('kind', sa.String(10), nullable=False),
        sa.Column('form', sa.String(5), nullable=True),
        sa.Column('reason', sa.String(20), nullable=True),
        sa.Column('provider', sa.String(300), nullable=True),
        sa.Column('date_from', sa.Date(), nullable=False),
        sa.Column('date_to', sa.Date(), nullable=True),
        sa.Column('author', sa.String(100), nullable=True),
        sa.Column('created_at', engine.db.UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table('sop_podrostok_entry')
    op.drop_table('sop_podrostok_campaign')
