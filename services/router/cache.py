"""The router's response cache: exact-match answers, scoped by tenant.

What is cached, and under which key
    A cached entry is the provider's complete answer (a `chat.completion` or an
    embeddings `list`, serialized by the router) for one *normalized* request:
    `cache_key()` drops the fields that cannot change the answer, puts what is
    left in canonical JSON and hashes it together with the tenant, the alias
    and the kind of call. Tenants never share entries: the tenant is part of
    the hashed material, not just a label. The TTL comes from the alias
    (`models.<alias>.cache.ttl_seconds`; 0 means the alias is not cached).

Bypass
    `Cache-Control: no-cache` on the request skips the lookup (the call goes to
    the provider) but the fresh answer is stored; `no-store` skips the lookup
    *and* the write, so nothing about that call is kept (`should_bypass`,
    `may_store`).

Backends
    `MemoryCache` (default): an LRU bounded in bytes, per process.
    `RedisCache`: shared by all router replicas. It fails open: a slow or
    unreachable Redis turns lookups into misses and writes into no-ops within
    a short, bounded time, and is counted and logged (throttled); a cache
    outage never fails or stalls a call. The cache is an optimization, so
    availability of calls wins over hit rate.

Streams
    Entries are always complete completions. `completion_to_chunks` replays a
    cached completion as the chunk sequence a stream would have produced, and
    `chunks_to_completion` assembles a finished stream into the completion to
    store, so streamed and non-streamed calls share entries.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from lockgate.metrics import Counter, Gauge
from services.router.config import ResponseCacheConfig

log = logging.getLogger("lockgate.router.cache")

#: Response header telling the client whether the answer came from the cache.
CACHE_STATUS_HEADER = "x-lockgate-cache"
CACHE_HIT, CACHE_MISS, CACHE_BYPASS = "hit", "miss", "bypass"

# ---------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------

#: Bumped whenever normalization or the stored format changes, so old entries
#: are never read with new semantics (they age out by TTL / LRU).
KEY_VERSION = "v1"
KINDS = frozenset({"chat", "embeddings"})

#: Top-level request fields that cannot change the answer, dropped before hashing.
#: - `stream`, `stream_options`: transport only; a streamed call is served from
#:   (and populates) the same entry as a non-streamed one.
#: - `user`, `safety_identifier`: end-user ids for the provider's abuse
#:   monitoring; not echoed in the answer. Entries stay tenant-scoped, so two
#:   users of one tenant asking the very same thing share the answer.
#: - `prompt_cache_key`: steers the provider's prompt cache (cost, latency).
#: - `model`: the `alias` argument names the model (the router resolved it).
#: Deliberately *kept*: `metadata` (echoed in `chat.completion.metadata`),
#: `store` (decides whether the response id can be retrieved from the
#: provider later) and `service_tier` (echoed in the answer, and a caller
#: asking for one tier must not get an answer labelled with another).
IGNORED_FIELDS = frozenset(
    {"stream", "stream_options", "user", "safety_identifier", "prompt_cache_key", "model"}
)

_INT_MIN, _INT_MAX = -(1 << 63), (1 << 64) - 1  # what orjson can encode (and parses to int)
_EXACT_FLOAT = float(1 << 53)  # integral floats up to here convert to int losslessly


class UncacheableRequest(ValueError):
    """The body cannot be put in canonical form (not JSON data); skip the cache."""


def _normalize(value: object) -> object:
    """JSON data with numbers in one spelling: `1`, `1.0` and `1e0` are the same
    number to a provider, so they must be the same key."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, dict):
        return {k: _normalize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalize(v) for v in value]
    if isinstance(value, int):
        if _INT_MIN <= value <= _INT_MAX:
            return value
        value = float(value)  # as orjson.loads would have parsed it
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UncacheableRequest("the request contains a number that is not finite")
        if value.is_integer() and abs(value) <= _EXACT_FLOAT:
            return int(value)
        return value
    raise UncacheableRequest(f"the request contains a {type(value).__name__}, not JSON data")


def canonical_request(body: dict) -> bytes:
    """The request as canonical JSON: ignored and null top-level fields dropped
    (null means "default" for every OpenAI parameter), keys sorted, numbers normalized."""
    if not isinstance(body, dict):
        raise UncacheableRequest("the request body must be a JSON object")
    kept = {k: v for k, v in body.items() if k not in IGNORED_FIELDS and v is not None}
    try:
        return orjson.dumps(_normalize(kept), option=orjson.OPT_SORT_KEYS)
    except RecursionError:
        raise UncacheableRequest("the request is nested too deeply to cache") from None
    except orjson.JSONEncodeError as exc:  # non-str keys, lone surrogates
        raise UncacheableRequest(f"the request cannot be encoded: {exc}") from None


def _framed(part: bytes) -> bytes:
    # Length-prefixed, so ("ab", "c") and ("a", "bc") can never hash alike.
    return len(part).to_bytes(8, "big") + part


def cache_key(tenant_id: str, alias: str, kind: str, body: dict) -> str:
    """`lg:v1:<kind>:<tenant tag>:<digest>`.

    The digest is sha256 over the length-prefixed version, tenant, alias, kind
    and canonical request, so no choice of tenant or alias strings can make two
    different requests collide. The tenant tag (a hash, never the raw id) only
    groups a tenant's keys so they can be listed or purged together."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, not {kind!r}")
    if not isinstance(tenant_id, str) or not tenant_id:
        raise ValueError("tenant_id must be a non-empty string")
    if not isinstance(alias, str) or not alias:
        raise ValueError("alias must be a non-empty string")
    tenant = tenant_id.encode("utf-8", "surrogatepass")
    digest = hashlib.sha256()
    for part in (
        KEY_VERSION.encode(),
        tenant,
        alias.encode("utf-8", "surrogatepass"),
        kind.encode(),
    ):
        digest.update(_framed(part))
    digest.update(_framed(canonical_request(body)))
    tenant_tag = hashlib.sha256(b"lockgate-cache-tenant\x00" + tenant).hexdigest()[:32]
    return f"lg:{KEY_VERSION}:{kind}:{tenant_tag}:{digest.hexdigest()}"


# ---------------------------------------------------------------------------
# Cache-Control
# ---------------------------------------------------------------------------


def cache_directives(header: str | None) -> frozenset[str]:
    """Directive names of a Cache-Control header (RFC 9111 §5.2), lowercased.

    Directives are comma-separated, names are case-insensitive, and an
    argument may be a quoted string that itself contains commas. A header sent
    several times is one list: join the values with ", " before calling."""
    if not header:
        return frozenset()
    names: set[str] = set()
    item: list[str] = []
    quoted = escaped = False
    for ch in header + ",":
        if quoted:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
            continue
        if ch == '"':
            quoted = True
        elif ch == ",":
            name = "".join(item).split("=", 1)[0].strip().lower()
            if name:
                names.add(name)
            item.clear()
        else:
            item.append(ch)
    return frozenset(names)


def should_bypass(cache_control_header: str | None) -> bool:
    """True when the caller asked not to be served from the cache: `no-cache`
    (revalidate, i.e. call the provider) or `no-store` (which also forbids
    writing the answer: check `may_store` before storing)."""
    return not cache_directives(cache_control_header).isdisjoint({"no-cache", "no-store"})


def may_store(cache_control_header: str | None) -> bool:
    """False when the caller sent `no-store`: its answer must not be kept."""
    return "no-store" not in cache_directives(cache_control_header)


# ---------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# Streams <-> completions
# ---------------------------------------------------------------------------


class IncompleteStream(ValueError):
    """The chunks do not make a whole completion (e.g. the stream was cut off)."""


#: Top-level fields carried on every chunk when the completion has them.
_SHARED_OPTIONAL = ("service_tier", "system_fingerprint")


def completion_to_chunks(reply: dict) -> list[dict]:
    """The `chat.completion.chunk` sequence a stream of `reply` would have had.

    Per choice: a role chunk (content "" or null as in the reply), one chunk
    with the content (plus its annotations and logprobs), one with the
    refusal, one per tool call (whole: id, type, name and arguments), audio,
    legacy function_call, then the finish chunk (with the logprobs when there
    was no content chunk). After all choices: a chunk with `moderation` if
    present, and the usage chunk (`choices: []`) if the reply has usage. Every chunk has `usage: null` when the reply has a usage
    key, as OpenAI streams do with `include_usage`; the router's
    `shape_chunk` drops it for clients that did not ask.
    `chat.completion.metadata` has no place in a chunk and is not carried."""
    base: dict = {
        "id": reply["id"],
        "object": "chat.completion.chunk",
        "created": reply["created"],
        "model": reply["model"],
    }
    for name in _SHARED_OPTIONAL:
        if name in reply:
            base[name] = reply[name]
    if "usage" in reply:
        base["usage"] = None

    chunks: list[dict] = []

    def emit(index: int, delta: dict, logprobs: object = None, finish: object = None) -> None:
        choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        chunks.append({**base, "choices": [choice]})

    for choice in reply["choices"]:
        index = choice["index"]
        message = choice.get("message") or {}
        content = message.get("content")
        logprobs = copy.deepcopy(choice.get("logprobs"))
        role: dict = {
            "role": message.get("role", "assistant"),
            "content": "" if isinstance(content, str) else None,
        }
        # Keys present in the reply stay present (as null/""/[]) after the round trip.
        refusal = message.get("refusal")
        if "refusal" in message:
            role["refusal"] = "" if isinstance(refusal, str) else None
        body: dict = {"content": content} if content else {}
        annotations_to = body if body else role
        if "annotations" in message:
            annotations_to["annotations"] = copy.deepcopy(message["annotations"])
        audio = message.get("audio")
        if "audio" in message and not isinstance(audio, dict):
            role["audio"] = None
        tool_calls = message.get("tool_calls")
        if "tool_calls" in message and not tool_calls:
            role["tool_calls"] = None if tool_calls is None else []
        function_call = message.get("function_call")
        if "function_call" in message and not isinstance(function_call, dict):
            role["function_call"] = None

        # Logprobs never ride on a choice's first chunk: the SDK's accumulator
        # counts them twice there (openai 3.54, choices after the first).
        emit(index, role)
        if body:
            emit(index, body, logprobs)
            logprobs = None
        if refusal:
            emit(index, {"refusal": refusal})
        for position, call in enumerate(tool_calls or []):
            emit(index, {"tool_calls": [{"index": position, **copy.deepcopy(call)}]})
        if isinstance(audio, dict):
            emit(index, {"audio": copy.deepcopy(audio)})
        if isinstance(function_call, dict):
            emit(index, {"function_call": copy.deepcopy(function_call)})
        emit(index, {}, logprobs, choice.get("finish_reason"))

    if "moderation" in reply:
        chunks.append({**base, "choices": [], "moderation": copy.deepcopy(reply["moderation"])})
    if reply.get("usage") is not None:
        chunks.append({**base, "choices": [], "usage": copy.deepcopy(reply["usage"])})
    return chunks


#: Within a tool call or an audio/function_call fragment: replaced, never concatenated.
_ATOMIC = frozenset({"id", "type", "expires_at"})


def _merge(acc: dict, fragment: dict) -> None:
    """Fold one delta fragment into `acc`: strings concatenate (content, names,
    arguments, audio data), ids/types replace, nested objects merge, lists
    concatenate; a key seen only with null stays present as null."""
    for key, value in fragment.items():
        if value is None:
            acc.setdefault(key, None)
            continue
        held = acc.get(key)
        if key in _ATOMIC or held is None:
            acc[key] = copy.deepcopy(value)
        elif isinstance(held, str) and isinstance(value, str):
            acc[key] = held + value
        elif isinstance(held, dict) and isinstance(value, dict):
            _merge(held, value)
        elif isinstance(held, list) and isinstance(value, list):
            held.extend(copy.deepcopy(value))
        else:
            acc[key] = copy.deepcopy(value)


class _ChoiceState:
    def __init__(self) -> None:
        self.message: dict = {}
        self.tool_calls: dict[int, dict] | None = None
        self.tool_calls_seen = False
        self.logprobs: dict | None = None
        self.finish_reason: str | None = None

    def add(self, choice: dict) -> None:
        delta = choice.get("delta") or {}
        for key, value in delta.items():
            if key == "role":
                if value is not None:
                    self.message["role"] = value
            elif key == "tool_calls":
                self.tool_calls_seen = True
                if value is not None and self.tool_calls is None:
                    self.tool_calls = {}
                for call in value or []:
                    held = self.tool_calls.setdefault(call.get("index", 0), {})
                    _merge(held, {k: v for k, v in call.items() if k != "index"})
            else:
                _merge(self.message, {key: value})
        logprobs = choice.get("logprobs")
        if isinstance(logprobs, dict):
            if self.logprobs is None:
                self.logprobs = {}
            _merge(self.logprobs, logprobs)
        if choice.get("finish_reason") is not None:
            self.finish_reason = choice["finish_reason"]

    def result(self, index: int) -> dict:
        message = {"role": "assistant", "content": None, **self.message}
        if self.tool_calls_seen:
            calls = self.tool_calls
            message["tool_calls"] = None if calls is None else [calls[i] for i in sorted(calls)]
        return {
            "index": index,
            "message": message,
            "logprobs": self.logprobs,
            "finish_reason": self.finish_reason,
        }


def chunks_to_completion(chunks: Iterable[dict]) -> dict:
    """The `chat.completion` a finished stream amounts to, to store in the cache.

    Per choice index: content and refusal concatenated, tool calls assembled
    by their index (arguments concatenated), logprobs lists joined, the last
    finish_reason; usage from the usage chunk. Chunks whose `object` is not
    `chat.completion.chunk` (e.g. Azure's asynchronous filter events) are
    skipped. Raises IncompleteStream when there is no chunk or a choice never
    got a finish_reason (a cut-off stream must not be cached)."""
    top: dict = {}
    choices: dict[int, _ChoiceState] = {}
    for chunk in chunks:
        if chunk.get("object", "chat.completion.chunk") != "chat.completion.chunk":
            continue
        for name in ("id", "created", "model"):
            if top.get(name) is None and chunk.get(name) is not None:
                top[name] = chunk[name]
        for name in (*_SHARED_OPTIONAL, "moderation", "usage"):
            if name in chunk and (chunk[name] is not None or name not in top):
                top[name] = copy.deepcopy(chunk[name])
        for choice in chunk.get("choices") or []:
            choices.setdefault(choice.get("index", 0), _ChoiceState()).add(choice)
    if "id" not in top:
        raise IncompleteStream("no chat.completion.chunk to assemble a completion from")
    unfinished = [i for i, state in choices.items() if state.finish_reason is None]
    if unfinished:
        raise IncompleteStream(f"choice {min(unfinished)} has no finish_reason (stream cut off?)")
    return {
        "id": top["id"],
        "object": "chat.completion",
        "created": top.get("created"),
        "model": top.get("model"),
        "choices": [choices[i].result(i) for i in sorted(choices)],
        **{k: v for k, v in top.items() if k not in ("id", "created", "model")},
    }
