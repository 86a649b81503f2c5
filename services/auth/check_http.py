"""Envoy's HTTP authorization service: the access check on the hot path.

Envoy's ext_authz filter can ask an authorization service over gRPC
(envoy.service.auth.v3, `Checker.check`) or over plain HTTP. Both run the same
`Checker.decide`; this is the HTTP one, and the one `lockgate up` configures:
measured on the 2-core bench machine, a grpc.aio unary call costs the server
several hundred µs of CPU and a dozen thread switches (gRPC's I/O threads hand
every event to the event loop), while this keep-alive HTTP/1.1 server, parsed
by httptools on the event loop itself, costs tens of µs (docs/performance.md).

The exchange (Envoy's `http_service`, see envoy/envoy.yaml.tmpl):

- request: the client's method, the path after the transcoder (the gRPC
  method; the client's path for the untranscoded hot REST calls), the headers
  Envoy is allowed to send (credentials, x-lockgate-*, x-envoy-original-path,
  x-request-id) and the request body (as the transcoder framed it, or the
  client's JSON);
- allowed: `200` with the identity headers (Envoy copies `x-lockgate-*` to
  the upstream request), `x-envoy-auth-headers-to-remove` naming the
  credentials and spoofed headers to drop, and Deprecation/Sunset/Link for the
  client's response;
- denied: the decision's status, content type and body, which Envoy sends to
  the client as they are. Envoy treats a 5xx from the authorization service as
  a failure of the service (its `status_on_error`, 503), so a 503 decision
  (governance not loaded yet, a policy engine failure) reaches the client as
  Envoy's 503 (`access_check_unavailable`, see envoy/envoy.yaml.tmpl), not
  with this body.

The server is lockgate/lean_http.py's: requests answered in order per
connection, a malformed or oversized one refused with 400, an unexpected
failure answered 503 (fail closed).
"""

from __future__ import annotations

from lockgate.lean_http import HttpRequest, LeanHttpServer, response
from services.auth.check import Allowed, Checker, CheckInput, Denied

#: Envoy removes the headers this response header names from the client's request.
REMOVE_HEADER = "x-envoy-auth-headers-to-remove"


def encode_verdict(verdict: Allowed | Denied) -> bytes:
    """The HTTP/1.1 response Envoy's ext_authz filter reads."""
    if isinstance(verdict, Denied):
        return response(verdict.status, [("content-type", verdict.content_type)],
                        verdict.body.encode())
    headers = list(verdict.upstream_headers.items())
    if verdict.remove:
        headers.append((REMOVE_HEADER, ", ".join(verdict.remove)))
    headers += verdict.client_headers
    return response(200, headers)


def check_server(checker: Checker, host: str, port: int, max_body_bytes: int) -> LeanHttpServer:
    async def answer(request: HttpRequest) -> bytes:
        verdict = await checker.decide(CheckInput(
            path=request.path, http_method=request.method, headers=request.headers,
            raw_body=request.body,
        ))
        return encode_verdict(verdict)

    # Every path is a request being checked: one method label, as the gRPC Check has.
    # lockgate_http_requests_total{service="auth",method="Check"} counts allowed
    # (status 200) and denied calls.
    return LeanHttpServer("auth", answer, host, port, max_body_bytes, other_method="Check")

