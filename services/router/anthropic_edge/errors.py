"""Lockgate errors in Anthropic's shape.

Errors: 400 invalid_request_error, 401 authentication_error, 403
permission_error, 404 not_found_error, 413 request_too_large, 429
rate_limit_error, 500/502/503 api_error, 504 timeout_error. A provider that is
unreachable or overloaded (`UpstreamUnavailable`) is reported as Anthropic does
an overload: HTTP 529 `overloaded_error`, which the SDK raises as
`OverloadedError` and retries.
"""

from __future__ import annotations

from typing import Any

import orjson

from lockgate.errors import LockgateError, UpstreamTimeout, UpstreamUnavailable

#: Anthropic's error type for each HTTP status Lockgate errors map to.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
}
#: Anthropic's status for an overload; the SDK raises OverloadedError and retries.
OVERLOADED_STATUS = 529


def anthropic_error_status(exc: LockgateError) -> int:
    """The HTTP status an Anthropic client gets for `exc`."""
    if isinstance(exc, UpstreamUnavailable):
        return OVERLOADED_STATUS
    return exc.status.http


def anthropic_error_type(exc: LockgateError) -> str:
    """Anthropic's `error.type` for `exc`."""
    if isinstance(exc, UpstreamUnavailable):
        return "overloaded_error"
    if isinstance(exc, UpstreamTimeout):
        return "timeout_error"
    status = exc.status.http
    return _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def _error(exc: LockgateError) -> dict:
    return {"type": anthropic_error_type(exc), "message": exc.message}


def anthropic_error_body(exc: LockgateError, request_id: str | None = None) -> bytes:
    """Anthropic's error JSON: {"type": "error", "error": {"type", "message"}, "request_id"}."""
    body: dict[str, Any] = {"type": "error", "error": _error(exc)}
    if request_id:
        body["request_id"] = request_id
    return orjson.dumps(body)
