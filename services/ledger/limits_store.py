"""Rate-limit queries. Never commits: the service owns transactions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.ledger.models import RateLimit

_TABLE = RateLimit.__table__


class RateLimitStore:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def upsert(
        self,
        *,
        new_id: str,
        tenant_id: str,
        scope: str,
        scope_id: str,
        requests_per_minute: int,
        tokens_per_minute: int,
        now: datetime,
    ) -> RateLimit:
        """Insert the limit of (tenant, scope, scope id), or replace its rates (its id
        and create time stay). One statement: concurrent sets of the same scope
        cannot both insert."""
        dialect = self.session.bind.dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = insert(_TABLE).values(
            rate_limit_id=new_id,
            tenant_id=tenant_id,
            scope=scope,
            scope_id=scope_id,
            requests_per_minute=requests_per_minute,
            tokens_per_minute=tokens_per_minute,
            created_at=now,
            updated_at=now,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["tenant_id", "scope", "scope_id"],
            set_={
                "requests_per_minute": stmt.excluded.requests_per_minute,
                "tokens_per_minute": stmt.excluded.tokens_per_minute,
                "updated_at": stmt.excluded.updated_at,
            },
        ).returning(*_TABLE.c)
        row = (await self.session.execute(stmt)).mappings().one()
        return RateLimit(**row)

    async def get(self, tenant_id: str, rate_limit_id: str) -> RateLimit | None:
        query = select(RateLimit).where(
            RateLimit.tenant_id == tenant_id, RateLimit.rate_limit_id == rate_limit_id
        )
        return (await self.session.exec(query)).first()

    async def list_limits(
        self, tenant_id: str, scope: str = "", scope_id: str = ""
    ) -> list[RateLimit]:
        query = select(RateLimit).where(RateLimit.tenant_id == tenant_id)
        if scope:
            query = query.where(RateLimit.scope == scope)
        if scope_id:
            query = query.where(RateLimit.scope_id == scope_id)
        query = query.order_by(col(RateLimit.scope), col(RateLimit.scope_id))
        return list((await self.session.exec(query)).all())

    async def delete(self, tenant_id: str, rate_limit_id: str) -> None:
        await self.session.exec(
            delete(RateLimit).where(
                col(RateLimit.tenant_id) == tenant_id,
                col(RateLimit.rate_limit_id) == rate_limit_id,
            )
        )

    async def all(self) -> list[RateLimit]:
        """Every tenant's limits: the in-memory index is rebuilt from them."""
        return list((await self.session.exec(select(RateLimit))).all())
