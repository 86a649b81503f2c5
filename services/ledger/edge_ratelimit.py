"""Envoy's global rate limit service (envoy.service.ratelimit.v3.RateLimitService)
in the ledger: the requests-per-minute limits, enforced at the edge for the
router's gRPC and transcoded REST calls. (The three hot REST calls Envoy routes
to the router's HTTP listener skip this hop: the router's admission counts them,
services/ledger/admission.py, against the same limits and counters.)

Envoy's `envoy.filters.http.ratelimit` filter runs after ext_authz, so only
requests auth allowed reach it, with the identity headers auth set. The route
to the router turns those headers into one descriptor (envoy/envoy.yaml.tmpl):

    tenant  x-lockgate-tenant-id     required: without it Envoy asks nothing
    team    x-lockgate-team-id       optional (skip_if_absent)
    key     x-lockgate-key-id        optional
    alias   x-lockgate-model         optional: the model alias the body names
    path    x-envoy-original-path    optional: set by the transcoder on REST calls
                                     (shapes the error body; not a limit scope)

The answer carries the x-ratelimit-*-requests headers of the tightest limit that
applies (none when no limit does) and, when over a limit, a 429 body in the
client's dialect: OpenAI's error JSON, Anthropic's for /v1/messages, and plain
text for gRPC clients (Envoy sends it as grpc-message with RESOURCE_EXHAUSTED).
"""

from __future__ import annotations

import orjson
from envoy.config.core.v3 import base_pb2
from envoy.service.ratelimit.v3 import rls_pb2 as rls
from envoy.service.ratelimit.v3 import rls_pb2_grpc as rls_grpc

from lockgate import rate_headers
from services.ledger.limits import RateLimitService, RequestVerdict
from services.ledger.scopes import CallScopes

SERVICE_NAME = rls.DESCRIPTOR.services_by_name["RateLimitService"].full_name
#: The `domain` of the Envoy filter.
DOMAIN = "lockgate"
#: Descriptor entry key -> the request header Envoy reads it from.
DESCRIPTOR_HEADERS = {
    "tenant": "x-lockgate-tenant-id",
    "team": "x-lockgate-team-id",
    "key": "x-lockgate-key-id",
    "alias": "x-lockgate-model",
    "path": "x-envoy-original-path",
}
#: Paths whose clients read Anthropic's error shape.
_ANTHROPIC_PATHS = ("/v1/messages",)

_OK = rls.RateLimitResponse.OK
_OVER_LIMIT = rls.RateLimitResponse.OVER_LIMIT


def call_of(descriptor) -> tuple[CallScopes, str] | None:
    """(the call's scopes, the client's REST path or "") of one descriptor; None
    without a tenant (nothing to count against)."""
    entries = {e.key: e.value for e in descriptor.entries}
    tenant = entries.get("tenant", "")
    if not tenant:
        return None
    scopes = CallScopes(tenant_id=tenant, team_id=entries.get("team", ""),
                        key_id=entries.get("key", ""), alias=entries.get("alias", ""))
    return scopes, entries.get("path", "")


def error_body(verdict: RequestVerdict, path: str) -> tuple[bytes, str]:
    """(body, content type) of a 429 in the client's dialect."""
    if not path:  # a gRPC client: the text becomes grpc-message
        return verdict.message.encode(), ""
    if path.split("?", 1)[0].startswith(_ANTHROPIC_PATHS):
        body = {"type": "error", "error": {"type": "rate_limit_error", "message": verdict.message}}
    else:
        body = {"error": {"message": verdict.message, "type": "requests", "param": None,
                          "code": "rate_limit_exceeded"}}
    return orjson.dumps(body), "application/json"


def _header(key: str, value: str) -> base_pb2.HeaderValue:
    return base_pb2.HeaderValue(key=key, value=value)


def _status(verdict: RequestVerdict) -> rls.RateLimitResponse.DescriptorStatus:
    status = rls.RateLimitResponse.DescriptorStatus(code=_OK if verdict.allowed else _OVER_LIMIT)
    if verdict.limit:
        status.current_limit.requests_per_unit = verdict.limit
        status.current_limit.unit = rls.RateLimitResponse.RateLimit.MINUTE
        status.limit_remaining = verdict.remaining
        status.duration_until_reset.FromMilliseconds(verdict.reset_ms)
    return status


class EdgeRateLimiter(rls_grpc.RateLimitServiceServicer):
    def __init__(self, limits: RateLimitService):
        self.limits = limits

    async def ShouldRateLimit(self, request: rls.RateLimitRequest, context
                              ) -> rls.RateLimitResponse:
        if request.domain != DOMAIN:
            return rls.RateLimitResponse(overall_code=_OK)
        verdicts: list[RequestVerdict] = []
        refused: tuple[RequestVerdict, str] | None = None
        for descriptor in request.descriptors:
            call = call_of(descriptor)
            if call is None:
                verdicts.append(RequestVerdict(allowed=True))
                continue
            scopes, path = call
            hits = (descriptor.hits_addend.value if descriptor.HasField("hits_addend")
                    else request.hits_addend) or 1
            verdict = await self.limits.acquire_requests(scopes, hits)
            verdicts.append(verdict)
            if not verdict.allowed and refused is None:
                refused = (verdict, path)
        response = rls.RateLimitResponse(
            overall_code=_OK if refused is None else _OVER_LIMIT,
            statuses=[_status(v) for v in verdicts],
        )
        if refused is not None:
            verdict, path = refused
            body, content_type = error_body(verdict, path)
            response.raw_body = body
            if content_type:
                response.response_headers_to_add.append(_header("content-type", content_type))
            response.response_headers_to_add.append(
                _header(rate_headers.RETRY_AFTER, str(verdict.retry_after_seconds))
            )
            shown = verdict
        else:
            limited = [v for v in verdicts if v.limit]
            shown = min(limited, key=lambda v: (v.remaining, v.limit)) if limited else None
        if shown is not None:
            for key, value in rate_headers.headers(
                "requests", shown.limit, shown.remaining, shown.reset_ms
            ).items():
                response.response_headers_to_add.append(_header(key, value))
        return response
