"""budgets, reservations' settled spend, threshold events; usage subscription_id

Revision ID: ledger_0007
Revises: ledger_0006
"""

import sqlalchemy as sa
from alembic import op

revision = "ledger_0007"
down_revision = "ledger_0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_entries") as batch:
        batch.add_column(
            sa.Column("subscription_id", sa.String(64), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("usage_entries") as batch:
        batch.drop_column("subscription_id")
