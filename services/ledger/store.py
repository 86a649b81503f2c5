"""Ledger queries. Never commits: the service owns transactions."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.ledger.models import UsageEntry

_TABLE = UsageEntry.__table__


class UsageStore:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def insert_new(self, rows: Sequence[dict]) -> int:
        """Insert rows whose request_id is not recorded yet; returns how many were new."""
        if not rows:
            return 0
        dialect = self.session.bind.dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        # One cached statement, executed for many parameter sets: SQLAlchemy
        # batches them into multi-row INSERTs ("insertmanyvalues").
        stmt = (
            insert(_TABLE)
            .on_conflict_do_nothing(index_elements=["request_id"])
            .returning(_TABLE.c.id)
        )
        result = await self.session.execute(stmt, list(rows))
        return len(result.all())

    async def list_recent(
        self, tenant_id: str, limit: int, before_id: int | None
    ) -> list[UsageEntry]:
        query = select(UsageEntry).where(UsageEntry.tenant_id == tenant_id)
        if before_id is not None:
            query = query.where(col(UsageEntry.id) < before_id)
        query = query.order_by(col(UsageEntry.id).desc()).limit(limit)
        return list((await self.session.exec(query)).all())
