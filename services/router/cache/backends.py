"""Response cache backends, and the cache's metrics.

`MemoryCache` (default): an LRU bounded in bytes, per process.
`RedisCache`: shared by all router replicas. It fails open: a slow or
unreachable Redis turns lookups into misses and writes into no-ops within
a short, bounded time, and is counted and logged (throttled); a cache
outage never fails or stalls a call. The cache is an optimization, so
availability of calls wins over hit rate.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from lockgate.metrics import Counter, Gauge
from services.router.config import ResponseCacheConfig

log = logging.getLogger("lockgate.router.cache")


_HITS = Counter("lockgate_router_cache_hits_total", "Response cache lookups served", ["backend"])
_MISSES = Counter(
    "lockgate_router_cache_misses_total",
    "Response cache lookups that found nothing (including failed lookups)",
    ["backend"],
)
_WRITES = Counter("lockgate_router_cache_writes_total", "Responses stored", ["backend"])
_SKIPPED = Counter(
    "lockgate_router_cache_skipped_writes_total",
    "Responses not stored (too_large, no_ttl, unavailable: Redis marked down)",
    ["backend", "reason"],
)
_EVICTIONS = Counter(
    "lockgate_router_cache_evictions_total",
    "Entries dropped to stay within the byte bound (LRU)",
    ["backend"],
)
_EXPIRED = Counter(
    "lockgate_router_cache_expired_total", "Entries dropped because their TTL ran out", ["backend"]
)
_BYTES = Gauge(
    "lockgate_router_cache_bytes", "Bytes held by the cache (keys + values)", ["backend"]
)
_ERRORS = Counter(
    "lockgate_router_cache_errors_total",
    "Backend failures; the lookup counted as a miss or the write was skipped",
    ["backend", "op"],
)


@dataclass
class CacheStats:
    """This instance's counts (the Prometheus metrics add up all instances)."""

    hits: int = 0
    misses: int = 0
    writes: int = 0
    skipped: int = 0
    evictions: int = 0
    expired: int = 0
    errors: int = 0
    #: Keys + values held (memory backend; Redis keeps its own accounting).
    bytes: int = 0


class ResponseCache(Protocol):
    backend: str
    stats: CacheStats

    async def get(self, key: str) -> bytes | None:
        """The stored answer, or None (absent, expired, or backend unavailable)."""
        ...

    async def put(self, key: str, value: bytes, ttl_seconds: int) -> None:
        """Store for `ttl_seconds` (<= 0: not stored); never raises for backend trouble."""
        ...

    async def close(self) -> None: ...


class _Meter:
    """Counts into the instance's stats and the shared Prometheus metrics at once."""

    def __init__(self, backend: str):
        self.backend = backend
        self.stats = CacheStats()

    def hit(self) -> None:
        self.stats.hits += 1
        _HITS.labels(self.backend).inc()

    def miss(self) -> None:
        self.stats.misses += 1
        _MISSES.labels(self.backend).inc()

    def write(self) -> None:
        self.stats.writes += 1
        _WRITES.labels(self.backend).inc()

    def skip(self, reason: str) -> None:
        self.stats.skipped += 1
        _SKIPPED.labels(self.backend, reason).inc()

    def evicted(self) -> None:
        self.stats.evictions += 1
        _EVICTIONS.labels(self.backend).inc()

    def expired(self) -> None:
        self.stats.expired += 1
        _EXPIRED.labels(self.backend).inc()

    def error(self, op: str) -> None:
        self.stats.errors += 1
        _ERRORS.labels(self.backend, op).inc()

    def add_bytes(self, delta: int) -> None:
        self.stats.bytes += delta
        _BYTES.labels(self.backend).inc(delta)


@dataclass(slots=True)
class _Entry:
    value: bytes
    expires_at: float
    size: int


class MemoryCache:
    """Per-process LRU bounded by the bytes of keys and values.

    get/put are O(1) (an OrderedDict in recency order) and never await, so on
    one event loop they need no lock. Expired entries are never served; they
    are dropped when looked up or when they reach the LRU end. An answer over
    `max_entry_bytes`, or one that could never fit in `max_bytes`, is not stored.
    Python's per-object overhead is not counted in the bound."""

    backend = "memory"

    def __init__(
        self,
        max_bytes: int,
        max_entry_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ):
        if max_bytes < 0 or max_entry_bytes < 0:
            raise ValueError("max_bytes and max_entry_bytes must be >= 0")
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._meter = _Meter(self.backend)
        self.stats = self._meter.stats

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        """Held (possibly expired); does not touch recency. For tests and debugging."""
        return key in self._entries

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is not None and entry.expires_at <= self._clock():
            self._remove(key)
            self._meter.expired()
            entry = None
        if entry is None:
            self._meter.miss()
            return None
        self._entries.move_to_end(key)
        self._meter.hit()
        return entry.value

    async def put(self, key: str, value: bytes, ttl_seconds: int) -> None:
        if ttl_seconds <= 0:
            self._meter.skip("no_ttl")
            return
        value = bytes(value)
        size = len(key.encode()) + len(value)
        # A new answer replaces the old one even when it is itself not stored.
        if key in self._entries:
            self._remove(key)
        if len(value) > self.max_entry_bytes or size > self.max_bytes:
            self._meter.skip("too_large")
            return
        now = self._clock()
        while self.stats.bytes + size > self.max_bytes:
            _, oldest = self._entries.popitem(last=False)
            self._meter.add_bytes(-oldest.size)
            if oldest.expires_at <= now:
                self._meter.expired()
            else:
                self._meter.evicted()
        self._entries[key] = _Entry(value, now + ttl_seconds, size)
        self._meter.add_bytes(size)
        self._meter.write()

    def _remove(self, key: str) -> None:
        self._meter.add_bytes(-self._entries.pop(key).size)

    async def close(self) -> None:
        self._entries.clear()
        self._meter.add_bytes(-self.stats.bytes)


class _ThrottledLog:
    """At most one warning per `interval` seconds, saying how many were suppressed:
    an outage of the cache backend must not flood the logs."""

    def __init__(self, interval: float, clock: Callable[[], float]):
        self.interval = interval
        self._clock = clock
        self._next_at = -math.inf
        self.suppressed = 0

    def warning(self, msg: str, *args: object) -> bool:
        now = self._clock()
        if now < self._next_at:
            self.suppressed += 1
            return False
        log.warning(msg + " (%d similar warnings suppressed)", *args, self.suppressed)
        self.suppressed = 0
        self._next_at = now + self.interval
        return True


class RedisCache:
    """Shared cache in Redis (`SET key value EX ttl`, `GET key`).

    Fails open: every call is bounded by `timeout` seconds in total (waiting
    for a pooled connection, connecting, the command); connection errors,
    timeouts and Redis errors become a miss or a skipped write, counted in
    `lockgate_router_cache_errors_total` and logged at most once per
    `log_interval`. After a connection failure or timeout Redis is left alone
    for `down_seconds` (calls miss at once) so an outage costs calls nothing,
    not `timeout` each. No retries: a late cache answer is worth nothing.
    Configure Redis with a `maxmemory` and an LRU/TTL eviction policy; this
    client does not track Redis's memory."""

    backend = "redis"

    def __init__(
        self,
        url: str,
        max_entry_bytes: int,
        key_prefix: str = "",
        *,
        timeout: float = 0.1,
        max_connections: int = 32,
        down_seconds: float = 1.0,
        log_interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("the cache's redis_url must be a redis://, rediss:// or unix:// URL")
        if timeout <= 0 or max_connections < 1 or max_entry_bytes < 0:
            raise ValueError("timeout and max_connections must be positive, max_entry_bytes >= 0")
        self.max_entry_bytes = max_entry_bytes
        self.key_prefix = key_prefix
        self.timeout = timeout
        self.down_seconds = down_seconds
        self._clock = clock
        self._down_until = -math.inf
        self._warn = _ThrottledLog(log_interval, clock)
        self._meter = _Meter(self.backend)
        self.stats = self._meter.stats
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout,  # wait for a free pooled connection
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._redis = aioredis.Redis.from_pool(pool)

    @property
    def available(self) -> bool:
        """False while calls skip Redis after a failure."""
        return self._clock() >= self._down_until

    async def get(self, key: str) -> bytes | None:
        value = None
        if self.available:
            try:
                async with asyncio.timeout(self.timeout):
                    value = await self._redis.get(self.key_prefix + key)
            except (RedisError, OSError, TimeoutError) as exc:
                self._failed("get", exc)
        if value is None:
            self._meter.miss()
            return None
        self._meter.hit()
        return value

    async def put(self, key: str, value: bytes, ttl_seconds: int) -> None:
        if ttl_seconds <= 0:
            self._meter.skip("no_ttl")
            return
        if len(value) > self.max_entry_bytes:
            self._meter.skip("too_large")
            return
        if not self.available:
            self._meter.skip("unavailable")
            return
        try:
            async with asyncio.timeout(self.timeout):
                await self._redis.set(self.key_prefix + key, value, ex=int(ttl_seconds))
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed("put", exc)
            return
        self._meter.write()

    def _failed(self, op: str, exc: BaseException) -> None:
        self._meter.error(op)
        # Unreachable or slow: stop trying for a moment. Other errors (e.g. OOM
        # refusing a SET) mean Redis is up, so later calls still try.
        unreachable = isinstance(
            exc, (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)
        )
        if unreachable:
            self._down_until = self._clock() + self.down_seconds
        # Redis error messages name host and port at most, never credentials.
        self._warn.warning(
            "response cache: redis %s failed (%s: %s); serving without the cache",
            op,
            type(exc).__name__,
            str(exc)[:200] or "timed out",
        )

    async def close(self) -> None:
        try:
            await self._redis.aclose()
        except (RedisError, OSError) as exc:  # nothing left to do for a cache
            log.debug("response cache: closing redis failed: %s", type(exc).__name__)


def build_cache(config: ResponseCacheConfig) -> ResponseCache:
    """The backend the gateway config asks for."""
    if config.backend == "redis":
        return RedisCache(config.redis_url, config.max_entry_bytes)
    return MemoryCache(config.max_bytes, config.max_entry_bytes)
