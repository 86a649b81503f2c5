"""Resolving a presented API key to a principal, with a bounded TTL cache.

The cache keeps the hot path (every request's Check) off the database; its TTL
bounds how long a revoked key keeps working on a replica that did not see the
revocation (this replica drops revoked keys at once).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    tenant_id: str
    tenant_name: str
    roles: tuple[str, ...]
    models: tuple[str, ...]
    status: str

    def as_policy_input(self) -> dict:
        return {
            "key_id": self.key_id,
            "tenant_id": self.tenant_id,
            "tenant_name": self.tenant_name,
            "roles": list(self.roles),
            "models": list(self.models),
            "status": self.status,
        }


class PrincipalCache:
    """Key hash -> Principal (or None for unknown keys), LRU-bounded, with TTL."""

    def __init__(self, ttl_seconds: float, max_entries: int = 100_000, negative_ttl: float = 2.0):
        self.ttl = ttl_seconds
        self.negative_ttl = negative_ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, Principal | None]] = OrderedDict()

    async def get(
        self, key_hash: str, load: Callable[[], Awaitable[Principal | None]]
    ) -> Principal | None:
        now = time.monotonic()
        hit = self._entries.get(key_hash)
        if hit is not None and hit[0] > now:
            self._entries.move_to_end(key_hash)
            return hit[1]
        principal = await load()
        ttl = self.ttl if principal is not None else self.negative_ttl
        self._entries[key_hash] = (now + ttl, principal)
        self._entries.move_to_end(key_hash)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return principal

    def drop_key(self, key_id: str) -> None:
        for key_hash, (_, principal) in list(self._entries.items()):
            if principal is not None and principal.key_id == key_id:
                del self._entries[key_hash]
