"""The caller's say over the cache (Cache-Control) and the cache status header.

`Cache-Control: no-cache` on the request skips the lookup (the call goes to
the provider) but the fresh answer is stored; `no-store` skips the lookup
*and* the write, so nothing about that call is kept (`should_bypass`,
`may_store`).
"""

from __future__ import annotations

#: Response header telling the client whether the answer came from the cache.
CACHE_STATUS_HEADER = "x-lockgate-cache"
CACHE_HIT, CACHE_MISS, CACHE_BYPASS = "hit", "miss", "bypass"


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
