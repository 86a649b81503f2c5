"""usage entries: cache hit, operation, attempts

Revision ID: ledger_0002
Revises: ledger_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "ledger_0002"
down_revision = "ledger_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_entries") as batch:
        batch.add_column(
            sa.Column("cache_hit", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("operation", sa.String(16), nullable=False, server_default="chat")
        )
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("usage_entries") as batch:
        batch.drop_column("attempts")
        batch.drop_column("operation")
        batch.drop_column("cache_hit")
