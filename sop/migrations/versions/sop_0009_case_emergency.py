"""The cases with an emergency open now, kept per case for the red flag (sop_case_emergency)

Revision ID: sop_0009
Revises: sop_0008
Create Date: 2026-12-05 17:00:00

The flag worked the open emergencies out on every page view from every running emergency instance and open
emergency step of the municipality; it now reads one row per case, which `sop.emergencies` recomputes whenever a
change of the case may open or close an emergency. The rows of the emergencies open at the upgrade are written
here with the rule the flag used (the query is written out below so that this revision stays as it is when the code
moves on): an emergency instance of the case that runs counts from its start, an open emergency step of a case
process from the start of its run (sop_emergency_run) or, without one, from its opening.
"""

import json

import sqlalchemy as sa
from alembic import op

import engine.db

revision = 'sop_0009'
down_revision = 'sop_0008'
branch_labels = None
depends_on = None

EMERGENCY_PROCESS = 'emergency_child_safety'

definition = sa.table('process_definition', sa.column('key', sa.String), sa.column('spec_json', sa.Text))
instance = sa.table('process_instance', sa.column('id', sa.Integer), sa.column('process_key', sa.String),
                    sa.column('status', sa.String), sa.column('started_at', engine.db.UTCDateTime()))
task = sa.table('human_task', sa.column('instance_id', sa.Integer), sa.column('process_key', sa.String),
                sa.column('element_id', sa.String), sa.column('status', sa.String),
                sa.column('created_at', engine.db.UTCDateTime()))
scope = sa.table('sop_instance_scope', sa.column('instance_id', sa.Integer), sa.column('case_id', sa.Integer))
run = sa.table('sop_emergency_run', sa.column('instance_id', sa.Integer),
               sa.column('started_at', engine.db.UTCDateTime()))
case = sa.table('sop_case', sa.column('id', sa.Integer), sa.column('municipality_id', sa.Integer))


def upgrade() -> None:
    table = op.create_table(
        'sop_case_emergency',
        sa.Column('case_id', sa.Integer(), sa.ForeignKey('sop_case.id', ondelete='CASCADE'), primary_key=True),
        sa.Column('municipality_id', sa.Integer(), sa.ForeignKey('municipality.id'), nullable=False),
        sa.Column('since', engine.db.UTCDateTime(), nullable=False),
    )
    op.create_index('ix_sop_case_emergency_flag', 'sop_case_emergency', ['municipality_id', 'since', 'case_id'])
    connection = op.get_bind()
    parts = [sa.select(scope.c.case_id.label('case_id'), instance.c.started_at.label('since'))
             .join(scope, scope.c.instance_id == instance.c.id)
             .where(instance.c.process_key == EMERGENCY_PROCESS, instance.c.status == 'running',
                    scope.c.case_id.is_not(None))]
    elements: set[str] = set()
    for spec_json in connection.scalars(sa.select(definition.c.spec_json)
                                        .where(definition.c.key == EMERGENCY_PROCESS)):
        spec = json.loads(spec_json).get('spec', {})
        elements.update(t['bpmn_id'] for t in spec.get('task_specs', {}).values() if t.get('bpmn_id'))
    if elements:
        parts.append(sa.select(scope.c.case_id, sa.func.coalesce(run.c.started_at, task.c.created_at))
                     .select_from(task)
                     .join(scope, scope.c.instance_id == task.c.instance_id)
                     .outerjoin(run, run.c.instance_id == task.c.instance_id)
                     .where(task.c.status == 'open', task.c.element_id.in_(sorted(elements)),
                            task.c.process_key != EMERGENCY_PROCESS, scope.c.case_id.is_not(None)))
    both = sa.union_all(*parts).subquery()
    since = sa.select(both.c.case_id, sa.func.min(both.c.since).label('since')).group_by(both.c.case_id).subquery()
    connection.execute(table.insert().from_select(
        ['case_id', 'municipality_id', 'since'],
        sa.select(since.c.case_id, case.c.municipality_id, since.c.since).join(case, case.c.id == since.c.case_id)))


def downgrade() -> None:
    op.drop_index('ix_sop_case_emergency_flag', table_name='sop_case_emergency')
    op.drop_table('sop_case_emergency')
