"""Server-side sessions and revocable API tokens; an index for the login back-off

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-10 10:00:00

`user_session`: one row per browser login, keyed by the SHA-256 of the random secret in the session cookie;
logout, a password change and an administrator's reset or deactivation delete rows, so a saved cookie stops
working. `api_token`: one row per bearer token (SHA-256 of the secret only), with its expiry and last use; a
revoked token's row is deleted. Tokens signed by the earlier scheme are not accepted after this upgrade: clients
ask `POST /api/v1/auth/token` for a new one (they lived 12 hours anyway). The partial index serves the per-address
limit of failed logins.
"""

import sqlalchemy as sa
from alembic import op

from engine.db import UTCDateTime

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

FAILED = sa.text("action = 'login_failed'")


def upgrade() -> None:
    op.create_table(
        'user_session',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('secret_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.Column('last_seen_at', UTCDateTime(), nullable=False),
        sa.Column('ip', sa.String(length=60), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('secret_hash'),
    )
    op.create_index('ix_user_session_user_id', 'user_session', ['user_id'])
    op.create_table(
        'api_token',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('secret_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.Column('expires_at', UTCDateTime(), nullable=False),
        sa.Column('created_ip', sa.String(length=60), nullable=True),
        sa.Column('last_used_at', UTCDateTime(), nullable=True),
        sa.Column('last_ip', sa.String(length=60), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('secret_hash'),
    )
    op.create_index('ix_api_token_user_id', 'api_token', ['user_id'])
    op.create_index('ix_audit_login_failed_ip', 'audit_event', ['ip', 'at'],
                    postgresql_where=FAILED, sqlite_where=FAILED)


def downgrade() -> None:
    op.drop_index('ix_audit_login_failed_ip', table_name='audit_event')
    op.drop_index('ix_api_token_user_id', table_name='api_token')
    op.drop_table('api_token')
    op.drop_index('ix_user_session_user_id', table_name='user_session')
    op.drop_table('user_session')
