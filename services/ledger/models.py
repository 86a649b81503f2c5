"""Ledger tables. Mirrors migrations/versions (checked by a test)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Index, Integer
from sqlmodel import Field, SQLModel

# BIGINT on PostgreSQL; SQLite's INTEGER is 64-bit (and only INTEGER PRIMARY KEY autoincrements).
_BIG = BigInteger().with_variant(Integer(), "sqlite")


class UsageEntry(SQLModel, table=True):
    """One metered model call. Immutable once written; request_id is the idempotency key."""

    __tablename__ = "usage_entries"
    __table_args__ = (
        Index("ix_usage_entries_tenant_id_id", "tenant_id", "id"),
        # QueryUsage: one tenant's time range.
        Index("ix_usage_entries_tenant_id_created_at", "tenant_id", "created_at"),
        # GetLastCall: the latest entry of one API version, any tenant.
        Index(
            "ix_usage_entries_api_id_api_version_created_at", "api_id", "api_version", "created_at"
        ),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=_BIG)
    request_id: str = Field(max_length=128, unique=True)
    tenant_id: str = Field(max_length=64)
    key_id: str = Field(max_length=64, default="")
    alias: str = Field(max_length=256, default="")
    deployment: str = Field(max_length=256, default="")
    provider: str = Field(max_length=64, default="")
    provider_model: str = Field(max_length=256, default="")
    input_tokens: int = Field(default=0, sa_type=BigInteger)
    output_tokens: int = Field(default=0, sa_type=BigInteger)
    cached_input_tokens: int = Field(default=0, sa_type=BigInteger)
    estimated: bool = False
    latency_ms: int = Field(default=0, sa_type=BigInteger)
    ttft_ms: int = Field(default=0, sa_type=BigInteger)
    status: str = Field(max_length=16, default="ok")
    error_type: str = Field(max_length=64, default="")
    streamed: bool = False
    cache_hit: bool = False
    operation: str = Field(max_length=16, default="chat")
    attempts: int = 0
    #: Integer micro-USD (see lockgate/prices.py for the rounding).
    cost_micro_usd: int = Field(default=0, sa_type=BigInteger)
    price_source: str = Field(max_length=16, default="")
    #: The caller's team ("" for tenant-wide keys) and principal
    #: ("user:usr_…" / "service_account:sa_…"; "" when unknown).
    team_id: str = Field(max_length=64, default="")
    principal: str = Field(max_length=128, default="")
    #: The governed API (registry id) and version called; "" when ungoverned.
    api_id: str = Field(max_length=64, default="")
    api_version: str = Field(max_length=64, default="")
    #: The approved subscription the call went through ("" when none).
    subscription_id: str = Field(max_length=64, default="")
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
