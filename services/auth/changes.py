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

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from services.auth.principals import PrincipalCache
from services.auth.store import AuthStore

log = logging.getLogger("lockgate.auth.changes")

#: Rows older than this are pruned: a replica that was away longer starts cold.
KEEP_CHANGES = timedelta(minutes=10)
BATCH = 1000


class _Loop:
    """start() / close() around a periodic `tick`, as GrpcService.background expects."""

    interval: float

    def __init__(self) -> None:
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self.final()

    async def final(self) -> None:
        """Work to finish on shutdown."""

    async def _run(self) -> None:
        await self.first()
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.tick()
            except Exception:  # noqa: BLE001 - a database blip must not end the loop
                log.warning("%s failed; retrying", type(self).__name__, exc_info=True)

    async def first(self) -> None:
        """Work before the first interval."""

    async def tick(self) -> None:
        raise NotImplementedError


class ChangeFeed(_Loop):
    def __init__(self, sessions: async_sessionmaker[AsyncSession], cache: PrincipalCache,
                 interval: float = 0.25):
        super().__init__()
        self.sessions = sessions
        self.cache = cache
        self.interval = interval
        self.last_seq = 0
        self._ticks = 0

    async def first(self) -> None:
        # The cache starts empty: only changes from now on matter.
        async with self.sessions() as session:
            self.last_seq = await AuthStore(session).last_change()

    async def tick(self) -> None:
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


class LastUsed(_Loop):
    def __init__(self, sessions: async_sessionmaker[AsyncSession], interval: float = 5.0,
                 max_pending: int = 100_000):
        super().__init__()
        self.sessions = sessions
        self.interval = interval
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

    async def final(self) -> None:
        try:
            await self.tick()
        except Exception:  # noqa: BLE001 - shutting down; last-used times are advisory
            log.warning("last-used flush failed at shutdown", exc_info=True)
