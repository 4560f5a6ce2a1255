"""The start of the emergency called inside a case process, stored when one of its steps opens (sop_emergency_run)

Revision ID: sop_0008
Revises: sop_0007
Create Date: 2026-12-09 10:00:00

The red flag read it from the history of each instance with an open emergency step and remembered it per worker
process. The table is filled here for the emergencies open at the upgrade, from that history, with the rule the
flag used (`sop.emergencies.run_start`, copied below so that this revision stays as it is when the code moves on).
"""

import json
from datetime import timedelta

import sqlalchemy as sa
from alembic import op

import engine.db

revision = 'sop_0008'
down_revision = 'sop_0007'
branch_labels = None
depends_on = None

EMERGENCY_PROCESS = 'emergency_child_safety'
SAME_RUN = timedelta(minutes=1)
CHUNK = 500

definition = sa.table('process_definition', sa.column('key', sa.String), sa.column('spec_json', sa.Text))
task = sa.table('human_task', sa.column('instance_id', sa.Integer), sa.column('process_key', sa.String),
                sa.column('element_id', sa.String), sa.column('status', sa.String),
                sa.column('created_at', engine.db.UTCDateTime()), sa.column('completed_at', engine.db.UTCDateTime()))


def upgrade() -> None:
    run = op.create_table(
        'sop_emergency_run',
        sa.Column('instance_id', sa.Integer(), sa.ForeignKey('process_instance.id', ondelete='CASCADE'),
                  primary_key=True),
        sa.Column('started_at', engine.db.UTCDateTime(), nullable=False),
    )
    connection = op.get_bind()
    elements: set[str] = set()
    for spec_json in connection.scalars(sa.select(definition.c.spec_json)
                                        .where(definition.c.key == EMERGENCY_PROCESS)):
        spec = json.loads(spec_json).get('spec', {})
        elements.update(t['bpmn_id'] for t in spec.get('task_specs', {}).values() if t.get('bpmn_id'))
    if not elements:
        return
    ours = task.c.element_id.in_(sorted(elements))
    instances = sorted(connection.scalars(
        sa.select(task.c.instance_id).distinct()
        .where(task.c.status == 'open', task.c.process_key != EMERGENCY_PROCESS, ours)))
    for first in range(0, len(instances), CHUNK):
        chunk = instances[first:first + CHUNK]
        steps: dict[int, list] = {}
        for instance_id, status, created, finished in connection.execute(
                sa.select(task.c.instance_id, task.c.status, task.c.created_at, task.c.completed_at)
                .where(task.c.instance_id.in_(chunk), ours)):
            steps.setdefault(instance_id, []).append(
                (created, None if status == 'open' else max(created, finished or created)))
        rows = [{'instance_id': instance_id, 'started_at': started} for instance_id in chunk
                if (started := _run_start(steps.get(instance_id, ()))) is not None]
        if rows:
            op.bulk_insert(run, rows)


def downgrade() -> None:
    op.drop_table('sop_emergency_run')


def _run_start(steps):
    """When the run of emergency steps that is still open began (steps: opened, ended or None while open)."""
    start = end = None
    still_open = False
    for created, finished in sorted(steps, key=lambda s: s[0]):
        if start is None or (not still_open and created > end + SAME_RUN):
            start, end, still_open = created, finished, finished is None
        elif finished is None:
            still_open = True
        elif not still_open:
            end = max(end, finished)
    return start if still_open else None
