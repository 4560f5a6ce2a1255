"""The commission's meetings: commission, members, meetings, agenda items; resolutions link to their meeting

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 18:10:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import engine.db

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table(
        'sop_commission',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('municipality_id', sa.Integer(), sa.ForeignKey('municipality.id'), nullable=False, unique=True),
        sa.Column('agency_id', sa.Integer(), sa.ForeignKey('agency.id'), nullable=True),
        sa.Column('full_name', sa.String(500), nullable=False),
        sa.Column('place', sa.String(500), nullable=True),
        sa.Column('schedule_weekday', sa.Integer(), nullable=True),
        sa.Column('schedule_weeks', JSON, nullable=True),
        sa.Column('schedule_time', sa.String(5), nullable=True),
    )
    op.create_table(
        'sop_commission_member',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('commission_id', sa.Integer(), sa.ForeignKey('sop_commission.id', ondelete='CASCADE'),
                  nullable=False, index=True),
        sa.Column('full_name', sa.String(200), nullable=False),
        sa.Column('position', sa.String(20), nullable=False),
        sa.Column('job_title', sa.String(300), nullable=True),
        sa.Column('agency_id', sa.Integer(), sa.ForeignKey('agency.id'), nullable=True),
        sa.Column('username', sa.String(100), nullable=True),
        sa.Column('active', sa.Boolean(), nullable=False),
    )
    op.create_table(
        'sop_meeting',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('commission_id', sa.Integer(), sa.ForeignKey('sop_commission.id', ondelete='CASCADE'),
                  nullable=False, index=True),
        sa.Column('municipality_id', sa.Integer(), sa.ForeignKey('municipality.id'), nullable=False, index=True),
        sa.Column('held_on', sa.Date(), nullable=False, index=True),
        sa.Column('starts_at', sa.String(5), nullable=True),
        sa.Column('place', sa.String(500), nullable=True),
        sa.Column('kind', sa.String(20), nullable=False),
        sa.Column('status', sa.String(20), nullable=False),
        sa.Column('year', sa.Integer(), nullable=False),
        sa.Column('number', sa.Integer(), nullable=True),
        sa.Column('present_member_ids', JSON, nullable=True),
        sa.Column('invited', JSON, nullable=True),
        sa.Column('minutes_document_id', sa.Integer(), sa.ForeignKey('sop_document.id'), nullable=True),
        sa.Column('agenda_notified_at', engine.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('created_by', sa.String(100), nullable=True),
        sa.Column('created_at', engine.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('closed_at', engine.db.UTCDateTime(timezone=True), nullable=True),
        sa.UniqueConstraint('commission_id', 'year', 'number'),
    )
    op.create_table(
        'sop_meeting_item',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('meeting_id', sa.Integer(), sa.ForeignKey('sop_meeting.id', ondelete='CASCADE'), nullable=False,
                  index=True),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(20), nullable=False),
        sa.Column('title', sa.String(500), nullable=False),
        sa.Column('task_id', sa.String(36), nullable=True, index=True),
        sa.Column('form_key', sa.String(100), nullable=True),
        sa.Column('case_id', sa.Integer(), sa.ForeignKey('sop_case.id', ondelete='CASCADE'), nullable=True,
                  index=True),
        sa.Column('speaker', sa.String(300), nullable=True),
        sa.Column('status', sa.String(20), nullable=False),
        sa.Column('postponed_reason', sa.Text(), nullable=True),
        sa.Column('decision_text', sa.Text(), nullable=True),
        sa.Column('data', JSON, nullable=True),
        sa.Column('votes_for', sa.Integer(), nullable=True),
        sa.Column('votes_against', sa.Integer(), nullable=True),
        sa.Column('votes_abstained', sa.Integer(), nullable=True),
        sa.Column('family_appeared', sa.Boolean(), nullable=True),
        sa.Column('resolution_number', sa.String(40), nullable=True),
        sa.Column('resolution_id', sa.Integer(), sa.ForeignKey('sop_resolution.id'), nullable=True),
        sa.Column('decided_by', sa.String(100), nullable=True),
        sa.Column('decided_at', engine.db.UTCDateTime(timezone=True), nullable=True),
    )
    op.create_table(
        'sop_notice',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('agency_id', sa.Integer(), sa.ForeignKey('agency.id'), nullable=False, index=True),
        sa.Column('case_id', sa.Integer(), sa.ForeignKey('sop_case.id', ondelete='CASCADE'), nullable=True),
        sa.Column('meeting_id', sa.Integer(), sa.ForeignKey('sop_meeting.id', ondelete='CASCADE'), nullable=False,
                  index=True),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('created_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table('sop_resolution', schema=None) as batch_op:
        batch_op.add_column(sa.Column('meeting_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_sop_resolution_meeting', 'sop_meeting', ['meeting_id'], ['id'])
        batch_op.create_index('ix_sop_resolution_meeting_id', ['meeting_id'])


def downgrade() -> None:
    with op.batch_alter_table('sop_resolution', schema=None) as batch_op:
        batch_op.drop_index('ix_sop_resolution_meeting_id')
        batch_op.drop_constraint('fk_sop_resolution_meeting', type_='foreignkey')
        batch_op.drop_column('meeting_id')
    op.drop_table('sop_notice')
    op.drop_table('sop_meeting_item')
    op.drop_table('sop_meeting')
    op.drop_table('sop_commission_member')
    op.drop_table('sop_commission')
