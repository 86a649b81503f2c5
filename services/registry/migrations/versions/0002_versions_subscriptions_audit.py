"""api owners and visibility, versions, subscriptions, hash-chained audit, change feed

Existing model APIs keep their aliases in a draft version v1: drafts are not
enforced, so nothing changes at the gateway until an owner publishes it.

Revision ID: registry_0002
Revises: registry_0001
"""

import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "registry_0002"
down_revision = "registry_0001"
branch_labels = None
depends_on = None


def _seq() -> sa.Column:
    return sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True)


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.add_column("apis", sa.Column("owner_team_id", sa.String(64), nullable=False,
                                    server_default=""))
    op.add_column("apis", sa.Column("visibility", sa.String(16), nullable=False,
                                    server_default="tenant"))
    op.add_column("apis", sa.Column("shared_tenant_ids", sa.JSON(), nullable=True))
    op.add_column("apis", _ts("updated_at"))
    op.add_column("apis", sa.Column("revision", sa.Integer(), nullable=False, server_default="1"))
    op.create_table(
        "api_versions",
        _seq(),
        sa.Column("api_id", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("version", sa.String(16), nullable=False),
        sa.Column("major", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("minor", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("state", sa.String(16), nullable=False, server_default="draft"),
        sa.Column("description", sa.String(2000), nullable=False, server_default=""),
        sa.Column("model_aliases", sa.JSON(), nullable=False),
        sa.Column("prompt", sa.JSON(), nullable=False),
        _ts("sunset_at"),
        sa.Column("successor", sa.String(16), nullable=False, server_default=""),
        _ts("created_at", False), _ts("published_at"), _ts("deprecated_at"), _ts("retired_at"),
        _ts("updated_at"),
        sa.Column("revision", sa.Integer(), nullable=False, server_default="1"),
        sa.UniqueConstraint("api_id", "version", name="uq_api_versions_api_version"),
    )
    op.create_index("ix_api_versions_api_id", "api_versions", ["api_id"])
    op.create_table(
        "subscriptions",
        _seq(),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("api_id", sa.String(64), nullable=False),
        sa.Column("version", sa.String(16), nullable=False, server_default=""),
        sa.Column("subscriber_tenant_id", sa.String(64), nullable=False),
        sa.Column("team_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("justification", sa.String(2000), nullable=False, server_default=""),
        sa.Column("decision_reason", sa.String(2000), nullable=False, server_default=""),
        sa.Column("decided_by", sa.String(160), nullable=False, server_default=""),
        _ts("created_at", False), _ts("updated_at"),
        sa.Column("revision", sa.Integer(), nullable=False, server_default="1"),
    )
    for column in ("api_id", "subscriber_tenant_id", "team_id"):
        op.create_index(f"ix_subscriptions_{column}", "subscriptions", [column])
    op.create_table(
        "registry_audit_events",
        _seq(),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(160), nullable=False, server_default=""),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("object_type", sa.String(32), nullable=False),
        sa.Column("object_id", sa.String(128), nullable=False),
        sa.Column("before_digest", sa.String(64), nullable=False, server_default=""),
        sa.Column("after_digest", sa.String(64), nullable=False, server_default=""),
        sa.Column("decision_id", sa.String(64), nullable=False, server_default=""),
        _ts("created_at", False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_registry_audit_events_tenant_id", "registry_audit_events", ["tenant_id"])
    op.create_index("ix_registry_audit_events_object_id", "registry_audit_events", ["object_id"])
    head = op.create_table(
        "registry_audit_head",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("last_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  nullable=False, server_default="0"),
        sa.Column("last_hash", sa.String(64), nullable=False, server_default=""),
    )
    op.bulk_insert(head, [{"id": 1, "last_seq": 0, "last_hash": ""}])
    op.create_table(
        "registry_changes",
        _seq(),
        sa.Column("subject_kind", sa.String(16), nullable=False),
        sa.Column("subject_id", sa.String(64), nullable=False),
        _ts("created_at", False),
    )
    _publish_existing_aliases()
    with op.batch_alter_table("apis") as batch:
        batch.alter_column("shared_tenant_ids", existing_type=sa.JSON(), nullable=False)


def _publish_existing_aliases() -> None:
    bind = op.get_bind()
    bind.execute(sa.text("UPDATE apis SET shared_tenant_ids = '[]' WHERE shared_tenant_ids IS NULL"))
    now = datetime.now(UTC)
    rows = bind.execute(sa.text("SELECT id, tenant_id, kind, model_aliases, description "
                                "FROM apis")).fetchall()
    for api_id, tenant_id, kind, aliases, description in rows:
        aliases = json.loads(aliases) if isinstance(aliases, str) else (aliases or [])
        if kind != "model" or not aliases:
            continue
        bind.execute(
            sa.text("INSERT INTO api_versions (api_id, tenant_id, version, major, minor, state, "
                    "description, model_aliases, prompt, created_at, published_at, revision) "
                    "VALUES (:api, :tenant, 'v1', 1, 0, 'draft', :description, :aliases, "
                    "'{}', :now, NULL, 1)"),
            {"api": api_id, "tenant": tenant_id, "description": description or "",
             "aliases": json.dumps(aliases), "now": now},
        )


def downgrade() -> None:
    op.drop_table("registry_changes")
    op.drop_table("registry_audit_head")
    op.drop_table("registry_audit_events")
    op.drop_table("subscriptions")
    op.drop_table("api_versions")
    for column in ("revision", "updated_at", "shared_tenant_ids", "visibility", "owner_team_id"):
        op.drop_column("apis", column)
