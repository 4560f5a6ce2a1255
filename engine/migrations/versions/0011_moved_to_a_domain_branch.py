"""Empty: the tables of this revision belong to a domain and moved to that domain's own Alembic branch

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 19:00:00

Kept, with nothing to do, so that the engine's chain of revision ids stays as it was: databases are stamped with
it. A database created before the split already has the domain's tables; the domain's branch recognises them
when it is first applied (README, "Schema migrations").
"""

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
