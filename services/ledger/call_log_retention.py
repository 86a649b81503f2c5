"""Retention of the call log: a background task deletes call records and bodies
older than the retention period, every `interval` seconds (hourly by default).

Deletes go in chunks of `chunk` rows, one short transaction each, with a pause
between chunks: a large backlog (the first run after a long outage, a shorter
retention) never holds a long lock on the tables Envoy's access log writes to.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from lockgate.metrics import Counter
from lockgate.periodic import Periodic
from services.ledger.call_log_store import CallLogStore

log = logging.getLogger("lockgate.ledger.call_log")

PRUNED = Counter("lockgate_ledger_call_log_pruned_total", "Call log rows deleted by retention",
                 ["table"])


@dataclass(frozen=True, slots=True)
class Pruned:
    calls: int
    bodies: int


class CallLogRetention(Periodic):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        retention: timedelta,
        *,
        interval: float = 3600.0,
        chunk: int = 1000,
        pause: float = 0.05,
    ):
        self.sessions = sessions
        self.retention = retention
        self.chunk = chunk
        self.pause = pause
        super().__init__("call-log-prune", interval, self._prune_and_log, immediately=True)

    async def _prune_and_log(self) -> None:
        pruned = await self.prune()
        if pruned.calls or pruned.bodies:
            log.info("call log pruned", extra={"calls": pruned.calls, "bodies": pruned.bodies})

    async def prune(self, now: datetime | None = None) -> Pruned:
        """Delete every call record and body older than the retention period."""
        before = (now or datetime.now(UTC)) - self.retention
        calls = await self._in_chunks(lambda store: store.prune_calls(before, self.chunk))
        PRUNED.labels("call_log").inc(calls)
        bodies = await self._in_chunks(lambda store: store.prune_bodies(before, self.chunk))
        PRUNED.labels("call_bodies").inc(bodies)
        return Pruned(calls, bodies)

    async def _in_chunks(self, delete_chunk) -> int:
        total = 0
        while True:
            async with self.sessions() as session, session.begin():
                deleted = await delete_chunk(CallLogStore(session))
            total += deleted
            if deleted < self.chunk:
                return total
            await asyncio.sleep(self.pause)  # let other writers in between chunks
