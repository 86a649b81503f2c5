"""Call log queries. Never commits: the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel.ext.asyncio.session import AsyncSession

from lockgate.bulk_insert import BulkInsert
from lockgate.db import in_fixed_shapes
from services.ledger.models import CallBody, CallLogRecord, UsageEntry

_LOG = CallLogRecord.__table__
_BODIES = CallBody.__table__
_USAGE = UsageEntry.__table__
#: Every column but the generated id, in the order call records are inserted.
CALL_COLUMNS = tuple(c.name for c in _LOG.columns if c.name != "id")
_INSERT_CALLS = BulkInsert(_LOG, CALL_COLUMNS)


class CallLogStore:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def insert_calls(self, rows: Sequence[dict]) -> None:
        """The whole batch in one executemany of one prepared INSERT
        (lockgate/bulk_insert.py: one row per call through the edge)."""
        await _INSERT_CALLS.run(self.session, rows)

    async def insert_bodies(self, rows: Sequence[dict]) -> None:
        """Bodies of newly recorded entries; one already stored for a request id is kept."""
        if not rows:
            return
        dialect = self.session.bind.dialect.name
        insert_of = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = insert_of(_BODIES).on_conflict_do_nothing(index_elements=["request_id"])
        for chunk in in_fixed_shapes(rows):
            await self.session.execute(stmt, list(chunk))

    async def list_recent(
        self, tenant_id: str, limit: int, before_id: int | None, request_id: str = ""
    ) -> list[CallLogRecord]:
        """Newest first, on the (tenant_id, id) index."""
        query = select(CallLogRecord).where(_LOG.c.tenant_id == tenant_id)
        if request_id:
            query = query.where(_LOG.c.request_id == request_id)
        if before_id is not None:
            query = query.where(_LOG.c.id < before_id)
        query = query.order_by(_LOG.c.id.desc()).limit(limit)
        return list((await self.session.execute(query)).scalars().all())

    async def usage_of(self, tenant_id: str, request_ids: Sequence[str]) -> dict[str, UsageEntry]:
        """The usage entries of these requests that belong to the tenant."""
        if not request_ids:
            return {}
        query = select(UsageEntry).where(
            _USAGE.c.tenant_id == tenant_id, _USAGE.c.request_id.in_(set(request_ids))
        )
        return {u.request_id: u for u in (await self.session.execute(query)).scalars()}

    async def bodies_of(self, tenant_id: str, request_ids: Sequence[str]) -> dict[str, CallBody]:
        if not request_ids:
            return {}
        query = select(CallBody).where(
            _BODIES.c.tenant_id == tenant_id, _BODIES.c.request_id.in_(set(request_ids))
        )
        return {b.request_id: b for b in (await self.session.execute(query)).scalars()}

    async def prune_calls(self, before: datetime, limit: int) -> int:
        """Delete up to `limit` call records that started before `before`; how many went."""
        oldest = (
            select(_LOG.c.id).where(_LOG.c.start_time < before)
            .order_by(_LOG.c.start_time).limit(limit)  # on the start_time index
        )
        result = await self.session.execute(delete(_LOG).where(_LOG.c.id.in_(oldest)))
        return result.rowcount or 0

    async def prune_bodies(self, before: datetime, limit: int) -> int:
        oldest = (
            select(_BODIES.c.id).where(_BODIES.c.created_at < before)
            .order_by(_BODIES.c.created_at).limit(limit)
        )
        result = await self.session.execute(delete(_BODIES).where(_BODIES.c.id.in_(oldest)))
        return result.rowcount or 0
