"""Anthropic error answers -> Lockgate errors.

Errors: Anthropic's `{"type":"error","error":{"type","message"}}`; 529 /
overloaded_error -> UpstreamUnavailable, 429 -> RateLimited with Retry-After,
a 400 "prompt is too long" -> InvalidRequest(code="context_length_exceeded"),
the rest by status (http.status_error).
"""

from __future__ import annotations

import re
from typing import Any

from lockgate.errors import LockgateError, UpstreamUnavailable
from services.router.providers.http import error_message, retry_after_seconds, status_error

_TOO_LONG = re.compile(r"prompt is too long|too many (input )?tokens|context (window|length)", re.I)


def anthropic_error(
    provider: str, status: int, payload: object, text: str, headers: Any
) -> LockgateError | None:
    """Maps an Anthropic error answer (see the module docstring)."""
    kind = _error_type(payload)
    message = error_message(payload) or text
    retry_after = retry_after_seconds(headers)
    code = "context_length_exceeded" if status == 400 and _TOO_LONG.search(message) else None
    error = status_error(provider, status, message, retry_after=retry_after, code=code)
    if kind == "overloaded_error" and not isinstance(error, UpstreamUnavailable):
        # Overloaded whatever the status (529 already maps so): retryable.
        error = UpstreamUnavailable(error.message)
        error.retry_after = retry_after
    return error


def _error_type(payload: object) -> str | None:
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        kind = payload["error"].get("type")
        return kind if isinstance(kind, str) else None
    return None
