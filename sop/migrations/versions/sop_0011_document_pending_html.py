"""A case document's PDF is rendered after the change that wrote it commits (sop_document.pending_html)

Revision ID: sop_0011
Revises: sop_0010
Create Date: 2026-12-06 21:00:00

A step that writes a case document (the conclusion act, the card, a resolution…) used to lay the PDF out inside
the person's completion, 200-600 ms of WeasyPrint while the transaction held the case. The step now stores the
document's HTML, rendered from the records in that transaction, and the PDF is laid out from it once the change
has committed (`sop.casefile`). Until then `pending_html` holds the HTML, `content` is empty and `size` is 0;
`render_failed_at` says when laying it out failed (the scheduler then leaves it to a reader or a regeneration).
Documents already stored are rendered: the columns are empty for them.
"""

import sqlalchemy as sa
from alembic import op

import engine.db

revision = 'sop_0011'
down_revision = 'sop_0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('sop_document', sa.Column('pending_html', sa.Text(), nullable=True))
    op.add_column('sop_document', sa.Column('render_failed_at', engine.db.UTCDateTime(), nullable=True))
    op.create_index('ix_sop_document_pending', 'sop_document', ['id'],
                    postgresql_where=sa.text("pending_html IS NOT NULL"), sqlite_where=sa.text("pending_html IS NOT NULL"))


def downgrade() -> None:
    # a document still waiting for its PDF keeps an empty content: `kurator documents regenerate` renders it again
    op.drop_index('ix_sop_document_pending', table_name='sop_document')
    with op.batch_alter_table('sop_document') as batch:
        batch.drop_column('render_failed_at')
        batch.drop_column('pending_html')
