"""Google-shaped error answers of the simulator's Gemini dialect.

Errors are Google-shaped: ``{"error": {"code", "message", "status"[, "details"]}}``.

Fault injection uses the OpenAI dialect's ``x-sim-*`` headers (see
:mod:`lockgate.sim.server`) with Google-shaped injected errors (429
RESOURCE_EXHAUSTED with QuotaFailure and RetryInfo ``retryDelay: "1s"``
details, 503 UNAVAILABLE "The model is overloaded…", 500 INTERNAL, 504
DEADLINE_EXCEEDED, …).
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

_CODES = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
    404: "NOT_FOUND", 409: "ABORTED", 413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED", 500: "INTERNAL", 501: "UNIMPLEMENTED", 503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}  # fmt: skip
_INJECTED = {
    400: "Request contains an invalid argument.",
    401: "Request had invalid authentication credentials.",
    403: "The caller does not have permission",
    404: "Requested entity was not found.",
    429: "Resource has been exhausted (e.g. check quota).",
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}
_RETRY_DELAY = "1s"
_JSON = {"Content-Type": "application/json; charset=UTF-8"}


class GoogleError(Exception):
    """A Google API error answer."""

    def __init__(self, status: int, message: str, details: list | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details

    def response(self) -> web.Response:
        error: dict[str, Any] = {
            "code": self.status,
            "message": self.message,
            "status": _CODES.get(self.status, "INTERNAL" if self.status >= 500 else
                                 "FAILED_PRECONDITION"),
        }
        if self.details:
            error["details"] = self.details
        return web.Response(status=self.status, body=orjson.dumps({"error": error}), headers=_JSON)


def _bad(message: str) -> GoogleError:
    return GoogleError(400, message)


def _injected(status: int) -> GoogleError:
    details = None
    if status == 429:
        details = [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{
                    "quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
                    "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
                }],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": _RETRY_DELAY},
        ]
    return GoogleError(status, _INJECTED.get(status, f"Simulated error (HTTP {status})."), details)
