"""Ledger tables."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime
from sqlmodel import Field, SQLModel


class UsageEntry(SQLModel, table=True):
    """One metered model call. Immutable once written; request_id is the idempotency key."""

    __tablename__ = "usage_entries"

    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(max_length=128, unique=True)
    tenant_id: str = Field(max_length=64, index=True)
    key_id: str = Field(max_length=64, default="")
    alias: str = Field(max_length=256, default="")
    deployment: str = Field(max_length=256, default="")
    provider: str = Field(max_length=64, default="")
    provider_model: str = Field(max_length=256, default="")
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    estimated: bool = False
    latency_ms: int = 0
    ttft_ms: int = 0
    status: str = Field(max_length=16, default="ok")
    error_type: str = Field(max_length=64, default="")
    streamed: bool = False
    cache_hit: bool = False
    operation: str = Field(max_length=16, default="chat")
    attempts: int = 0
    #: Integer micro-USD (see lockgate/prices.py for the rounding).
    cost_micro_usd: int = 0
    price_source: str = Field(max_length=16, default="")
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
