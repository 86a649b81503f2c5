"""Background work that keeps every auth replica's caches true and key
metadata current, off the Check path:

- ChangeFeed: polls the `auth_changes` rows written with every revocation,
  rotation, key update and owner change, and drops the cached principals they
  name — on every replica, within one poll interval (250 ms by default), so a
  revoked key stops working everywhere within a second.
- LastUsed: Check notes which keys were used; a flush every few seconds writes
  their last-used times in one transaction (never one write per request).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from lockgate.periodic import Periodic
from services.auth.principals import PrincipalCache
from services.auth.store import AuthStore

log = logging.getLogger("lockgate.auth.changes")

#: Rows older than this are pruned: a replica that was away longer starts cold.
KEEP_CHANGES = timedelta(minutes=10)
BATCH = 1000


class ChangeFeed(Periodic):
    def __init__(self, sessions: async_sessionmaker[AsyncSession], cache: PrincipalCache,
                 interval: float = 0.25):
        super().__init__("auth-change-feed", interval, self.tick, immediately=True)
        self.sessions = sessions
        self.cache = cache
        self.last_seq: int | None = None
        self._ticks = 0

    async def tick(self) -> None:
        if self.last_seq is None:
            # The cache starts empty: only changes from now on matter.
            async with self.sessions() as session:
                self.last_seq = await AuthStore(session).last_change()
            return
        async with self.sessions() as session:
            store = AuthStore(session)
            rows = await store.changes_after(self.last_seq, BATCH)
        if rows:
            self.last_seq = rows[-1].seq or self.last_seq
            keys = {r.subject_id for r in rows if r.subject_kind == "key"}
            owners = {r.subject_id for r in rows if r.subject_kind == "owner"}
            self.cache.drop(keys, owners)
        self._ticks += 1
        if self._ticks % 2400 == 0:  # about every 10 minutes at 250 ms
            async with self.sessions() as session, session.begin():
                await AuthStore(session).prune_changes(datetime.now(UTC) - KEEP_CHANGES)


class LastUsed(Periodic):
    def __init__(self, sessions: async_sessionmaker[AsyncSession], interval: float = 5.0,
                 max_pending: int = 100_000):
        super().__init__("auth-last-used", interval, self.tick)
        self.sessions = sessions
        self.max_pending = max_pending
        self._pending: dict[str, datetime] = {}

    def note(self, key_id: str) -> None:
        """Remember a use (bounded: beyond max_pending, new keys wait for the next flush)."""
        if key_id in self._pending or len(self._pending) < self.max_pending:
            self._pending[key_id] = datetime.now(UTC)

    async def tick(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        async with self.sessions() as session, session.begin():
            await AuthStore(session).touch_keys(pending)

    async def close(self) -> None:
        """Stop, then write what is pending."""
        await super().close()
        try:
            await self.tick()
        except Exception:  # noqa: BLE001 - shutting down; last-used times are advisory
            log.warning("last-used flush failed at shutdown", exc_info=True)
