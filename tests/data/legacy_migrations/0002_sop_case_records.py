"""sop case records

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 07:49:22.586707
"""

from alembic import op
import sqlalchemy as sa
import engine.db
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sop_family',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('municipality_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('address_registered', sa.String(length=500), nullable=True),
    sa.Column('address_actual', sa.String(length=500), nullable=True),
    sa.Column('address_key', sa.String(length=500), nullable=False),
    sa.Column('created_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['municipality_id'], ['municipality.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('sop_family', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sop_family_address_key'), ['address_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_sop_family_municipality_id'), ['municipality_id'], unique=False)

    op.create_table('sop_person',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('family_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('last_name', sa.String(length=100), nullable=False),
    sa.Column('first_name', sa.String(length=100), nullable=False),
    sa.Column('patronymic', sa.String(length=100), nullable=True),
    sa.Column('birth_date', sa.Date(), nullable=True),
    sa.Column('occupation', sa.String(length=300), nullable=True),
    sa.Column('name_key', sa.String(length=200), nullable=False),
    sa.Column('age18_proposed_on', sa.Date(), nullable=True),
    sa.ForeignKeyConstraint(['family_id'], ['sop_family.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('sop_person', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sop_person_family_id'), ['family_id'], unique=False)
        batch_op.create_index('ix_sop_person_lookup', ['name_key', 'birth_date'], unique=False)

    op.create_table('sop_case',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=40), nullable=False),
    sa.Column('municipality_id', sa.Integer(), nullable=False),
    sa.Column('family_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('danger_level', sa.String(length=10), nullable=True),
    sa.Column('sop_confirmed', sa.Boolean(), nullable=True),
    sa.Column('criteria', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('curator', sa.String(length=100), nullable=True),
    sa.Column('received_on', sa.Date(), nullable=False),
    sa.Column('recognized_on', sa.Date(), nullable=True),
    sa.Column('closed_on', sa.Date(), nullable=True),
    sa.Column('closure_grounds', sa.String(length=30), nullable=True),
    sa.Column('closure_reason', sa.Text(), nullable=True),
    sa.Column('programme_result', sa.String(length=20), nullable=True),
    sa.Column('ipr_term_months', sa.Integer(), nullable=True),
    sa.Column('consent_obtained', sa.Boolean(), nullable=True),
    sa.Column('conclusion', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('card', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('programme', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('process_instance_id', sa.Integer(), nullable=True),
    sa.Column('created_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['family_id'], ['sop_family.id'], ),
    sa.ForeignKeyConstraint(['municipality_id'], ['municipality.id'], ),
    sa.ForeignKeyConstraint(['process_instance_id'], ['process_instance.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('municipality_id', 'number')
    )
    with op.batch_alter_table('sop_case', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sop_case_family_id'), ['family_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sop_case_municipality_id'), ['municipality_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sop_case_process_instance_id'), ['process_instance_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sop_case_status'), ['status'], unique=False)

    op.create_table('sop_reconciliation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('municipality_id', sa.Integer(), nullable=False),
    sa.Column('quarter', sa.String(length=10), nullable=False),
    sa.Column('process_instance_id', sa.Integer(), nullable=True),
    sa.Column('started_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('results', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.ForeignKeyConstraint(['municipality_id'], ['municipality.id'], ),
    sa.ForeignKeyConstraint(['process_instance_id'], ['process_instance.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('municipality_id', 'quarter')
    )
    op.create_table('sop_activity',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=500), nullable=False),
    sa.Column('content', sa.Text(), nullable=True),
    sa.Column('agency_kind', sa.String(length=50), nullable=True),
    sa.Column('responsible', sa.String(length=200), nullable=True),
    sa.Column('term', sa.Date(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('done_on', sa.Date(), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['sop_case.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('sop_activity', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sop_activity_case_id'), ['case_id'], unique=False)

    op.create_table('sop_case_agency',
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('agency_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('responsible', sa.String(length=100), nullable=True),
    sa.ForeignKeyConstraint(['agency_id'], ['agency.id'], ),
    sa.ForeignKeyConstraint(['case_id'], ['sop_case.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('case_id', 'agency_id')
    )
    with op.batch_alter_table('sop_case_agency', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sop_case_agency_agency_id'), ['agency_id'], unique=False)

    op.create_table('sop_document',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=True),
    sa.Column('agency_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('source_ref', sa.String(length=100), nullable=True),
    sa.Column('created_by', sa.String(length=100), nullable=True),
    sa.Column('created_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agency_id'], ['agency.id'], ),
    sa.ForeignKeyConstraint(['case_id'], ['sop_case.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('sop_document', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sop_document_case_id'), ['case_id'], unique=False)

    op.create_table('sop_escalation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.String(length=36), nullable=False),
    sa.Column('instance_id', sa.Integer(), nullable=True),
    sa.Column('case_id', sa.Integer(), nullable=True),
    sa.Column('municipality_id', sa.Integer(), nullable=True),
    sa.Column('task_name', sa.String(length=300), nullable=False),
    sa.Column('due', engine.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('acknowledged_by', sa.String(length=100), nullable=True),
    sa.Column('acknowledged_at', engine.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['sop_case.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['municipality_id'], ['municipality.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('task_id')
    )
    with op.batch_alter_table('sop_escalation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sop_escalation_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sop_escalation_instance_id'), ['instance_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sop_escalation_municipality_id'), ['municipality_id'], unique=False)

    op.create_table('sop_execution_report',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('agency_id', sa.Integer(), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('reported_on', sa.Date(), nullable=False),
    sa.Column('author', sa.String(length=100), nullable=True),
    sa.ForeignKeyConstraint(['agency_id'], ['agency.id'], ),
    sa.ForeignKeyConstraint(['case_id'], ['sop_case.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('sop_execution_report', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sop_execution_report_case_id'), ['case_id'], unique=False)

    op.create_table('sop_intake_entry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('agency_id', sa.Integer(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('received_on', sa.Date(), nullable=False),
    sa.Column('source', sa.String(length=500), nullable=False),
    sa.Column('parents_text', sa.Text(), nullable=True),
    sa.Column('children_text', sa.Text(), nullable=True),
    sa.Column('address', sa.String(length=500), nullable=True),
    sa.Column('problem', sa.Text(), nullable=False),
    sa.Column('result', sa.Text(), nullable=True),
    sa.Column('threat_to_life', sa.Boolean(), nullable=False),
    sa.Column('family_id', sa.Integer(), nullable=True),
    sa.Column('case_id', sa.Integer(), nullable=True),
    sa.Column('forwarded_from_id', sa.Integer(), nullable=True),
    sa.Column('registered_by', sa.String(length=100), nullable=True),
    sa.Column('registered_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agency_id'], ['agency.id'], ),
    sa.ForeignKeyConstraint(['case_id'], ['sop_case.id'], ),
    sa.ForeignKeyConstraint(['family_id'], ['sop_family.id'], ),
    sa.ForeignKeyConstraint(['forwarded_from_id'], ['sop_intake_entry.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('agency_id', 'year', 'number')
    )
    with op.batch_alter_table('sop_intake_entry', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sop_intake_entry_agency_id'), ['agency_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sop_intake_entry_case_id'), ['case_id'], unique=False)

    op.create_table('sop_proposal',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('agency_id', sa.Integer(), nullable=True),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('author', sa.String(length=100), nullable=True),
    sa.Column('created_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agency_id'], ['agency.id'], ),
    sa.ForeignKeyConstraint(['case_id'], ['sop_case.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('sop_proposal', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sop_proposal_case_id'), ['case_id'], unique=False)

    op.create_table('sop_resolution',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('number', sa.String(length=40), nullable=True),
    sa.Column('adopted_on', sa.Date(), nullable=False),
    sa.Column('decision', sa.String(length=20), nullable=False),
    sa.Column('votes_for', sa.Integer(), nullable=True),
    sa.Column('votes_against', sa.Integer(), nullable=True),
    sa.Column('present', sa.Integer(), nullable=True),
    sa.Column('grounds', sa.String(length=30), nullable=True),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('created_by', sa.String(length=100), nullable=True),
    sa.Column('created_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['sop_case.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('sop_resolution', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sop_resolution_case_id'), ['case_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('sop_resolution', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sop_resolution_case_id'))

    op.drop_table('sop_resolution')
    with op.batch_alter_table('sop_proposal', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sop_proposal_case_id'))

    op.drop_table('sop_proposal')
    with op.batch_alter_table('sop_intake_entry', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sop_intake_entry_case_id'))
        batch_op.drop_index(batch_op.f('ix_sop_intake_entry_agency_id'))

    op.drop_table('sop_intake_entry')
    with op.batch_alter_table('sop_execution_report', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sop_execution_report_case_id'))

    op.drop_table('sop_execution_report')
    with op.batch_alter_table('sop_escalation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sop_escalation_municipality_id'))
        batch_op.drop_index(batch_op.f('ix_sop_escalation_instance_id'))
        batch_op.drop_index(batch_op.f('ix_sop_escalation_case_id'))

    op.drop_table('sop_escalation')
    with op.batch_alter_table('sop_document', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sop_document_case_id'))

    op.drop_table('sop_document')
    with op.batch_alter_table('sop_case_agency', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sop_case_agency_agency_id'))

    op.drop_table('sop_case_agency')
    with op.batch_alter_table('sop_activity', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sop_activity_case_id'))

    op.drop_table('sop_activity')
    op.drop_table('sop_reconciliation')
    with op.batch_alter_table('sop_case', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sop_case_status'))
        batch_op.drop_index(batch_op.f('ix_sop_case_process_instance_id'))
        batch_op.drop_index(batch_op.f('ix_sop_case_municipality_id'))
        batch_op.drop_index(batch_op.f('ix_sop_case_family_id'))

    op.drop_table('sop_case')
    with op.batch_alter_table('sop_person', schema=None) as batch_op:
        batch_op.drop_index('ix_sop_person_lookup')
        batch_op.drop_index(batch_op.f('ix_sop_person_family_id'))

    op.drop_table('sop_person')
    with op.batch_alter_table('sop_family', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sop_family_municipality_id'))

    op.drop_table('sop_family')
