"""A case document's PDF is rendered after the change that wrote it commits (sop_document.pending_html)

Revision ID: sop_0011
Revises: sop_0010
Create Date: 2026-12-06 21:00:00

A step that writes a case document (the conclusion act, the card, a resolution…) used to lay the PDF out inside
the person's completion, 200-600 ms of WeasyPrint while the transaction held the case. The step now stores the
document's HTML, rendered from the records in that transaction, and the PDF is laid out from it once the change
has committed (`sop.casefile`). Until then `pending_html` holds the HTML, `content` is empty and `size` is 0.
Documents already stored are rendered: the column is empty for them.
"""

import sqlalchemy as sa
from alembic import op

revision = 'sop_0011'
down_revision = 'sop_0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('sop_document', sa.Column('pending_html', sa.Text(), nullable=True))


def downgrade() -> None:
    # a document still waiting for its PDF keeps an empty content: `kurator documents regenerate` renders it again
    with op.batch_alter_table('sop_document') as batch:
        batch.drop_column('pending_html')
