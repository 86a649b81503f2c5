"""The router's response cache: exact-match answers, scoped by tenant.

One module per job:

* `keys`: what is cached, and under which key (`cache_key`, `canonical_request`).
* `control`: the caller's Cache-Control (`should_bypass`, `may_store`) and the
  `x-lockgate-cache` response header.
* `backends`: where entries live (`MemoryCache`, `RedisCache`, `build_cache`)
  and the cache's metrics.
* `chunks`: streams <-> completions, so streamed and non-streamed calls share
  entries (`completion_to_chunks`, `chunks_to_completion`).
"""

from services.router.cache.backends import (
    CacheStats,
    MemoryCache,
    RedisCache,
    ResponseCache,
    build_cache,
)
from services.router.cache.chunks import (
    IncompleteStream,
    chunks_to_completion,
    completion_to_chunks,
)
from services.router.cache.control import (
    CACHE_BYPASS,
    CACHE_HIT,
    CACHE_MISS,
    CACHE_STATUS_HEADER,
    cache_directives,
    may_store,
    should_bypass,
)
from services.router.cache.keys import (
    IGNORED_FIELDS,
    KEY_VERSION,
    KINDS,
    UncacheableRequest,
    cache_key,
    canonical_request,
)

__all__ = [
    "CACHE_BYPASS",
    "CACHE_HIT",
    "CACHE_MISS",
    "CACHE_STATUS_HEADER",
    "IGNORED_FIELDS",
    "KEY_VERSION",
    "KINDS",
    "CacheStats",
    "IncompleteStream",
    "MemoryCache",
    "RedisCache",
    "ResponseCache",
    "UncacheableRequest",
    "build_cache",
    "cache_directives",
    "cache_key",
    "canonical_request",
    "chunks_to_completion",
    "completion_to_chunks",
    "may_store",
    "should_bypass",
]
