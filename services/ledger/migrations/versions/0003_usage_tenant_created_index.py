"""usage entries: index for time-range analytics per tenant

Revision ID: ledger_0003
Revises: ledger_0002
"""

from alembic import op

revision = "ledger_0003"
down_revision = "ledger_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_usage_entries_tenant_id_created_at", "usage_entries", ["tenant_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_usage_entries_tenant_id_created_at", table_name="usage_entries")
