"""call log from Envoy's access log; opted-in bodies

Revision ID: ledger_0009
Revises: ledger_0008
"""

import sqlalchemy as sa
from alembic import op

revision = "ledger_0009"
down_revision = "ledger_0008"
branch_labels = None
depends_on = None


def _id() -> sa.Column:
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                     autoincrement=True)


def upgrade() -> None:
    op.create_table(
        "call_log",
        _id(),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("http_method", sa.String(16), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("response_code", sa.Integer(), nullable=False),
        sa.Column("response_flags", sa.String(128), nullable=False),
        sa.Column("duration_ms", sa.BigInteger(), nullable=False),
        sa.Column("request_bytes", sa.BigInteger(), nullable=False),
        sa.Column("response_bytes", sa.BigInteger(), nullable=False),
        sa.Column("upstream_cluster", sa.String(128), nullable=False),
        sa.Column("upstream_host", sa.String(256), nullable=False),
    )
    op.create_index("ix_call_log_request_id", "call_log", ["request_id"])
    op.create_index("ix_call_log_tenant_id_id", "call_log", ["tenant_id", "id"])
    op.create_index("ix_call_log_start_time", "call_log", ["start_time"])
    op.create_table(
        "call_bodies",
        _id(),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("request_body", sa.Text(), nullable=False),
        sa.Column("response_body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("request_id", name="uq_call_bodies_request_id"),
    )
    op.create_index("ix_call_bodies_created_at", "call_bodies", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_call_bodies_created_at", table_name="call_bodies")
    op.drop_table("call_bodies")
    op.drop_index("ix_call_log_start_time", table_name="call_log")
    op.drop_index("ix_call_log_tenant_id_id", table_name="call_log")
    op.drop_index("ix_call_log_request_id", table_name="call_log")
    op.drop_table("call_log")
