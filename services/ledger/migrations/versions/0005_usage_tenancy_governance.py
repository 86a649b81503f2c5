"""usage entries: team, principal, governed API and version; last-call index

Revision ID: ledger_0005
Revises: ledger_0004
"""

import sqlalchemy as sa
from alembic import op

revision = "ledger_0005"
down_revision = "ledger_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_entries") as batch:
        batch.add_column(sa.Column("team_id", sa.String(64), nullable=False, server_default=""))
        batch.add_column(
            sa.Column("principal", sa.String(128), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("api_id", sa.String(64), nullable=False, server_default=""))
        batch.add_column(
            sa.Column("api_version", sa.String(64), nullable=False, server_default="")
        )
    # GetLastCall: the latest created_at of one (api_id, api_version), any tenant.
    op.create_index(
        "ix_usage_entries_api_id_api_version_created_at",
        "usage_entries",
        ["api_id", "api_version", "created_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_usage_entries_api_id_api_version_created_at", table_name="usage_entries")
    with op.batch_alter_table("usage_entries") as batch:
        batch.drop_column("api_version")
        batch.drop_column("api_id")
        batch.drop_column("principal")
        batch.drop_column("team_id")
