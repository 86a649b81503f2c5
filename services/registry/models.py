"""Registry tables: the API catalog."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, UniqueConstraint
from sqlmodel import Field, SQLModel


class Api(SQLModel, table=True):
    """An API offered as a product by a tenant."""

    __tablename__ = "apis"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_apis_tenant_name"),)

    #: Stable insertion order, the pagination cursor.
    seq: int | None = Field(default=None, primary_key=True)
    id: str = Field(max_length=64, unique=True)
    tenant_id: str = Field(max_length=64, index=True)
    name: str = Field(max_length=64)
    kind: str = Field(max_length=16)
    description: str = Field(default="", max_length=2000)
    model_aliases: list[str] = Field(default_factory=list, sa_type=JSON)
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
