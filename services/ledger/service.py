"""Ledger use cases: record usage idempotently, list and aggregate a tenant's usage,
and when an API version was last called."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from lockgate.errors import InvalidRequest
from lockgate.pagination import decode_cursor, page_of, page_size
from services.ledger.analytics import UsageRow, usage_query
from services.ledger.call_bodies import pop_bodies, store_bodies
from services.ledger.models import UsageEntry
from services.ledger.store import UsageStore

log = logging.getLogger("lockgate.ledger")

#: Bound on one RecordUsage batch.
MAX_BATCH = 1000


class UsageListener(Protocol):
    """Told of every entry the ledger records for the first time (never of a
    duplicate), after its transaction committed: budgets settle reservations
    and count spend, token rate limits count tokens."""

    async def usage_recorded(self, entries: Sequence[dict]) -> None: ...


@dataclass(frozen=True, slots=True)
class RecordResult:
    inserted: int
    duplicates: int


class LedgerService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        listeners: Sequence[UsageListener] = (),
    ):
        self.sessions = sessions
        self.listeners = list(listeners)

    async def record(self, entries: list[dict]) -> RecordResult:
        """Write entries not seen before (by request_id). Safe to retry."""
        if len(entries) > MAX_BATCH:
            raise InvalidRequest(f"at most {MAX_BATCH} entries per call", param="entries")
        unique: dict[str, dict] = {}
        for entry in entries:
            request_id = entry.get("request_id")
            if not request_id:
                raise InvalidRequest("every entry needs a request_id", param="request_id")
            if not entry.get("tenant_id"):
                raise InvalidRequest("every entry needs a tenant_id", param="tenant_id")
            if entry.get("created_at") is None:
                entry["created_at"] = datetime.now(UTC)
            unique.setdefault(request_id, entry)
        bodies = pop_bodies(unique.values())  # to call_bodies, never to usage_entries
        # The ticket a call was admitted on settles its reservation; not stored.
        admission_ids = {request_id: entry.pop("admission_id", "")
                         for request_id, entry in unique.items()}
        async with self.sessions() as session, session.begin():
            inserted = await UsageStore(session).insert_new(list(unique.values()))
            await store_bodies(session, bodies, inserted)
        if inserted and self.listeners:
            new = [entry for request_id, entry in unique.items() if request_id in inserted]
            for entry in new:
                entry["admission_id"] = admission_ids[entry["request_id"]]
            for listener in self.listeners:
                try:
                    await listener.usage_recorded(new)
                except Exception:  # the entries are durable; counters catch up on reload
                    log.exception("usage listener failed", extra={"listener": type(listener).__name__})
        return RecordResult(inserted=len(inserted), duplicates=len(entries) - len(inserted))

    async def list_usage(
        self, tenant_id: str, requested_size: int, page_token: str
    ) -> tuple[list[UsageEntry], str]:
        size = page_size(requested_size)
        before = decode_cursor(page_token)
        async with self.sessions() as session:
            rows = await UsageStore(session).list_recent(tenant_id, size + 1, before)
        return page_of(rows, size, lambda entry: entry.id)

    async def query_usage(
        self,
        tenant_id: str,
        *,
        bucket: str = "",
        group_by: list[str] | tuple[str, ...] = (),
        start: datetime | None = None,
        end: datetime | None = None,
        order_by: str = "",
        limit: int = 0,
    ) -> tuple[list[UsageRow], datetime, datetime]:
        """Aggregated usage of one tenant -> (rows, start, end of the range queried)."""
        query = usage_query(
            tenant_id, bucket=bucket, group_by=group_by, start=start, end=end,
            order_by=order_by, limit=limit,
        )
        async with self.sessions() as session:
            rows = await UsageStore(session).aggregate(query)
        return rows, query.start, query.end

    async def last_call(self, api_id: str, api_version: str) -> datetime | None:
        """When (api_id, api_version) was last called, by any tenant; None if never."""
        if not api_id:
            raise InvalidRequest("api_id is required", param="api_id")
        if not api_version:
            raise InvalidRequest("api_version is required", param="api_version")
        async with self.sessions() as session:
            return await UsageStore(session).last_call(api_id, api_version)
