"""OpenAI's rate-limit response headers, shared by the edge (requests, answered by
the ledger's rate limit service) and the router (tokens).

    x-ratelimit-limit-requests      the limit (per minute) that applies
    x-ratelimit-remaining-requests  what is left of it in the current window
    x-ratelimit-reset-requests      until the window resets, e.g. "1s", "12.5s", "1m0s"
    (and the same three with -tokens)
    retry-after                     on 429: whole seconds, rounded up
"""

from __future__ import annotations

LIMIT = "x-ratelimit-limit-{kind}"
REMAINING = "x-ratelimit-remaining-{kind}"
RESET = "x-ratelimit-reset-{kind}"
RETRY_AFTER = "retry-after"


def openai_duration(ms: int) -> str:
    """A duration the way OpenAI writes it (Go's time.Duration format, to the
    millisecond): "250ms", "1s", "12.5s", "1m0s", "1h2m3s"."""
    ms = max(0, int(ms))
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    text = f"{seconds}.{millis:03d}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    if minutes:
        return f"{minutes}m{text}"
    return text


def retry_after_seconds(ms: int) -> int:
    """Retry-After for a wait of `ms` milliseconds: whole seconds, rounded up, at least 1."""
    return max(1, -(-int(ms) // 1000))


def headers(kind: str, limit: int, remaining: int, reset_ms: int) -> dict[str, str]:
    """The three x-ratelimit-* headers of one kind ("requests" or "tokens")."""
    return {
        LIMIT.format(kind=kind): str(limit),
        REMAINING.format(kind=kind): str(max(0, remaining)),
        RESET.format(kind=kind): openai_duration(reset_ms),
    }
