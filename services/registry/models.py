"""Registry tables: the API catalog, versions and their lifecycle, subscriptions,
the hash-chained audit log, and the change feed behind the watch stream.
Mirrors migrations/versions (checked by a test)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Index, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

#: 64-bit on PostgreSQL; INTEGER on SQLite, the only type that autoincrements there.
SEQ_TYPE = BigInteger().with_variant(Integer(), "sqlite")
_TS = DateTime(timezone=True)


class Api(SQLModel, table=True):
    """An API offered as a product by a team of a tenant."""

    __tablename__ = "apis"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", name="uq_apis_tenant_name"),
        Index("ix_apis_tenant_id_seq", "tenant_id", "seq"),
    )

    #: Insertion order: the stable pagination cursor (ids are random strings).
    seq: int | None = Field(default=None, primary_key=True, sa_type=SEQ_TYPE)
    #: Public id, "api_…".
    id: str = Field(max_length=64, unique=True)
    tenant_id: str = Field(max_length=64)
    name: str = Field(max_length=64)
    #: "model" or "prompt".
    kind: str = Field(max_length=16)
    description: str = Field(default="", max_length=2000)
    #: The aliases exposed by the API's live versions (kept in step by the service).
    model_aliases: list[str] = Field(default_factory=list, sa_type=JSON)
    created_at: datetime = Field(sa_type=_TS)
    owner_team_id: str = Field(default="", max_length=64)
    #: private, team, tenant, shared or public.
    visibility: str = Field(default="tenant", max_length=16)
    shared_tenant_ids: list[str] = Field(default_factory=list, sa_type=JSON)
    updated_at: datetime | None = Field(default=None, sa_type=_TS)
    revision: int = Field(default=1)
    #: Calls keep their redacted request and response bodies in the ledger's call log.
    log_bodies: bool = Field(default=False)


class ApiVersion(SQLModel, table=True):
    __tablename__ = "api_versions"
    __table_args__ = (UniqueConstraint("api_id", "version", name="uq_api_versions_api_version"),)

    seq: int | None = Field(default=None, primary_key=True, sa_type=SEQ_TYPE)
    api_id: str = Field(max_length=64, index=True)
    tenant_id: str = Field(max_length=64)
    version: str = Field(max_length=16)
    major: int = Field(default=1)
    minor: int = Field(default=0)
    #: draft, published, deprecated, retired.
    state: str = Field(default="draft", max_length=16)
    description: str = Field(default="", max_length=2000)
    model_aliases: list[str] = Field(default_factory=list, sa_type=JSON)
    #: Prompt APIs: {system_template, user_template, input_schema, output_schema, model, parameters}.
    prompt: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    sunset_at: datetime | None = Field(default=None, sa_type=_TS)
    successor: str = Field(default="", max_length=16)
    created_at: datetime = Field(sa_type=_TS)
    published_at: datetime | None = Field(default=None, sa_type=_TS)
    deprecated_at: datetime | None = Field(default=None, sa_type=_TS)
    retired_at: datetime | None = Field(default=None, sa_type=_TS)
    updated_at: datetime | None = Field(default=None, sa_type=_TS)
    revision: int = Field(default=1)


class Subscription(SQLModel, table=True):
    __tablename__ = "subscriptions"

    seq: int | None = Field(default=None, primary_key=True, sa_type=SEQ_TYPE)
    id: str = Field(max_length=64, unique=True)
    api_id: str = Field(max_length=64, index=True)
    #: "" = every version.
    version: str = Field(default="", max_length=16)
    subscriber_tenant_id: str = Field(max_length=64, index=True)
    team_id: str = Field(max_length=64, index=True)
    #: pending, approved, rejected, revoked.
    state: str = Field(max_length=16)
    justification: str = Field(default="", max_length=2000)
    decision_reason: str = Field(default="", max_length=2000)
    decided_by: str = Field(default="", max_length=160)
    created_at: datetime = Field(sa_type=_TS)
    updated_at: datetime | None = Field(default=None, sa_type=_TS)
    revision: int = Field(default=1)


class AuditEvent(SQLModel, table=True):
    """Append-only and hash-chained: each event's hash covers the previous hash."""

    __tablename__ = "registry_audit_events"

    seq: int | None = Field(default=None, primary_key=True, sa_type=SEQ_TYPE)
    id: str = Field(max_length=64, unique=True)
    tenant_id: str = Field(max_length=64, index=True)
    actor: str = Field(default="", max_length=160)
    action: str = Field(max_length=64)
    object_type: str = Field(max_length=32)
    object_id: str = Field(max_length=128, index=True)
    before_digest: str = Field(default="", max_length=64)
    after_digest: str = Field(default="", max_length=64)
    decision_id: str = Field(default="", max_length=64)
    created_at: datetime = Field(sa_type=_TS)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class ChainHead(SQLModel, table=True):
    """One row: the last audit hash. Locked by every append (SELECT … FOR UPDATE on
    PostgreSQL; SQLite serializes writers), so concurrent appends form one chain."""

    __tablename__ = "registry_audit_head"

    id: int = Field(default=1, primary_key=True)
    last_seq: int = Field(default=0, sa_type=SEQ_TYPE)
    last_hash: str = Field(default="", max_length=64)


class Change(SQLModel, table=True):
    """A change the watch stream must deliver: an API's bindings or a subscription."""

    __tablename__ = "registry_changes"

    seq: int | None = Field(default=None, primary_key=True, sa_type=SEQ_TYPE)
    #: "api" (its versions' bindings and prompt routes) or "subscription".
    subject_kind: str = Field(max_length=16)
    subject_id: str = Field(max_length=64)
    created_at: datetime = Field(sa_type=_TS)
