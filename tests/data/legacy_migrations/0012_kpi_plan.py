"""KPI plan vs actual: indicators, planned values per municipality and half-year, values entered in the half-year
campaign, the campaigns started

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 19:00:00
"""

import sqlalchemy as sa
from alembic import op

import engine.db

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'kpi_indicator',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('code', sa.String(20), nullable=False, unique=True),
        sa.Column('name', sa.Text(), nullable=False),
        sa.Column('section', sa.String(300), nullable=True),
        sa.Column('unit', sa.String(30), nullable=False),
        sa.Column('aggregation', sa.String(20), nullable=False),
        sa.Column('source', sa.String(50), nullable=True),
        sa.Column('counted_from', sa.Date(), nullable=False),
        sa.Column('lower_is_better', sa.Boolean(), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
    )
    op.create_table(
        'kpi_plan',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('indicator_id', sa.Integer(), sa.ForeignKey('kpi_indicator.id', ondelete='CASCADE'),
                  nullable=False),
        sa.Column('municipality_id', sa.Integer(), sa.ForeignKey('municipality.id'), nullable=False),
        sa.Column('half', sa.String(7), nullable=False),
        sa.Column('value', sa.Float(), nullable=False),
        sa.Column('updated_by', sa.String(100), nullable=True),
        sa.Column('updated_at', engine.db.UTCDateTime(), nullable=True),
        sa.UniqueConstraint('indicator_id', 'municipality_id', 'half'),
    )
    op.create_index('ix_kpi_plan_municipality_id', 'kpi_plan', ['municipality_id'])
    op.create_table(
        'kpi_actual',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('indicator_id', sa.Integer(), sa.ForeignKey('kpi_indicator.id', ondelete='CASCADE'),
                  nullable=False),
        sa.Column('municipality_id', sa.Integer(), sa.ForeignKey('municipality.id'), nullable=False),
        sa.Column('half', sa.String(7), nullable=False),
        sa.Column('agency_id', sa.Integer(), sa.ForeignKey('agency.id'), nullable=True),
        sa.Column('value', sa.Float(), nullable=False),
        sa.Column('task_id', sa.String(36), nullable=True),
        sa.Column('entered_by', sa.String(100), nullable=True),
        sa.Column('entered_at', engine.db.UTCDateTime(), nullable=False),
    )
    op.create_index('ix_kpi_actual_lookup', 'kpi_actual', ['municipality_id', 'half', 'indicator_id'])
    op.create_table(
        'kpi_campaign',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('municipality_id', sa.Integer(), sa.ForeignKey('municipality.id'), nullable=False),
        sa.Column('half', sa.String(7), nullable=False),
        sa.Column('process_instance_id', sa.Integer(), sa.ForeignKey('process_instance.id'), nullable=True),
        sa.Column('started_at', engine.db.UTCDateTime(), nullable=False),
        sa.Column('started_by', sa.String(100), nullable=True),
        sa.UniqueConstraint('municipality_id', 'half'),
    )


def downgrade() -> None:
    op.drop_table('kpi_campaign')
    op.drop_index('ix_kpi_actual_lookup', table_name='kpi_actual')
    op.drop_table('kpi_actual')
    op.drop_index('ix_kpi_plan_municipality_id', table_name='kpi_plan')
    op.drop_table('kpi_plan')
    op.drop_table('kpi_indicator')
