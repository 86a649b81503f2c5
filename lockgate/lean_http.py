"""Lean HTTP/1.1 for the calls every governed request makes.

grpc.aio hands every event between gRPC's I/O threads and the event loop: on
the 2-core bench machine a unary call cost its server ~0.5-1 ms of CPU and a
dozen thread switches, more than the work it carried (docs/performance.md).
The hops on every request's path that Lockgate controls both ends of —
Envoy's access check (auth), Envoy to the router's provider-compatible
endpoints, and the router's admission check (ledger) — use this instead:
keep-alive HTTP/1.1 parsed by httptools on the event loop itself, tens of µs
a call. Everything else stays gRPC.

- `LeanHttpServer`: answers each request with `await handler(request)`, in
  order per connection: whole response bytes, or an async iterator of
  already-framed pieces (a stream, written with the transport's flow control
  and closed when the client goes away); bounded request line, headers and
  body (400 and close); an exception in the handler answers 503 and is
  logged, never raised into the event loop.
- `LeanHttpClient`: POSTs a body to one server over a bounded pool of
  keep-alive connections (lockgate/upstream_client.py's); any failure (refused,
  reset, timeout, bad answer) raises `HttpCallFailed` and drops that connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus

import httptools

from lockgate.metrics import count_http_call
from lockgate.upstream_client import (
    BadResponse,
    RefusedRequest,
    ResponseTooLarge,
    UpstreamClient,
    UpstreamConnectError,
    UpstreamReply,
)

log = logging.getLogger("lockgate.lean_http")

#: Requests read but not answered yet stay under this many per connection
#: (Envoy sends one at a time; a client pipelining more is read no further).
_MAX_PENDING = 16
_MAX_HEADERS = 128
#: Pending connections the kernel queues (it caps this at net.core.somaxconn).
_BACKLOG = 4096
_MAX_HEADER_BYTES = 64 * 1024


@dataclass(slots=True)
class HttpRequest:
    method: str = ""
    path: str = ""
    #: Lower-case names; a repeated header is one comma-joined value.
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    #: time.perf_counter() when the whole request had arrived.
    arrived: float = 0.0


class BadRequest(Exception):
    """A request the server will not handle (answered 400, connection closed)."""


def status_line(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Status"
    return f"HTTP/1.1 {status} {phrase}\r\n".encode()


def header_line(name: str, value: str) -> bytes:
    if "\r" in value or "\n" in value or "\0" in value:
        # Values may come from a database: never let one split the response.
        raise ValueError(f"header {name} has a control character in its value")
    return f"{name}: {value}\r\n".encode()


def response(status: int, headers: list[tuple[str, str]] | tuple = (), body: bytes = b"") -> bytes:
    """A whole HTTP/1.1 response with a content-length."""
    return b"".join((
        status_line(status),
        *(header_line(k, v) for k, v in headers),
        b"content-length: %d\r\n\r\n" % len(body),
        body,
    ))


def _bad_request(message: str) -> bytes:
    return response(400, [("content-type", "text/plain"), ("connection", "close")],
                    message.encode())


_FAILED = response(503, [("content-type", "text/plain")], b"request failed; retry\n")

#: A handler answers whole response bytes, or a stream of already-framed pieces.
Handler = Callable[[HttpRequest], Awaitable[bytes | AsyncIterator[bytes]]]


class _ServerConnection(asyncio.Protocol):
    def __init__(self, server: LeanHttpServer):
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.current: HttpRequest | None = None
        self.body: list[bytes] = []
        self.size = 0
        self.pending: deque[HttpRequest] = deque()
        self.worker: asyncio.Task | None = None
        self.paused = False
        #: Set while the transport's write buffer is below its high-water mark.
        self.writable = asyncio.Event()
        self.writable.set()

    # -- asyncio.Protocol --------------------------------------------------
    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.server.connections.add(self)

    def connection_lost(self, exc) -> None:
        self.transport = None
        self.server.connections.discard(self)
        self.writable.set()
        if self.worker is not None:
            self.worker.cancel()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except BadRequest as exc:
            self._refuse(str(exc))
        except httptools.HttpParserError as exc:
            # A limit hit in a callback arrives wrapped by the parser.
            cause = exc.__cause__ or exc.__context__
            self._refuse(str(cause) if isinstance(cause, BadRequest) else "malformed HTTP request")

    # -- httptools callbacks -----------------------------------------------
    def on_message_begin(self) -> None:
        self.current = HttpRequest()
        self.body = []
        self.size = 0

    def _count(self, n: int) -> None:
        self.size += n
        if self.size > _MAX_HEADER_BYTES:
            raise BadRequest("request line and headers too large")

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        self.current.path += url.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value))
        headers = self.current.headers
        if len(headers) >= _MAX_HEADERS:
            raise BadRequest("too many headers")
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]},{text}" if key in headers else text

    def on_headers_complete(self) -> None:
        self.current.method = self.parser.get_method().decode("latin-1")
        self.size = 0

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > self.server.max_body_bytes:
            raise BadRequest("request body too large")
        self.body.append(body)

    def on_message_complete(self) -> None:
        request = self.current
        request.body = b"".join(self.body)
        request.arrived = time.perf_counter()
        self.current, self.body = None, []
        self.pending.append(request)
        if len(self.pending) >= _MAX_PENDING and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        if self.worker is None or self.worker.done():
            self.worker = asyncio.get_running_loop().create_task(self._answer_pending())

    # -- answering -----------------------------------------------------------
    async def _answer_pending(self) -> None:
        while self.pending and self.transport is not None:
            request = self.pending.popleft()
            try:
                reply = await self.server.handler(request)
            except Exception:  # noqa: BLE001 - fail the call, never the event loop
                log.exception("request failed", extra={
                    "server": self.server.name, "request_id": request.headers.get("x-request-id", ""),
                })
                reply = _FAILED
            if self.transport is None:
                if not isinstance(reply, bytes):
                    await reply.aclose()
                return
            if isinstance(reply, bytes):
                self.transport.write(reply)
                self.server.measure(request, reply)
            elif not await self._stream(reply, request):
                return
            if self.paused and len(self.pending) < _MAX_PENDING // 2:
                self.paused = False
                self.transport.resume_reading()

    async def _stream(self, pieces: AsyncIterator[bytes], request: HttpRequest) -> bool:
        """Write a streamed reply; False when the connection is gone (or had to go)."""
        head = b""
        try:
            async for piece in pieces:
                if self.transport is None:
                    return False
                head = head or piece
                self.transport.write(piece)
                await self.writable.wait()  # the client reads slowly: do not buffer its stream
            return self.transport is not None
        except Exception:  # noqa: BLE001 - the status is sent: all that is left is to hang up
            log.exception("stream failed", extra={
                "server": self.server.name, "request_id": request.headers.get("x-request-id", ""),
            })
            if self.transport is not None:
                self.transport.close()
            return False
        finally:
            await pieces.aclose()
            self.server.measure(request, head)

    def _refuse(self, message: str) -> None:
        self.server.refused += 1
        if self.transport is not None:
            self.transport.write(_bad_request(message))
            self.transport.close()
            self.transport = None


class LeanHttpServer:
    """A listening socket whose every request is answered by `handler`; started
    with its service (`listen`) and closed at its stop (`close`)."""

    def __init__(self, name: str, handler: Handler, host: str, port: int, max_body_bytes: int,
                 methods: dict[str, str] | None = None, other_method: str = "other"):
        #: The service, as metrics and logs name it.
        self.name = name
        self.handler = handler
        #: path -> the method name metrics label its calls with (`other_method` for
        #: the rest: a client cannot grow the label set).
        self.methods = methods or {}
        self.other_method = other_method
        self.host, self.port = host, port
        self.max_body_bytes = max_body_bytes
        self.server: asyncio.Server | None = None
        self.connections: set[_ServerConnection] = set()
        #: Requests refused as malformed or oversized (for tests and logs).
        self.refused = 0

    def measure(self, request: HttpRequest, head: bytes) -> None:
        """Count a call answered with `head` (its response starts with the status line)."""
        method = self.methods.get(request.path.split("?", 1)[0], self.other_method)
        status = head[9:12].decode("latin-1") if head.startswith(b"HTTP/1.1 ") else "none"
        count_http_call(self.name, method, status, time.perf_counter() - request.arrived)

    async def listen(self) -> int:
        """Bind and serve; returns the port (the one chosen when `port` is 0)."""
        # HTTP/1.1 carries one call at a time per connection, so Envoy opens one per
        # call in flight: a burst of a thousand streams is a thousand connects at once
        # (asyncio's default backlog of 100 made most of them time out).
        self.server = await asyncio.get_running_loop().create_server(
            lambda: _ServerConnection(self), self.host, self.port, reuse_address=True,
            backlog=_BACKLOG,
        )
        self.port = self.server.sockets[0].getsockname()[1]
        log.info("serving over HTTP", extra={"server": self.name, "port": self.port})
        return self.port

    def start(self) -> None:
        """Already listening (see `listen`); here for a service's background list."""

    async def close(self, grace_seconds: float = 5.0) -> None:
        """Stop listening, let requests in progress finish (up to `grace_seconds`),
        then close the clients' keep-alive connections (they reconnect to another
        replica)."""
        if self.server is None:
            return
        self.server.close()
        busy = [c.worker for c in self.connections if c.worker is not None and not c.worker.done()]
        if busy:
            await asyncio.wait(busy, timeout=grace_seconds)
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.close()
        await self.server.wait_closed()


# -- client --------------------------------------------------------------------------


class HttpCallFailed(Exception):
    """The server could not be reached, or did not answer properly, in time."""


#: Bound on an answer's body (Admit's answers are a few hundred bytes).
_MAX_REPLY_BYTES = 1 << 20


class LeanHttpClient:
    """POSTs to one server (`host:port`) over at most `max_connections` keep-alive
    connections; callers beyond that wait for one to come free. The pool is
    lockgate/upstream_client.py's (the one the router calls providers with); this
    names the server once and turns every failure into `HttpCallFailed`."""

    def __init__(self, host: str, port: int, *, max_connections: int = 32):
        self._address = f"{host}:{port}"
        self._client = UpstreamClient(max_connections=max_connections)

    async def post(self, path: str, body: bytes, content_type: str, *, within: float,
                   headers: tuple[tuple[str, str], ...] = ()) -> UpstreamReply:
        try:
            return await self._client.post(
                f"http://{self._address}{path}", body,
                {"content-type": content_type, **dict(headers)},
                connect_timeout=within, max_bytes=_MAX_REPLY_BYTES, within=within)
        except TimeoutError:
            raise HttpCallFailed(f"no answer within {within:g} s") from None
        except UpstreamConnectError as exc:
            raise HttpCallFailed(str(exc)) from None  # "cannot reach host:port: …"
        except OSError as exc:
            raise HttpCallFailed(f"{self._address} closed the connection: {exc}") from None
        except (BadResponse, ResponseTooLarge, RefusedRequest) as exc:
            raise HttpCallFailed(f"bad answer from {self._address}: {exc}") from None

    @property
    def idle(self) -> list:
        """The keep-alive connections waiting for a call (at most max_connections)."""
        return self._client.idle_connections()

    def close(self) -> None:
        self._client.close()
