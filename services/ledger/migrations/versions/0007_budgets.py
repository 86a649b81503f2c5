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
    op.create_table(
        "budgets",
        sa.Column("budget_id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("scope_id", sa.String(256), nullable=False),
        sa.Column("amount_micro_usd", sa.BigInteger(), nullable=False),
        sa.Column("period", sa.String(8), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("hard", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("tenant_id", "scope", "scope_id", "period",
                            name="uq_budgets_tenant_id_scope_scope_id_period"),
    )
    op.create_table(
        "budget_alerts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("budget_id", sa.String(64), nullable=False),
        sa.Column("period_key", sa.String(32), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("spent_micro_usd", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("budget_id", "period_key", "threshold",
                            name="uq_budget_alerts_budget_id_period_key_threshold"),
    )
    with op.batch_alter_table("usage_entries") as batch:
        batch.add_column(
            sa.Column("subscription_id", sa.String(64), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("usage_entries") as batch:
        batch.drop_column("subscription_id")
    op.drop_table("budget_alerts")
    op.drop_table("budgets")
