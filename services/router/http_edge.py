"""The provider-compatible endpoints over plain HTTP/1.1, as Envoy forwards them.

Envoy routes the three hot REST calls — POST /v1/chat/completions,
/v1/messages and /v1/embeddings — to this listener untranscoded, after its
access check: no gRPC hop, no transcoding, no status header for a Lua filter
to move (envoy/envoy.yaml.tmpl). The answers are the same bytes the gRPC
HttpBody methods give (services/router/edge.py serves both): JSON with a
content-length, or SSE with chunked transfer encoding, written as the
provider streams it.

Envoy's rate limiter does not run on these routes: admission counts their
requests against requests-per-minute limits (`Incoming.counts_requests`), in
the ledger call it makes anyway.

The caller's identity is in the x-lockgate-* headers auth set, exactly as over
gRPC. This listener trusts them as the gRPC one does: it must only be
reachable from Envoy. When auth is hosted in the router's process, Envoy does
not ask auth first: this listener runs auth's access check on each call itself
(services/router/access.py) and reads the identity from its verdict.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import orjson

from lockgate.direct_rest import DIRECT_REST
from lockgate.lean_http import HttpRequest, LeanHttpServer, header_line, response, status_line
from services.router.edge import JSON, Edge, Incoming, Reply

if TYPE_CHECKING:  # auth's modules are imported only where auth is hosted too
    from services.router.access import InProcessAccess

_POST = "POST"


def _not_found(request: HttpRequest, extra_headers: tuple[tuple[str, str], ...]) -> bytes:
    error = {"message": f"unknown path: {request.method} {request.path[:200]}",
             "type": "not_found_error", "param": None, "code": "not_found"}
    return response(404, [("content-type", JSON), *extra_headers],
                    orjson.dumps({"error": error}))


def _head(reply: Reply, framing: bytes, extra: tuple[tuple[str, str], ...]) -> bytes:
    return b"".join((
        status_line(reply.status),
        header_line("content-type", reply.content_type),
        *(header_line(k, v) for k, v in reply.headers),
        *(header_line(k, v) for k, v in extra),
        framing,
    ))


async def _chunked(head: bytes, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The head, then each chunk in chunked transfer encoding."""
    try:
        yield head
        async for chunk in chunks:
            if chunk:  # an empty chunk would end the body
                yield b"%x\r\n%s\r\n" % (len(chunk), chunk)
        yield b"0\r\n\r\n"
    finally:
        await chunks.aclose()  # the client may be gone: meter and free the upstream now


def encode(reply: Reply, extra_headers: tuple[tuple[str, str], ...] = ()
           ) -> bytes | AsyncIterator[bytes]:
    """A Reply as HTTP/1.1 (with `extra_headers` after its own): whole bytes, or
    the head and then the chunks."""
    if reply.chunks is None:
        framing = b"content-length: %d\r\n\r\n" % len(reply.body)
        return _head(reply, framing, extra_headers) + reply.body
    framing = b"transfer-encoding: chunked\r\n\r\n"
    return _chunked(_head(reply, framing, extra_headers), reply.chunks)


def edge_server(edge: Edge, host: str, port: int, max_body_bytes: int,
                access: InProcessAccess | None = None) -> LeanHttpServer:
    """The listener; with `access`, it checks every call itself (Envoy does not)."""
    endpoints = {
        "/v1/chat/completions": edge.openai_chat,
        "/v1/messages": edge.anthropic_messages,
        "/v1/embeddings": edge.openai_embeddings,
    }

    async def answer(request: HttpRequest) -> bytes | AsyncIterator[bytes]:
        if access is None:
            headers, response_headers = tuple(request.headers.items()), ()
        else:  # before anything else, as Envoy's check would be
            checked = await access.check(request)
            if isinstance(checked, bytes):
                return checked  # denied
            headers, response_headers = checked.headers, checked.response_headers
        # Anthropic's SDK may add a query (?beta=true): the path alone picks the endpoint.
        endpoint = endpoints.get(request.path.split("?", 1)[0])
        if endpoint is None or request.method != _POST:
            return _not_found(request, response_headers)
        incoming = Incoming(headers=headers, request_id=request.headers.get("x-request-id"),
                            counts_requests=True)
        return encode(await endpoint(request.body, incoming), response_headers)

    methods = {path: method.rsplit("/", 1)[1] for (_, path), method in DIRECT_REST.items()}
    return LeanHttpServer("router", answer, host, port, max_body_bytes, methods=methods)
