"""The access check in the router's own process, for its HTTP listener's calls.

When auth is hosted in the router's process (`lockgate up`'s default layout,
LOCKGATE_ROUTER_CHECK_ACCESS), Envoy does not ask auth's HTTP access check about
the three hot REST calls (envoy/envoy.yaml.tmpl): the router's HTTP listener
(services/router/http_edge.py) runs the very same `Checker.decide` on the call
itself. That saves each call a round trip through Envoy — a second upstream
request, its connection pool and the body sent twice — which measured as the
largest part of Envoy's CPU per call (docs/performance.md).

It does exactly what Envoy's ext_authz filter does with auth's verdict:

- allowed: the credential and spoofed x-lockgate-* headers are dropped, the
  identity headers set (the provider never sees the caller's key); the
  lifecycle headers (Deprecation, Sunset, Link) go on the client's response;
- denied: the decision's status, content type and body, as they are;
- no decision (a 5xx decision, a failure, no answer within the timeout): 503
  `access_check_unavailable`, the body Envoy's local reply gives (fail closed).

The tenant and key of an allowed call, and the mark of a denied one, go back to
Envoy in response headers for the call log (lockgate/edge_access.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import orjson

from lockgate import edge_access
from lockgate.identity import KEY_ID, TENANT_ID
from lockgate.lean_http import HttpRequest, response
from lockgate.metrics import count_http_call
from services.auth.check import Allowed, Checker, CheckInput, Denied

log = logging.getLogger("lockgate.router.access")

_DENIED = (edge_access.DENIED_HEADER, "1")
_UNAVAILABLE_BODY = orjson.dumps({"error": {
    "message": edge_access.UNAVAILABLE_MESSAGE, "type": "api_error", "param": None,
    "code": edge_access.UNAVAILABLE_CODE,
}})


@dataclass(frozen=True, slots=True)
class Checked:
    """An allowed call, as the router's endpoints see it."""

    #: The request's headers after the verdict (what Envoy would have forwarded).
    headers: tuple[tuple[str, str], ...]
    #: For the response: lifecycle headers for the client, identity for the call log.
    response_headers: tuple[tuple[str, str], ...]


def forwarded_headers(headers: dict[str, str], verdict: Allowed) -> tuple[tuple[str, str], ...]:
    """The request's headers with the verdict applied, as ext_authz applies it: the
    named ones removed, the identity headers set (overwriting any client copy)."""
    set_ = verdict.upstream_headers
    remove = verdict.remove
    kept = [(k, v) for k, v in headers.items() if k not in set_ and k not in remove]
    kept.extend(set_.items())
    return tuple(kept)


def unavailable() -> bytes:
    """The answer when no decision can be had, as Envoy's local reply gives it."""
    return response(edge_access.UNAVAILABLE_STATUS,
                    [("content-type", "application/json"), _DENIED], _UNAVAILABLE_BODY)


class InProcessAccess:
    """Auth's checker, run on the router's calls before they are served."""

    def __init__(self, checker: Checker, timeout_seconds: float = edge_access.TIMEOUT_SECONDS):
        self.checker = checker
        self.timeout_seconds = timeout_seconds

    async def check(self, request: HttpRequest) -> Checked | bytes:
        """The call's headers as allowed, or the whole HTTP response refusing it."""
        started = time.perf_counter()
        verdict = await self._decide(request)
        if isinstance(verdict, Allowed):
            _count(200, started)
            identity = verdict.upstream_headers
            log_headers = [(name, identity[name]) for name in (TENANT_ID, KEY_ID)
                           if name in identity]
            return Checked(forwarded_headers(request.headers, verdict),
                           (*verdict.client_headers, *log_headers))
        if verdict is None:
            _count(edge_access.UNAVAILABLE_STATUS, started)
            return unavailable()
        _count(verdict.status, started)
        if verdict.status >= 500:
            # Envoy treats a 5xx from its access check as the check's failure.
            return unavailable()
        return response(verdict.status, [("content-type", verdict.content_type), _DENIED],
                        verdict.body.encode())

    async def _decide(self, request: HttpRequest) -> Allowed | Denied | None:
        """Auth's verdict, or None when there is none (a failure, or too slow)."""
        try:
            async with asyncio.timeout(self.timeout_seconds):
                return await self.checker.decide(CheckInput(
                    path=request.path, http_method=request.method, headers=request.headers,
                    raw_body=request.body,
                ))
        except TimeoutError:
            log.warning("access check timed out; answered 503",
                        extra={"timeout_seconds": self.timeout_seconds})
        except Exception:  # noqa: BLE001 - fail closed, and say so
            log.exception("access check failed; answered 503")
        return None


def _count(status: int, started: float) -> None:
    """Counted as auth's checks over HTTP are (lockgate/lean_http.py), so that
    dashboards read the same in every process layout."""
    count_http_call("auth", "Check", str(status), time.perf_counter() - started)
