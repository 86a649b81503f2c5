"""Rate-limit counters: how many requests and tokens each limit has seen in the
current one-minute window.

Windows are fixed and aligned to the wall-clock minute (epoch milliseconds
floored to a multiple of 60,000), so every ledger replica and Redis agree on
them without talking to each other; a limit resets at the top of each minute.
(A fixed window lets a burst of up to twice the limit straddle a boundary; the
price of O(1) state per limit and a reset time clients can be told exactly.)

Two backends with one interface:
- `MemoryCounters` (default): in the ledger process. Only the current window's
  counts are kept (an ended window is dropped on the next call), and counters
  only exist for limits that are configured, so memory is bounded by the
  number of limits.
- `RedisCounters` (`LOCKGATE_LEDGER_REDIS_URL`): shared by every ledger
  replica. Check-and-add is one Lua script (atomic in Redis); every key
  expires shortly after its window ends. Keys carry the tenant as a hash tag,
  so the keys of one call live in one Redis Cluster slot.

Counter names are built by `counter_name`; a backend adds the window.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger("lockgate.ledger.rate_counters")

WINDOW_MS = 60_000
#: What a counter counts.
REQUESTS, TOKENS = "req", "tok"
#: Redis keys outlive their window by this much (clock skew between replicas).
EXPIRY_SLACK_MS = 5_000


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Window:
    """One fixed minute: [start_ms, start_ms + 60 s)."""

    start_ms: int

    @classmethod
    def at(cls, epoch_ms: int) -> Window:
        return cls(epoch_ms - epoch_ms % WINDOW_MS)

    @property
    def end_ms(self) -> int:
        return self.start_ms + WINDOW_MS

    def reset_ms(self, now_ms: int) -> int:
        """Milliseconds from now until this window ends (0 once it has)."""
        return max(0, self.end_ms - now_ms)


def counter_name(kind: str, tenant_id: str, scope: str, scope_id: str) -> str:
    """The name of one limit's counter. The tenant is a Redis hash tag (`{…}`):
    tenant ids never contain braces or colons; the scope id comes last, so a
    colon in an alias cannot make two names equal."""
    return f"{{{tenant_id}}}:{kind}:{scope}:{scope_id}"


class CountersUnavailable(Exception):
    """The shared counters cannot be reached (callers fail open)."""


class RateCounters(Protocol):
    backend: str

    async def acquire(
        self, window: Window, names: Sequence[str], limits: Sequence[int], hits: int
    ) -> tuple[bool, list[int]]:
        """All or nothing: when every counter plus `hits` stays within its limit, add
        `hits` to every counter. Returns (acquired, each counter's count after)."""
        ...

    async def add(self, window: Window, names: Sequence[str], amount: int) -> None:
        """Add `amount` to every counter (no limit check; a negative amount takes
        back what was counted)."""
        ...

    async def read(self, window: Window, names: Sequence[str]) -> list[int]:
        ...

    async def close(self) -> None: ...


class MemoryCounters:
    """Counters of one ledger process. Every method runs without awaiting, so
    check-and-add is atomic on the event loop without a lock."""

    backend = "memory"

    def __init__(self, clock_ms: Callable[[], int] = wall_clock_ms):
        self._clock_ms = clock_ms
        self._windows: dict[int, dict[str, int]] = {}

    def _counts(self, window: Window) -> dict[str, int] | None:
        """The window's counts; None once it has ended. Ended windows are dropped."""
        now = self._clock_ms()
        for start in [s for s in self._windows if s + WINDOW_MS <= now]:
            del self._windows[start]
        if window.end_ms <= now:
            return None
        return self._windows.setdefault(window.start_ms, {})

    async def acquire(
        self, window: Window, names: Sequence[str], limits: Sequence[int], hits: int
    ) -> tuple[bool, list[int]]:
        counts = self._counts(window)
        if counts is None:
            return True, [0] * len(names)
        current = [counts.get(name, 0) for name in names]
        if any(c + hits > limit for c, limit in zip(current, limits, strict=True)):
            return False, current
        for name in names:
            counts[name] = counts.get(name, 0) + hits
        return True, [c + hits for c in current]

    async def add(self, window: Window, names: Sequence[str], amount: int) -> None:
        counts = self._counts(window)
        if counts is None:
            return  # an ended window no longer limits anything
        for name in names:
            # Never below 0: requests handed back to a ledger that restarted
            # since they were counted must not make room beyond the limit.
            counts[name] = max(0, counts.get(name, 0) + amount)

    async def read(self, window: Window, names: Sequence[str]) -> list[int]:
        counts = self._counts(window)
        if counts is None:
            return [0] * len(names)
        return [counts.get(name, 0) for name in names]

    def __len__(self) -> int:
        """Counters held (all windows): for tests of the memory bound."""
        return sum(len(c) for c in self._windows.values())

    async def close(self) -> None:
        self._windows.clear()


# KEYS: the counters; ARGV[1]: hits, ARGV[2]: when they expire (unix ms), ARGV[2 + i]:
# limit of KEYS[i].
# Returns {acquired (1/0), count 1, count 2, ...}.
_ACQUIRE = """
local hits = tonumber(ARGV[1])
local counts = redis.call('MGET', unpack(KEYS))
local acquired = 1
for i = 1, #KEYS do
  counts[i] = tonumber(counts[i]) or 0
  if counts[i] + hits > tonumber(ARGV[2 + i]) then acquired = 0 end
end
if acquired == 1 then
  for i = 1, #KEYS do
    counts[i] = redis.call('INCRBY', KEYS[i], hits)
    redis.call('PEXPIREAT', KEYS[i], ARGV[2])
  end
end
table.insert(counts, 1, acquired)
return counts
"""


class RedisCounters:
    """Counters shared by every ledger replica, in Redis.

    Every call is bounded by `timeout` seconds in total (pool wait, connect,
    command). A failure raises CountersUnavailable, and after a connection
    failure or timeout Redis is left alone for `down_seconds` (calls raise at
    once), so an outage costs the edge nothing while it lasts."""

    backend = "redis"

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "lockgate:rl:",
        timeout: float = 0.05,
        max_connections: int = 64,
        down_seconds: float = 1.0,
    ):
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("the ledger's redis_url must be a redis://, rediss:// or unix:// URL")
        self.key_prefix = key_prefix
        self.timeout = timeout
        self.down_seconds = down_seconds
        self._down_until = 0.0
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._redis = aioredis.Redis.from_pool(pool)
        self._acquire = self._redis.register_script(_ACQUIRE)

    def _keys(self, window: Window, names: Sequence[str]) -> list[str]:
        return [f"{self.key_prefix}{name}:{window.start_ms // 1000}" for name in names]

    @staticmethod
    def _expires_at_ms(window: Window) -> int:
        """An absolute time: a command that waited in a queue (a busy ledger, a slow
        pool) still expires its keys at the same moment after their window."""
        return window.end_ms + EXPIRY_SLACK_MS

    async def _run(self, op: str, call):
        if time.monotonic() < self._down_until:
            raise CountersUnavailable("redis is unavailable (retrying shortly)")
        try:
            async with asyncio.timeout(self.timeout):
                return await call()
        except (RedisError, OSError, TimeoutError) as exc:
            # Unreachable or slow: stop trying for a moment. A Redis error reply
            # means it is up, so later calls still try.
            unreachable = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)
            if isinstance(exc, unreachable):
                self._down_until = time.monotonic() + self.down_seconds
            raise CountersUnavailable(
                f"redis {op} failed ({type(exc).__name__}: {str(exc)[:200] or 'timed out'})"
            ) from exc

    async def acquire(
        self, window: Window, names: Sequence[str], limits: Sequence[int], hits: int
    ) -> tuple[bool, list[int]]:
        if not names:
            return True, []
        keys = self._keys(window, names)
        args = [hits, self._expires_at_ms(window), *limits]
        reply = await self._run("acquire", lambda: self._acquire(keys=keys, args=args))
        return bool(int(reply[0])), [int(c) for c in reply[1:]]

    async def add(self, window: Window, names: Sequence[str], amount: int) -> None:
        if not names:
            return
        keys, expires_at = self._keys(window, names), self._expires_at_ms(window)

        async def call():
            async with self._redis.pipeline(transaction=True) as pipe:
                for key in keys:
                    pipe.incrby(key, amount)
                    pipe.pexpireat(key, expires_at)
                await pipe.execute()

        await self._run("add", call)

    async def read(self, window: Window, names: Sequence[str]) -> list[int]:
        if not names:
            return []
        keys = self._keys(window, names)
        values = await self._run("read", lambda: self._redis.mget(keys))
        return [int(v) if v is not None else 0 for v in values]

    async def close(self) -> None:
        try:
            await self._redis.aclose()
        except (RedisError, OSError) as exc:
            log.debug("rate counters: closing redis failed: %s", type(exc).__name__)


def build_counters(redis_url: str = "") -> RateCounters:
    """Redis when a URL is configured, else in-process counters."""
    return RedisCounters(redis_url) if redis_url else MemoryCounters()
