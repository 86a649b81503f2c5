"""Resolved credentials (principals) and the bounded TTL cache that keeps Check
off the database.

A principal is what a key (or a JWT) stands for right now: its owner's tenant,
the team it acts in, and its effective roles — the key's roles limited to
what the owner holds today. The cache's TTL bounds staleness only as a last
resort: every change that can alter a principal is written to the change feed,
and every replica drops what the feed names within a poll interval (see
services/auth/changes.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger("lockgate.auth.principals")

#: Seconds past its TTL an expired principal may still be used while it is being
#: re-read: long enough for a read behind a burst of Checks, short enough that a
#: database outage does not stretch the TTL's backstop much (docs/security.md).
STALE_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    tenant_id: str
    tenant_name: str
    roles: tuple[str, ...]
    models: tuple[str, ...]
    #: "active", "revoked" or "disabled" (the owner is disabled or gone);
    #: "expired" is derived at use time from expires_at (see effective_status).
    status: str
    team_id: str = ""
    owner_kind: str = ""
    owner_id: str = ""
    scopes: tuple[str, ...] = ()
    #: Unix time after which the credential no longer works; None: never.
    expires_at: float | None = None

    def effective_status(self, now: float | None = None) -> str:
        if self.status == "active" and self.expires_at is not None:
            if (now if now is not None else time.time()) >= self.expires_at:
                return "expired"
        return self.status

    def as_policy_input(self, now: float | None = None) -> dict:
        return {
            "key_id": self.key_id,
            "tenant_id": self.tenant_id,
            "tenant_name": self.tenant_name,
            "team_id": self.team_id,
            "kind": self.owner_kind,
            "id": self.owner_id,
            "roles": list(self.roles),
            "models": list(self.models),
            "scopes": list(self.scopes),
            "status": self.effective_status(now),
        }


class PrincipalCache:
    """Credential hash -> Principal (or None for unknown keys), LRU-bounded, with TTL.

    - **One load per credential at a time.** Checks that miss an entry while
      it is being read wait for that read, instead of each making its own (a
      burst of identical queries every TTL, in the tail of every Check).
    - **An expired principal is used while it is re-read** (for at most
      `stale_seconds` past its expiry): a hot key's Checks never wait for the
      database, which under a burst answers only as fast as the event loop
      gets round to it (Envoy fails a Check closed after 2 s). Revocations do
      not wait for the TTL: the change feed drops their entries (`drop`).
    - **A load that a drop or clear overtakes** answers its callers but is not
      cached: what it read may be what the change just revoked.
    """

    def __init__(self, ttl_seconds: float, max_entries: int = 100_000, negative_ttl: float = 2.0,
                 stale_seconds: float | None = None):
        self.ttl = ttl_seconds
        self.negative_ttl = negative_ttl
        self.max_entries = max_entries
        #: How long past its expiry a principal may be used while it is re-read
        #: (default: STALE_SECONDS, or the TTL if shorter). Unknown keys are never
        #: used stale.
        self.stale_seconds = (min(ttl_seconds, STALE_SECONDS) if stale_seconds is None
                              else stale_seconds)
        self._entries: OrderedDict[str, tuple[float, Principal | None]] = OrderedDict()
        #: Loads in flight, by credential hash (at most one each).
        self._loading: dict[str, asyncio.Task[Principal | None]] = {}
        #: Bumped by every drop and clear: a load that started before one is not cached.
        self._generation = 0

    async def get(
        self, key_hash: str, load: Callable[[], Awaitable[Principal | None]]
    ) -> Principal | None:
        hit = self._entries.get(key_hash)
        if hit is not None:
            expires, principal = hit
            now = time.monotonic()
            if expires > now:
                self._entries.move_to_end(key_hash)
                return principal
            if principal is not None and now < expires + self.stale_seconds:
                self._reload(key_hash, load)
                return principal
        # Shielded: a caller that goes away (its client hung up) does not cancel
        # the load the others wait for.
        return await asyncio.shield(self._reload(key_hash, load))

    def _reload(self, key_hash: str, load: Callable[[], Awaitable[Principal | None]]
                ) -> asyncio.Task[Principal | None]:
        """The load of this credential in flight, started now if there is none."""
        task = self._loading.get(key_hash)
        if task is None:
            task = asyncio.ensure_future(self._load(key_hash, load, self._generation))
            self._loading[key_hash] = task
            task.add_done_callback(functools.partial(self._loaded, key_hash))
        return task

    def _loaded(self, key_hash: str, task: asyncio.Task[Principal | None]) -> None:
        if self._loading.get(key_hash) is task:
            del self._loading[key_hash]
        if not task.cancelled() and task.exception() is not None:
            # Retrieved here too: a background re-read may have no caller at all.
            log.warning("key lookup failed", extra={"error": str(task.exception())})

    async def _load(self, key_hash: str, load: Callable[[], Awaitable[Principal | None]],
                    generation: int) -> Principal | None:
        principal = await load()
        if generation == self._generation:
            ttl = self.ttl if principal is not None else self.negative_ttl
            self._entries[key_hash] = (time.monotonic() + ttl, principal)
            self._entries.move_to_end(key_hash)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return principal

    def drop(self, key_ids: set[str] = frozenset(), owner_ids: set[str] = frozenset()) -> int:
        """Forget the principals of these keys and of every key of these owners."""
        if not key_ids and not owner_ids:
            return 0
        self._generation += 1
        stale = [
            key_hash
            for key_hash, (_, principal) in self._entries.items()
            if principal is not None
            and (principal.key_id in key_ids or principal.owner_id in owner_ids)
        ]
        for key_hash in stale:
            del self._entries[key_hash]
        return len(stale)

    def drop_key(self, key_id: str) -> None:
        self.drop(key_ids={key_id})

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()
