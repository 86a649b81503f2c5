"""Call log use cases: list a tenant's calls through the edge, newest first, each
with its usage entry (same request id and tenant) and its logged bodies.

Records come from Envoy's access log (services/ledger/als.py); calls auth
refused carry no tenant and are never listed. Bodies (only for APIs that opted
in, already redacted) are shown to tenant and platform admins, and to the key
that made the call: the call log is the tenant's, its payloads are not every
member's.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from lockgate.errors import InvalidRequest
from lockgate.identity import Identity
from lockgate.pagination import decode_cursor, page_of, page_size
from services.ledger.call_log_store import CallLogStore
from services.ledger.models import CallBody, CallLogRecord, UsageEntry

#: Roles that may read every logged body of their tenant.
BODY_READERS = ("tenant_admin", "platform_admin")
MAX_REQUEST_ID = 128


@dataclass(frozen=True, slots=True)
class CallView:
    record: CallLogRecord
    usage: UsageEntry | None = None
    bodies: CallBody | None = None


def may_read_bodies(caller: Identity, record: CallLogRecord) -> bool:
    if any(role in caller.roles for role in BODY_READERS):
        return True
    return bool(caller.key_id) and caller.key_id == record.key_id


class CallLogService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self.sessions = sessions

    async def list_calls(
        self, caller: Identity, requested_size: int, page_token: str, request_id: str = ""
    ) -> tuple[list[CallView], str]:
        if len(request_id) > MAX_REQUEST_ID:
            raise InvalidRequest(f"request_id: at most {MAX_REQUEST_ID} characters",
                                 param="request_id")
        size = page_size(requested_size)
        before = decode_cursor(page_token)
        async with self.sessions() as session:
            store = CallLogStore(session)
            rows = await store.list_recent(caller.tenant_id, size + 1, before, request_id)
            rows, token = page_of(rows, size, lambda r: r.id)
            ids = [r.request_id for r in rows]
            usage = await store.usage_of(caller.tenant_id, ids)
            readable = [r.request_id for r in rows if may_read_bodies(caller, r)]
            bodies = await store.bodies_of(caller.tenant_id, readable)
        return [
            CallView(r, usage.get(r.request_id),
                     bodies.get(r.request_id) if r.request_id in readable else None)
            for r in rows
        ], token
