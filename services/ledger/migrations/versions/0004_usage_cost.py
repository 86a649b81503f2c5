"""usage entries: cost in integer micro-USD and where the price came from

Revision ID: ledger_0004
Revises: ledger_0003
"""

import sqlalchemy as sa
from alembic import op

revision = "ledger_0004"
down_revision = "ledger_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_entries") as batch:
        batch.add_column(
            sa.Column("cost_micro_usd", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("price_source", sa.String(16), nullable=False,
                                   server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("usage_entries") as batch:
        batch.drop_column("price_source")
        batch.drop_column("cost_micro_usd")
