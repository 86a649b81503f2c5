"""Logged bodies arriving with usage entries: taken out of the entries (they never
go to usage_entries) and stored in call_bodies, in RecordUsage's transaction.

The router fills an entry's request_body / response_body only for APIs that
opted in to body logging, already redacted and bounded (services/router/call_bodies.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from services.ledger.call_log_store import CallLogStore

BODY_FIELDS = ("request_body", "response_body")


@dataclass(frozen=True, slots=True)
class Bodies:
    tenant_id: str
    request_body: str
    response_body: str


def pop_bodies(entries: Iterable[dict]) -> dict[str, Bodies]:
    """Remove the body fields from each entry; the non-empty ones by request id."""
    found: dict[str, Bodies] = {}
    for entry in entries:
        request_body = entry.pop("request_body", "") or ""
        response_body = entry.pop("response_body", "") or ""
        if request_body or response_body:
            found[entry["request_id"]] = Bodies(entry["tenant_id"], request_body, response_body)
    return found


async def store_bodies(
    session: AsyncSession, bodies: dict[str, Bodies], new_request_ids: set[str]
) -> None:
    """Insert the bodies of the entries recorded for the first time (a resent
    entry's bodies are already there)."""
    now = datetime.now(UTC)
    rows = [
        {"request_id": request_id, "tenant_id": b.tenant_id, "request_body": b.request_body,
         "response_body": b.response_body, "created_at": now}
        for request_id, b in bodies.items() if request_id in new_request_ids
    ]
    if rows:
        await CallLogStore(session).insert_bodies(rows)
