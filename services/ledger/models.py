"""Ledger tables. Mirrors migrations/versions (checked by a test)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, DateTime, Index, Integer, Text, UniqueConstraint
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


class Budget(SQLModel, table=True):
    """A spending cap on one scope (tenant, team, key or subscription) per period."""

    __tablename__ = "budgets"
    __table_args__ = (
        UniqueConstraint("tenant_id", "scope", "scope_id", "period",
                         name="uq_budgets_tenant_id_scope_scope_id_period"),
    )

    budget_id: str = Field(primary_key=True, max_length=64)
    tenant_id: str = Field(max_length=64)
    scope: str = Field(max_length=16)
    scope_id: str = Field(max_length=256)
    amount_micro_usd: int = Field(sa_type=BigInteger)
    period: str = Field(max_length=8)
    timezone: str = Field(max_length=64, default="UTC")
    hard: bool = True
    created_by: str = Field(max_length=128, default="")
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))


class BudgetAlert(SQLModel, table=True):
    """A threshold event sent for one budget period: at most once per threshold."""

    __tablename__ = "budget_alerts"
    __table_args__ = (
        UniqueConstraint("budget_id", "period_key", "threshold",
                         name="uq_budget_alerts_budget_id_period_key_threshold"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=_BIG)
    budget_id: str = Field(max_length=64)
    period_key: str = Field(max_length=32)
    #: Percent of the amount: 50, 80 or 100.
    threshold: int
    spent_micro_usd: int = Field(sa_type=BigInteger)
    created_at: datetime = Field(sa_type=DateTime(timezone=True))


class CallLogRecord(SQLModel, table=True):
    """One HTTP call through the edge, from Envoy's access log (denials included).

    Not unique on request_id: the log is evidence of what Envoy saw, and a batch
    must never be refused because of one odd entry."""

    __tablename__ = "call_log"
    __table_args__ = (
        # ListCalls: one tenant's calls, newest first.
        Index("ix_call_log_tenant_id_id", "tenant_id", "id"),
        # Retention: the oldest rows first.
        Index("ix_call_log_start_time", "start_time"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=_BIG)
    request_id: str = Field(max_length=128, index=True)
    #: "" for calls auth refused (no caller identity): never listed to a tenant.
    tenant_id: str = Field(max_length=64, default="")
    key_id: str = Field(max_length=64, default="")
    start_time: datetime = Field(sa_type=DateTime(timezone=True))
    http_method: str = Field(max_length=16, default="")
    #: The client's path (before transcoding), secret-looking query values redacted.
    path: str = Field(max_length=1024, default="")
    response_code: int = 0
    #: Envoy's short response flags, comma-separated (e.g. "UAEX", "RL,UH").
    response_flags: str = Field(max_length=128, default="")
    duration_ms: int = Field(default=0, sa_type=BigInteger)
    request_bytes: int = Field(default=0, sa_type=BigInteger)
    response_bytes: int = Field(default=0, sa_type=BigInteger)
    upstream_cluster: str = Field(max_length=128, default="")
    upstream_host: str = Field(max_length=256, default="")


class CallBody(SQLModel, table=True):
    """The redacted request and response bodies of a call whose API opted in."""

    __tablename__ = "call_bodies"
    __table_args__ = (Index("ix_call_bodies_created_at", "created_at"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=_BIG)
    request_id: str = Field(max_length=128, unique=True)
    tenant_id: str = Field(max_length=64)
    request_body: str = Field(default="", sa_type=Text)
    response_body: str = Field(default="", sa_type=Text)
    created_at: datetime = Field(sa_type=DateTime(timezone=True))


class RateLimit(SQLModel, table=True):
    """Requests and tokens per minute allowed to one scope (tenant, team, key or alias)
    of a tenant; at most one per scope and scope id."""

    __tablename__ = "rate_limits"
    __table_args__ = (
        UniqueConstraint("tenant_id", "scope", "scope_id",
                         name="uq_rate_limits_tenant_id_scope_scope_id"),
    )

    rate_limit_id: str = Field(primary_key=True, max_length=64)
    tenant_id: str = Field(max_length=64)
    #: "tenant", "team", "key" or "alias".
    scope: str = Field(max_length=16)
    #: The tenant, team or key id, or the model alias.
    scope_id: str = Field(max_length=256)
    #: 0: no limit of that kind.
    requests_per_minute: int = Field(default=0, sa_type=BigInteger)
    tokens_per_minute: int = Field(default=0, sa_type=BigInteger)
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))


class PriceVersion(SQLModel, table=True):
    """A price of a provider model set by a platform admin, in force from a date.
    Gateway-wide (no tenant); the shipped list prices are not stored here."""

    __tablename__ = "prices"
    __table_args__ = (
        UniqueConstraint("provider", "model", "effective_date",
                         name="uq_prices_provider_model_effective_date"),
    )

    price_id: str = Field(primary_key=True, max_length=64)
    #: The router's provider type ("openai", "anthropic", ...).
    provider: str = Field(max_length=32)
    model: str = Field(max_length=256)
    #: UTC date from which the version is in force.
    effective_date: date = Field(sa_type=Date)
    #: USD per million tokens as canonical decimal text ("2.5"): exact on every
    #: backend (SQLite has no exact NUMERIC), never a float.
    input_usd_per_mtok: str = Field(max_length=32)
    output_usd_per_mtok: str = Field(max_length=32)
    cached_input_usd_per_mtok: str = Field(max_length=32)
    #: The principal who set it (user:usr_…, service_account:sa_… or key:key_…).
    created_by: str = Field(max_length=128, default="")
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
