"""Auth tables: tenants → teams → users and service accounts, API keys (secrets
stored only as keyed hashes), the audit trail, and the change feed replicas
follow to drop cached principals.

Mutable objects carry `revision`, bumped on every update: it is the etag of
optimistic concurrency.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Column, DateTime, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

_TS = DateTime(timezone=True)


class Tenant(SQLModel, table=True):
    __tablename__ = "tenants"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=64, unique=True)
    display_name: str = Field(default="", max_length=256)
    created_at: datetime = Field(sa_type=_TS)
    updated_at: datetime | None = Field(default=None, sa_type=_TS)
    revision: int = Field(default=1)


class Team(SQLModel, table=True):
    __tablename__ = "teams"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_teams_tenant_name"),)

    id: str = Field(primary_key=True, max_length=64)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=64)
    name: str = Field(max_length=64)
    display_name: str = Field(default="", max_length=256)
    created_at: datetime = Field(sa_type=_TS)
    updated_at: datetime | None = Field(default=None, sa_type=_TS)
    revision: int = Field(default=1)


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: str = Field(primary_key=True, max_length=64)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=64)
    #: Lower-cased; unique across the gateway so a JWT's e-mail names one user.
    email: str = Field(max_length=254, unique=True)
    display_name: str = Field(default="", max_length=256)
    #: Tenant-wide roles: they apply in every team.
    roles: list[str] = Field(default_factory=list, sa_type=JSON)
    status: str = Field(default="active", max_length=16)
    created_at: datetime = Field(sa_type=_TS)
    updated_at: datetime | None = Field(default=None, sa_type=_TS)
    revision: int = Field(default=1)


class Membership(SQLModel, table=True):
    """A user's roles in one team."""

    __tablename__ = "team_memberships"

    user_id: str = Field(foreign_key="users.id", primary_key=True, max_length=64)
    team_id: str = Field(foreign_key="teams.id", primary_key=True, index=True, max_length=64)
    tenant_id: str = Field(max_length=64, index=True)
    roles: list[str] = Field(default_factory=list, sa_type=JSON)


class ServiceAccount(SQLModel, table=True):
    __tablename__ = "service_accounts"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", name="uq_service_accounts_tenant_name"),
    )

    id: str = Field(primary_key=True, max_length=64)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=64)
    team_id: str = Field(foreign_key="teams.id", index=True, max_length=64)
    name: str = Field(max_length=64)
    display_name: str = Field(default="", max_length=256)
    roles: list[str] = Field(default_factory=list, sa_type=JSON)
    status: str = Field(default="active", max_length=16)
    created_at: datetime = Field(sa_type=_TS)
    updated_at: datetime | None = Field(default=None, sa_type=_TS)
    revision: int = Field(default=1)


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"

    id: str = Field(primary_key=True, max_length=64)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=64)
    #: "" for a tenant-wide key (owners with a tenant-wide role only).
    team_id: str = Field(default="", max_length=64, index=True)
    owner_kind: str = Field(default="service_account", max_length=16)
    owner_id: str = Field(default="", max_length=64, index=True)
    name: str = Field(max_length=128)
    #: Public lookup handle: the first characters of the secret after "lg_".
    prefix: str = Field(max_length=32, index=True)
    #: HMAC-SHA256 of the whole secret with the service's pepper (hex).
    secret_hash: str = Field(max_length=64)
    roles: list[str] = Field(default_factory=list, sa_type=JSON)
    models: list[str] = Field(default_factory=list, sa_type=JSON)
    scopes: list[str] = Field(default_factory=list, sa_type=JSON)
    #: "active" or "revoked"; "expired" is derived from expires_at when read.
    status: str = Field(default="active", max_length=16)
    created_at: datetime = Field(sa_type=_TS)
    updated_at: datetime | None = Field(default=None, sa_type=_TS)
    expires_at: datetime | None = Field(default=None, sa_type=_TS)
    revoked_at: datetime | None = Field(default=None, sa_type=_TS)
    last_used_at: datetime | None = Field(default=None, sa_type=_TS)
    replaced_by: str = Field(default="", max_length=64)
    revision: int = Field(default=1)


class AuditEvent(SQLModel, table=True):
    __tablename__ = "auth_audit_events"

    seq: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                         autoincrement=True),
    )
    id: str = Field(max_length=64, unique=True)
    tenant_id: str = Field(max_length=64, index=True)
    actor_key_id: str = Field(default="", max_length=64)
    actor_principal: str = Field(default="", max_length=160)
    action: str = Field(max_length=64)
    object_type: str = Field(max_length=32)
    object_id: str = Field(max_length=64, index=True)
    before_digest: str = Field(default="", max_length=64)
    after_digest: str = Field(default="", max_length=64)
    decision_id: str = Field(default="", max_length=64)
    created_at: datetime = Field(sa_type=_TS)


class Change(SQLModel, table=True):
    """One row per change that can alter a resolved principal; every replica
    polls the rows after the last one it saw and drops what they name."""

    __tablename__ = "auth_changes"

    seq: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                         autoincrement=True),
    )
    #: "key" or "owner" (a user or service account: every key it owns).
    subject_kind: str = Field(max_length=16)
    subject_id: str = Field(max_length=64)
    created_at: datetime = Field(sa_type=_TS)
