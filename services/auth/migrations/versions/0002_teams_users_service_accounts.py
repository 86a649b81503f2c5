"""teams, users, service accounts, key owners and scopes, audit events, change feed

Every existing key gets an owner: a service account in a new team `default` of
its tenant, holding the key's roles, so no key loses or gains rights.

Revision ID: auth_0002
Revises: auth_0001
"""

import json
import re
import secrets
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "auth_0002"
down_revision = "auth_0001"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _seq() -> sa.Column:
    return sa.Column(
        "seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
        autoincrement=True,
    )


def upgrade() -> None:
    op.add_column("tenants", sa.Column("display_name", sa.String(256), nullable=False,
                                       server_default=""))
    op.add_column("tenants", _ts("updated_at"))
    op.add_column("tenants", sa.Column("revision", sa.Integer(), nullable=False,
                                       server_default="1"))
    op.create_table(
        "teams",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(256), nullable=False, server_default=""),
        _ts("created_at", False), _ts("updated_at"),
        sa.Column("revision", sa.Integer(), nullable=False, server_default="1"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_teams_tenant_name"),
    )
    op.create_index("ix_teams_tenant_id", "teams", ["tenant_id"])
    op.create_table(
        "users",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("email", sa.String(254), nullable=False, unique=True),
        sa.Column("display_name", sa.String(256), nullable=False, server_default=""),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
        _ts("created_at", False), _ts("updated_at"),
        sa.Column("revision", sa.Integer(), nullable=False, server_default="1"),
    )
    op.create_index("ix_users_tenant_id", "users", ["tenant_id"])
    op.create_table(
        "team_memberships",
        sa.Column("user_id", sa.String(64), sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("team_id", sa.String(64), sa.ForeignKey("teams.id"), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
    )
    op.create_index("ix_team_memberships_team_id", "team_memberships", ["team_id"])
    op.create_index("ix_team_memberships_tenant_id", "team_memberships", ["tenant_id"])
    op.create_table(
        "service_accounts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("team_id", sa.String(64), sa.ForeignKey("teams.id"), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(256), nullable=False, server_default=""),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
        _ts("created_at", False), _ts("updated_at"),
        sa.Column("revision", sa.Integer(), nullable=False, server_default="1"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_service_accounts_tenant_name"),
    )
    op.create_index("ix_service_accounts_tenant_id", "service_accounts", ["tenant_id"])
    op.create_index("ix_service_accounts_team_id", "service_accounts", ["team_id"])

    op.add_column("api_keys", sa.Column("team_id", sa.String(64), nullable=False,
                                        server_default=""))
    op.add_column("api_keys", sa.Column("owner_kind", sa.String(16), nullable=False,
                                        server_default="service_account"))
    op.add_column("api_keys", sa.Column("owner_id", sa.String(64), nullable=False,
                                        server_default=""))
    op.add_column("api_keys", sa.Column("scopes", sa.JSON(), nullable=True))
    op.add_column("api_keys", _ts("updated_at"))
    op.add_column("api_keys", _ts("expires_at"))
    op.add_column("api_keys", _ts("last_used_at"))
    op.add_column("api_keys", sa.Column("replaced_by", sa.String(64), nullable=False,
                                        server_default=""))
    op.add_column("api_keys", sa.Column("revision", sa.Integer(), nullable=False,
                                        server_default="1"))
    op.create_index("ix_api_keys_team_id", "api_keys", ["team_id"])
    op.create_index("ix_api_keys_owner_id", "api_keys", ["owner_id"])

    op.create_table(
        "auth_audit_events",
        _seq(),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("actor_key_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("actor_principal", sa.String(160), nullable=False, server_default=""),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("object_type", sa.String(32), nullable=False),
        sa.Column("object_id", sa.String(64), nullable=False),
        sa.Column("before_digest", sa.String(64), nullable=False, server_default=""),
        sa.Column("after_digest", sa.String(64), nullable=False, server_default=""),
        sa.Column("decision_id", sa.String(64), nullable=False, server_default=""),
        _ts("created_at", False),
    )
    op.create_index("ix_auth_audit_events_tenant_id", "auth_audit_events", ["tenant_id"])
    op.create_index("ix_auth_audit_events_object_id", "auth_audit_events", ["object_id"])
    op.create_table(
        "auth_changes",
        _seq(),
        sa.Column("subject_kind", sa.String(16), nullable=False),
        sa.Column("subject_id", sa.String(64), nullable=False),
        _ts("created_at", False),
    )
    _give_existing_keys_owners()
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("scopes", existing_type=sa.JSON(), nullable=False)


def _give_existing_keys_owners() -> None:
    bind = op.get_bind()
    now = datetime.now(UTC)
    bind.execute(sa.text("UPDATE api_keys SET scopes = '[]' WHERE scopes IS NULL"))
    keys = bind.execute(
        sa.text("SELECT id, tenant_id, name, roles FROM api_keys ORDER BY created_at")
    ).fetchall()
    teams: dict[str, str] = {}
    for key_id, tenant_id, name, roles in keys:
        if tenant_id not in teams:
            teams[tenant_id] = f"team_{secrets.token_hex(12)}"
            bind.execute(
                sa.text("INSERT INTO teams (id, tenant_id, name, display_name, created_at, "
                        "revision) VALUES (:id, :t, 'default', 'Default team', :now, 1)"),
                {"id": teams[tenant_id], "t": tenant_id, "now": now},
            )
        slug = re.sub(r"[^a-z0-9-]+", "-", str(name).lower()).strip("-")[:40]
        if not slug[:1].isalpha():  # account names start with a letter
            slug = f"key-{slug}".rstrip("-")
        account_id = f"sa_{secrets.token_hex(12)}"
        bind.execute(
            sa.text("INSERT INTO service_accounts (id, tenant_id, team_id, name, display_name, "
                    "roles, status, created_at, revision) VALUES (:id, :t, :team, :name, :dn, "
                    ":roles, 'active', :now, 1)"),
            {"id": account_id, "t": tenant_id, "team": teams[tenant_id],
             "name": f"{slug}-{key_id[-6:]}", "dn": f"Owner of key {name}",
             "roles": roles if isinstance(roles, str) else json.dumps(roles), "now": now},
        )
        bind.execute(
            sa.text("UPDATE api_keys SET team_id = :team, owner_kind = 'service_account', "
                    "owner_id = :owner WHERE id = :id"),
            {"team": teams[tenant_id], "owner": account_id, "id": key_id},
        )


def downgrade() -> None:
    op.drop_table("auth_changes")
    op.drop_table("auth_audit_events")
    for column in ("revision", "replaced_by", "last_used_at", "expires_at", "updated_at",
                   "scopes", "owner_id", "owner_kind", "team_id"):
        op.drop_column("api_keys", column)
    op.drop_table("service_accounts")
    op.drop_table("team_memberships")
    op.drop_table("users")
    op.drop_table("teams")
    for column in ("revision", "updated_at", "display_name"):
        op.drop_column("tenants", column)
