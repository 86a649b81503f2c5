"""The registry's audit log: append-only and hash-chained.

Each event's hash is sha256 over the previous event's hash and the event's own
fields (canonical JSON), so editing, deleting or reordering any row breaks
every hash after it; `verify` recomputes the chain. Appends first write the
chain head row (its row lock on PostgreSQL, the write lock on SQLite), so
concurrent changes form one chain in commit order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import update
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from lockgate.identity import Identity
from lockgate.ids import new_id
from services.registry.models import AuditEvent, ChainHead

#: The fields a hash covers, in order (never the hashes themselves).
_HASHED = ("seq", "id", "tenant_id", "actor", "action", "object_type", "object_id",
           "before_digest", "after_digest", "decision_id", "created_at", "prev_hash")


def digest(obj: SQLModel | dict[str, Any] | None) -> str:
    if obj is None:
        return ""
    data = obj if isinstance(obj, dict) else obj.model_dump()
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()


def event_hash(event: AuditEvent) -> str:
    created = event.created_at if event.created_at.tzinfo else event.created_at.replace(tzinfo=UTC)
    fields = {name: getattr(event, name) for name in _HASHED}
    fields["created_at"] = created.isoformat()
    return hashlib.sha256(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)).hexdigest()


def actor_of(caller: Identity | None) -> str:
    if caller is None:
        return "system"
    return caller.principal or f"key:{caller.key_id}"


async def append(
    session: AsyncSession, caller: Identity | None, action: str, tenant_id: str,
    object_type: str, object_id: str, before: str, after: Any, decision_id: str = "",
) -> AuditEvent:
    # Lock the chain head with a write (a row lock on PostgreSQL; SQLite's write lock, which
    # a SELECT does not take) before the pending change-feed rows are flushed. The lock is
    # held to commit: appends form one chain, and feed seqs are drawn in commit order, so
    # the watch hub, reading the feed after its last seq, never skips a late commit.
    with session.no_autoflush:
        await session.exec(update(ChainHead).where(col(ChainHead.id) == 1)
                           .values(last_seq=ChainHead.last_seq))
        head = (await session.exec(select(ChainHead).where(ChainHead.id == 1))).one()
    await session.flush()
    event = AuditEvent(
        seq=head.last_seq + 1, id=new_id("raud"), tenant_id=tenant_id, actor=actor_of(caller),
        action=action, object_type=object_type, object_id=object_id, before_digest=before,
        after_digest=digest(after), decision_id=decision_id,
        created_at=datetime.now(UTC),
        prev_hash=head.last_hash, hash="",
    )
    event.hash = event_hash(event)
    head.last_seq, head.last_hash = event.seq, event.hash
    session.add(event)
    session.add(head)
    return event


@dataclass(frozen=True, slots=True)
class Verdict:
    intact: bool
    events: int
    first_bad_seq: int = 0
    problem: str = ""


async def verify(session: AsyncSession, batch: int = 1000) -> Verdict:
    """Walk the whole chain; the first event that does not fit is reported."""
    previous_hash, expected_seq, count, last_seq = "", 1, 0, 0
    while True:
        rows = (await session.exec(
            select(AuditEvent).where(col(AuditEvent.seq) > last_seq)
            .order_by(col(AuditEvent.seq)).limit(batch)
        )).all()
        if not rows:
            break
        for event in rows:
            count += 1
            if event.seq != expected_seq:
                return Verdict(False, count, event.seq or 0,
                               f"event {expected_seq} is missing (next is {event.seq})")
            if event.prev_hash != previous_hash:
                return Verdict(False, count, event.seq, "prev_hash does not match the chain")
            if event_hash(event) != event.hash:
                return Verdict(False, count, event.seq, "the event was changed after it was written")
            previous_hash, expected_seq, last_seq = event.hash, expected_seq + 1, event.seq
    head = (await session.exec(select(ChainHead).where(ChainHead.id == 1))).one()
    if head.last_seq != last_seq or head.last_hash != previous_hash:
        return Verdict(False, count, last_seq + 1, "events after the last one were deleted")
    return Verdict(True, count)
