"""rate limits (requests and tokens per minute)

Revision ID: ledger_0008
Revises: ledger_0007
"""

import sqlalchemy as sa
from alembic import op

revision = "ledger_0008"
down_revision = "ledger_0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limits",
        sa.Column("rate_limit_id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("scope_id", sa.String(256), nullable=False),
        sa.Column("requests_per_minute", sa.BigInteger(), nullable=False),
        sa.Column("tokens_per_minute", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        # SetRateLimit upserts on it; it also serves ListRateLimits (by tenant).
        sa.UniqueConstraint("tenant_id", "scope", "scope_id",
                            name="uq_rate_limits_tenant_id_scope_scope_id"),
    )


def downgrade() -> None:
    op.drop_table("rate_limits")
