"""Anthropic-shaped error answers of the simulator.

Errors: ``{"type": "error", "error": {"type", "message"}, "request_id"}``
with the matching status (400 invalid_request_error, 401
authentication_error, 403 permission_error, 404 not_found_error, 413
request_too_large, 429 rate_limit_error, 500 api_error, 529
overloaded_error…).
"""

from __future__ import annotations

import orjson
from aiohttp import web

from lockgate.sim.errors import SimError

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}
#: Anthropic's wording for the injected faults that have a well-known one.
_INJECTED_MESSAGES = {
    529: "Overloaded",
    429: "Number of requests has exceeded your per-minute rate limit (simulated).",
    500: "Internal server error (simulated).",
}


class _Invalid(SimError):
    def __init__(self, message: str):
        super().__init__(400, message)


def error_response(
    status: int, message: str, request_id: str, headers: dict[str, str] | None = None
) -> web.Response:
    """An Anthropic-shaped error answer."""
    kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    body = orjson.dumps({
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": request_id,
    })
    response = web.Response(status=status, body=body, content_type="application/json")
    response.headers.update(headers or {})
    return response
