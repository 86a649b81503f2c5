"""price book versions set by platform admins

Revision ID: ledger_0006
Revises: ledger_0005
"""

import sqlalchemy as sa
from alembic import op

revision = "ledger_0006"
down_revision = "ledger_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prices",
        sa.Column("price_id", sa.String(64), primary_key=True),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("effective_date", sa.Date(), nullable=False),
        # Decimal text, not NUMERIC: SQLite would store NUMERIC as a float.
        sa.Column("input_usd_per_mtok", sa.String(32), nullable=False),
        sa.Column("output_usd_per_mtok", sa.String(32), nullable=False),
        sa.Column("cached_input_usd_per_mtok", sa.String(32), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint(
            "provider", "model", "effective_date", name="uq_prices_provider_model_effective_date"
        ),
    )


def downgrade() -> None:
    op.drop_table("prices")
