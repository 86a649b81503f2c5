"""Auth tables: tenants and API keys (secrets stored only as keyed hashes)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime
from sqlmodel import Field, SQLModel


class Tenant(SQLModel, table=True):
    __tablename__ = "tenants"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(sa_type=DateTime(timezone=True))


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"

    id: str = Field(primary_key=True, max_length=64)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=64)
    name: str = Field(max_length=128)
    #: Public lookup handle: the first characters of the secret after "lg_".
    prefix: str = Field(max_length=32, index=True)
    #: HMAC-SHA256 of the whole secret with the service's pepper (hex).
    secret_hash: str = Field(max_length=64)
    roles: list[str] = Field(default_factory=list, sa_type=JSON)
    models: list[str] = Field(default_factory=list, sa_type=JSON)
    status: str = Field(default="active", max_length=16)
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    revoked_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
