"""Google API error answers -> Lockgate errors.

Errors ({"error": {"code", "message", "status", "details"}}, also inside a
one-element array): 429 / RESOURCE_EXHAUSTED -> RateLimited with
`retry_after` from a google.rpc.RetryInfo `retryDelay` ("30s") or Retry-After;
500 / 503 / UNAVAILABLE / INTERNAL -> UpstreamUnavailable; 504 /
DEADLINE_EXCEEDED -> UpstreamTimeout; 400 about the input token count
exceeding the limit -> InvalidRequest(code="context_length_exceeded");
401 / 403 and 400 API_KEY_INVALID -> the gateway's credentials were rejected
(UpstreamError); the rest by the shared default mapping.
"""

from __future__ import annotations

import re
from typing import Any

from lockgate.errors import (
    InvalidRequest,
    LockgateError,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from lockgate.logs import redact
from services.router.providers.http import retry_after_seconds, status_error

_RETRY_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def gemini_error(
    provider: str, status: int, parsed: object, text: str, headers: Any
) -> LockgateError | None:
    """Maps a Google API error answer (see the module docstring); None: default mapping."""
    if isinstance(parsed, list) and parsed and isinstance(parsed[0], dict):
        parsed = parsed[0]  # streamGenerateContent without alt=sse wraps it in an array
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if not isinstance(error, dict):
        return None
    code = error.get("status") if isinstance(error.get("status"), str) else ""
    message = error.get("message") if isinstance(error.get("message"), str) else text
    details = error.get("details") if isinstance(error.get("details"), list) else []
    retry_after = retry_delay(details)
    if retry_after is None:
        retry_after = retry_after_seconds(headers)
    where = f"provider {provider!r} answered {status}"
    detail = redact(message)[:500]
    mapped: LockgateError
    if status == 429 or code == "RESOURCE_EXHAUSTED":
        return status_error(provider, 429, message, retry_after=retry_after)
    if status in (401, 403) or code in ("UNAUTHENTICATED", "PERMISSION_DENIED") or any(
        isinstance(d, dict) and d.get("reason") == "API_KEY_INVALID" for d in details
    ):
        mapped = UpstreamError(f"{where}: the gateway's credentials were rejected")
    elif status == 400 and "input token count" in message.lower():
        mapped = InvalidRequest(
            f"{where}: {detail}", code="context_length_exceeded", param="messages"
        )
    elif status == 504 or code == "DEADLINE_EXCEEDED":
        mapped = UpstreamTimeout(f"{where}: {detail}")
    elif status in (500, 503) or code in ("UNAVAILABLE", "INTERNAL"):
        mapped = UpstreamUnavailable(f"{where}: {detail}")
    else:
        return status_error(provider, status, message, retry_after=retry_after)
    mapped.retry_after = retry_after
    return mapped


def retry_delay(details: list) -> float | None:
    """Seconds of a google.rpc.RetryInfo detail's retryDelay ("30s", "1.5s")."""
    for detail in details:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith(
            "google.rpc.RetryInfo"
        ):
            match = _RETRY_DELAY.match(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None
