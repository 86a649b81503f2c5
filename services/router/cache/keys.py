"""Response cache keys: what is cached, and under which key.

A cached entry is the provider's complete answer (a `chat.completion` or an
embeddings `list`, serialized by the router) for one *normalized* request:
`cache_key()` drops the fields that cannot change the answer, puts what is
left in canonical JSON and hashes it together with the tenant, the alias
and the kind of call. Tenants never share entries: the tenant is part of
the hashed material, not just a label. The TTL comes from the alias
(`models.<alias>.cache.ttl_seconds`; 0 means the alias is not cached).
"""

from __future__ import annotations

import hashlib
import math

import orjson

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
