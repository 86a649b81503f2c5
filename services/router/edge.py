"""The provider-compatible endpoints, whatever carries them.

OpenAI chat completions and embeddings and Anthropic messages speak their
providers' exact wire format: JSON, or SSE. Two transports serve them:

- gRPC (services/router/servicer.py): Envoy transcodes the REST call to a
  `google.api.HttpBody` method; the HTTP status travels in a response header
  that Envoy's Lua filter moves to `:status`;
- HTTP/1.1 (services/router/http_edge.py): Envoy routes the REST call to the
  router as it is, which costs a fraction of the gRPC hop (docs/performance.md).

Both turn an `Incoming` request into a `Reply`: a status, headers and either
the whole body or its chunks. A stream's status is decided by its first chunk
(failover and errors before the first byte are ordinary error replies); after
that, errors go in-band as the dialect's error event.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import orjson

from lockgate.errors import LockgateError, as_lockgate_error, openai_error_body
from lockgate.identity import identity_from_metadata
from services.router.anthropic_edge import (
    PING_EVENT,
    StreamTranslator,
    anthropic_error_body,
    anthropic_error_status,
    error_event,
    parse_messages_request,
    to_anthropic_message,
    to_openai_request,
)
from services.router.cache import CACHE_STATUS_HEADER
from services.router.openai_api import (
    DONE_EVENT,
    openai_error_event,
    parse_chat_request,
    parse_embeddings_request,
    shape_chunk,
    shape_completion,
    wants_usage_in_stream,
)
from services.router.providers.http import CLIENT_HEADERS
from services.router.service import Call, Router

log = logging.getLogger("lockgate.router")

JSON = "application/json"
SSE = "text/event-stream"


@dataclass(frozen=True, slots=True)
class Incoming:
    """What a transport knows of a request besides its body."""

    #: Lower-case header names and values (gRPC metadata or HTTP headers).
    headers: tuple[tuple[str, str], ...]
    #: The gateway's x-request-id (None when the request came without one).
    request_id: str | None = None
    #: time.monotonic() by which the caller stops waiting (None: no deadline).
    deadline: float | None = None
    #: No edge rate limiter counted the request (the HTTP listener's routes):
    #: admission counts it against requests-per-minute limits.
    counts_requests: bool = False

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(slots=True)
class Reply:
    status: int
    content_type: str
    #: Response headers besides the content type.
    headers: list[tuple[str, str]] = field(default_factory=list)
    #: The whole body, or None for a stream (see `chunks`).
    body: bytes | None = None
    #: A stream's chunks (the first one included), ending when the stream ends.
    chunks: AsyncIterator[bytes] | None = None


def new_call(incoming: Incoming, alias: str, kind: str = "chat") -> Call:
    """The Call of a request: its caller from the identity headers auth set."""
    CLIENT_HEADERS.set(incoming.headers)
    return Call(
        request_id=incoming.request_id or str(uuid.uuid4()),
        caller=identity_from_metadata(incoming.headers), alias=alias, kind=kind,
        deadline=incoming.deadline, cache_control=incoming.header("cache-control"),
        counts_requests=incoming.counts_requests,
    )


def _call_headers(call: Call) -> list[tuple[str, str]]:
    """`x-lockgate-cache: hit|miss|bypass` on aliases that cache, and the
    x-ratelimit-* headers under a request or token limit."""
    headers = list(call.response_headers)
    if call.cache_status:
        headers.append((CACHE_STATUS_HEADER, call.cache_status))
    return headers


def user_error(exc: BaseException, request_id: str | None) -> LockgateError:
    if not isinstance(exc, LockgateError):
        log.error("unhandled error in a provider-compatible call", exc_info=exc)
    return as_lockgate_error(exc, request_id)


def error_reply(exc: BaseException, request_id: str | None, anthropic: bool = False) -> Reply:
    """The error as the client's dialect shapes it, with its HTTP status and,
    when known, Retry-After."""
    error = user_error(exc, request_id)
    if anthropic:
        status, data = anthropic_error_status(error), anthropic_error_body(error, request_id)
    else:
        status, data = error.status.http, openai_error_body(error)
    headers = []
    if error.retry_after is not None:
        headers.append(("retry-after", str(max(1, math.ceil(error.retry_after)))))
    headers.extend(error.headers)
    return Reply(status, JSON, headers, body=data)


class Edge:
    def __init__(self, router: Router):
        self.router = router

    async def openai_chat(self, data: bytes, incoming: Incoming) -> Reply:
        """Exact OpenAI wire format: JSON, or SSE ending in `data: [DONE]`."""
        try:
            body = parse_chat_request(data)
            call = new_call(incoming, body["model"])
            if not body.get("stream"):
                reply = await self.router.chat(call, body)
                return Reply(200, JSON, _call_headers(call),
                             body=shape_completion(reply, call.alias))
            chunks = self.router.stream(call, body)
            first = await anext(chunks)
        except Exception as exc:  # noqa: BLE001 - every failure becomes an OpenAI error body
            return error_reply(exc, incoming.request_id)
        return Reply(200, SSE, _call_headers(call),
                     chunks=self._openai_events(call, body, first, chunks))

    async def _openai_events(self, call: Call, body: dict, first, chunks) -> AsyncIterator[bytes]:
        wants_usage = wants_usage_in_stream(body)
        try:
            yield shape_chunk(first, call.alias, wants_usage) or b""
            async for chunk in chunks:
                event = shape_chunk(chunk, call.alias, wants_usage)
                if event is not None:
                    yield event
            yield DONE_EVENT
        except Exception as exc:  # noqa: BLE001 - the status is sent: report in-band
            yield openai_error_event(openai_error_body(user_error(exc, call.request_id)))
        finally:
            await chunks.aclose()  # the client may be gone: meter and free the upstream now

    async def anthropic_messages(self, data: bytes, incoming: Incoming) -> Reply:
        """Exact Anthropic Messages wire format, routed to any provider: JSON, or
        SSE with Anthropic's event sequence; errors in Anthropic's shape."""
        try:
            req = parse_messages_request(data)
            body = to_openai_request(req)
            call = new_call(incoming, req["model"])
            if not req.get("stream"):
                reply = await self.router.chat(call, body)
                message = to_anthropic_message(reply, call.alias)
                return Reply(200, JSON, _call_headers(call), body=orjson.dumps(message))
            chunks = self.router.stream(call, body)
            first = await anext(chunks)
        except Exception as exc:  # noqa: BLE001 - every failure becomes an Anthropic error body
            return error_reply(exc, incoming.request_id, anthropic=True)
        return Reply(200, SSE, _call_headers(call),
                     chunks=self._anthropic_events(call, first, chunks))

    async def _anthropic_events(self, call: Call, first, chunks) -> AsyncIterator[bytes]:
        translator = StreamTranslator(call.alias)
        try:
            yield b"".join(translator.feed(first)) + PING_EVENT
            async for chunk in chunks:
                events = translator.feed(chunk)
                if events:
                    yield b"".join(events)
            yield b"".join(translator.finish())
        except Exception as exc:  # noqa: BLE001 - the status is sent: report in-band
            yield error_event(user_error(exc, call.request_id))
        finally:
            await chunks.aclose()  # the client may be gone: meter and free the upstream now

    async def openai_embeddings(self, data: bytes, incoming: Incoming) -> Reply:
        """Exact OpenAI embeddings wire format."""
        try:
            body = parse_embeddings_request(data)
            call = new_call(incoming, body["model"], kind="embeddings")
            reply = await self.router.embed(call, body)
            return Reply(200, JSON, _call_headers(call), body=shape_completion(reply, call.alias))
        except Exception as exc:  # noqa: BLE001 - every failure becomes an OpenAI error body
            return error_reply(exc, incoming.request_id)

    async def openai_models(self, incoming: Incoming) -> Reply:
        """The aliases this caller may use: key scope and routing policy decide."""
        try:
            caller = identity_from_metadata(incoming.headers)
            created = int(time.time())
            data = [
                {"id": alias, "object": "model", "created": created, "owned_by": "lockgate"}
                for alias, _ in await self.router.aliases(caller)
            ]
            return Reply(200, JSON, body=orjson.dumps({"object": "list", "data": data}))
        except Exception as exc:  # noqa: BLE001 - every failure becomes an OpenAI error body
            return error_reply(exc, incoming.request_id)
