"""Registry tables: the API catalog. Mirrors migrations/versions (checked by a test)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, DateTime, Index, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

#: 64-bit on PostgreSQL; INTEGER on SQLite, the only type that autoincrements there.
SEQ_TYPE = BigInteger().with_variant(Integer(), "sqlite")


class Api(SQLModel, table=True):
    """An API offered as a product by a tenant."""

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
    #: JSON array of alias names (stored as text on SQLite, json on PostgreSQL).
    model_aliases: list[str] = Field(default_factory=list, sa_type=JSON)
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
