"""POSTs over a lean keep-alive HTTP/1.1 pool, parsed by httptools on the event
loop: the router's calls to providers (services/router/providers/http.py),
unary (`post`: one body up, one back) and streamed (`stream`: the answer read
piece by piece as it arrives), and its calls to the ledger's `Admit`
(lockgate/lean_http.py `LeanHttpClient`).

The router+auth event loop is the stack's bottleneck, and aiohttp's client was
the largest single part of it per unary call: in a client-only benchmark
against the simulator it cost 84-120 µs of CPU per call, this 54-57
(docs/performance.md). A stream's cost is per chunk: each piece read goes from
the parser's callback to the reader's one awaited future, without aiohttp's
buffers in between ("Streams without aiohttp" there). This module holds the
pool, the requests and the connections' framing; what a stream's body becomes
is lockgate/upstream_stream.py's, the errors lockgate/upstream_errors.py's.

What it does, and what it refuses:
- http and https only (TLS verified against the system's CAs, with SNI); the
  URL is always an admin-configured base URL plus a documented path
  (providers/http.py), never the client's;
- keep-alive connections per scheme, host and port, reused newest first; one
  idle longer than `idle_seconds` (providers close theirs after 60 s or more)
  or closed by the server is dropped, never written to; at most
  `max_connections` calls at once over all hosts (callers beyond wait);
- bodies delimited by content-length, chunked, or the end of the connection;
  gzip and deflate decoded on unary answers (the request offers them, as
  aiohttp's did); a stream asks for no encoding (compression would hold
  events back) and one sent encoded anyway is refused;
- a stream holds its connection and its slot until it is read to its end
  (the connection is then reused) or closed (then the connection is too; a
  reader that closes it at the provider's last event lets the body's end
  come in first, briefly, so that the connection is kept); a reader slower
  than the provider stops the reading from the socket, so a stream's unread
  body is bounded (upstream_stream.py);
- bounded: the response body (`max_bytes`, also after decoding), the header
  block, the header count; a header name or value that could split the
  request is refused before anything is sent;
- any failure closes that connection; it is never reused half-read.

Failures are raised as `RefusedRequest` (nothing sent), `UpstreamConnectError`
(nothing reached the provider), `TimeoutError` (the connect timeout, or the
call's deadline: `post(within=…)`, a stream's `expire_at`),
`ConnectionError` (closed mid-answer), `ResponseTooLarge` and `BadResponse`;
providers/http.py maps them to the gateway's errors. A
keep-alive connection the provider closes at the moment it is reused fails
that call as closed (aiohttp does not retry a POST either); the router's
retries and failover take it from there.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

from lockgate.upstream_errors import (
    BadResponse,
    RefusedRequest,
    ResponseTooLarge,
    UpstreamConnectError,
)
from lockgate.upstream_stream import StreamedAnswer, UpstreamStream

__all__ = [
    "BadResponse", "RefusedRequest", "ResponseTooLarge", "UpstreamClient",
    "UpstreamConnectError", "UpstreamReply", "UpstreamStream",
]

#: The header block of a response is read up to this size.
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 256
#: Parsed request targets kept (base URLs times documented paths: a handful).
_MAX_TARGETS = 1024
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


@dataclass(slots=True)
class UpstreamReply:
    status: int
    #: Lower-case names; a repeated header keeps its last value.
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class _Target:
    scheme: str
    host: str
    port: int
    #: The request line (path and query) and host header, ready to send.
    head: bytes

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.host, self.port


def _target(url: str) -> _Target:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise RefusedRequest(f"unsupported URL scheme {parts.scheme!r}")
    host = parts.hostname
    if not host:
        raise RefusedRequest("the URL has no host")
    default = 443 if parts.scheme == "https" else 80
    port = parts.port or default
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    host_header = host if ":" not in host else f"[{host}]"
    if port != default:
        host_header += f":{port}"
    head = f"POST {path} HTTP/1.1\r\nhost: {host_header}\r\n".encode()
    return _Target(parts.scheme, host, port, head)


def _header_lines(headers: Mapping[str, str]) -> bytes:
    lines = []
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name):
            raise RefusedRequest(f"invalid header name {name!r}")
        if "\r" in value or "\n" in value or "\0" in value:
            raise RefusedRequest(f"header {name} has a control character in its value")
        lines.append(f"{name}: {value}\r\n")
    try:
        return "".join(lines).encode("latin-1")
    except UnicodeEncodeError:
        raise RefusedRequest("a header value is not ISO-8859-1 text") from None


class _WholeAnswer:
    """A unary answer, fed by the connection's parser callbacks: its body gathered
    within `max_bytes`, decoded, then `reply` resolved."""

    def __init__(self, max_bytes: int):
        self.reply: asyncio.Future[UpstreamReply] = asyncio.get_running_loop().create_future()
        self.max_bytes = max_bytes
        self.size = 0
        self.parts: list[bytes] = []
        self.status = 0
        self.headers: dict[str, str] = {}

    @property
    def finished(self) -> bool:
        return self.reply.done()

    def headers_complete(self, status: int, headers: dict[str, str], declared: int | None) -> None:
        self.status, self.headers = status, headers
        if declared is not None and declared > self.max_bytes:
            raise ResponseTooLarge("declared larger than the bound")

    def body(self, piece: bytes) -> None:
        self.size += len(piece)
        if self.size > self.max_bytes:
            raise ResponseTooLarge("larger than the bound")
        self.parts.append(piece)

    def end(self) -> None:
        if self.reply.done():
            return
        if self.status < 200:
            raise BadResponse(f"unexpected interim answer {self.status}")
        body = _decoded(b"".join(self.parts), self.headers.get("content-encoding", ""),
                        self.max_bytes)
        self.reply.set_result(UpstreamReply(self.status, self.headers, body))

    def fail(self, exc: BaseException) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc)


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one exchange at a time. It parses the framing
    (headers, body delimitation, keep-alive); the answer in progress, whole or
    streamed, decides what the body becomes."""

    def __init__(self):
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.answer: _WholeAnswer | StreamedAnswer | None = None
        self.header_bytes = 0
        self.headers: dict[str, str] = {}
        self.headers_done = False
        self.delimited = True  # by content-length or chunked (not by the connection's end)
        self.reusable = False
        self.idle_since = 0.0

    # -- asyncio -----------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.transport = None
        if self.answer is None or self.answer.finished:
            return
        if self.headers_done and not self.delimited and exc is None:
            self._ended()  # a body that ends with the connection
        else:
            self._fail(ConnectionResetError("the provider closed the connection"))

    def data_received(self, data: bytes) -> None:
        if self.answer is None or self.answer.finished:
            self.close()  # bytes nobody asked for: the connection is out of step
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(BadResponse("the provider switched protocols"))
        except httptools.HttpParserError as exc:
            # A bound a callback enforced comes back as the parser's error's context.
            cause = exc.__context__
            self._fail(cause if isinstance(cause, BadResponse | ResponseTooLarge)
                       else BadResponse(f"malformed HTTP response: {exc}"))

    # -- httptools ---------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value)
        if self.header_bytes > MAX_HEADER_BYTES or len(self.headers) >= MAX_HEADERS:
            raise BadResponse("the response's headers are too large")
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.headers_done = True
        length = self.headers.get("content-length")
        chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        self.delimited = length is not None or chunked
        declared = int(length) if length is not None and length.isdigit() else None
        self.answer.headers_complete(self.parser.get_status_code(), self.headers, declared)

    def on_body(self, body: bytes) -> None:
        self.answer.body(body)

    def on_message_complete(self) -> None:
        self._ended()

    # -- the exchange ------------------------------------------------------------------

    def _ended(self) -> None:
        self.reusable = (self.delimited and self.transport is not None
                         and self.parser.should_keep_alive())
        try:
            self.answer.end()
        except (BadResponse, ResponseTooLarge) as exc:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if self.answer is not None:
            self.answer.fail(exc)
        self.close()

    def expire(self) -> None:
        """The call's deadline passed: the exchange in progress fails (TimeoutError),
        or the stream's next read does."""
        if self.answer is not None and not self.answer.finished:
            self._fail(TimeoutError())

    def _send(self, request: bytes, answer: _WholeAnswer | StreamedAnswer) -> None:
        self.headers, self.headers_done, self.reusable, self.header_bytes = {}, False, False, 0
        self.answer = answer
        assert self.transport is not None
        self.transport.write(request)

    async def exchange(self, request: bytes, max_bytes: int) -> UpstreamReply:
        answer = _WholeAnswer(max_bytes)
        self._send(request, answer)
        try:
            return await answer.reply
        finally:
            self.answer = None

    async def open_stream(self, request: bytes) -> StreamedAnswer:
        """Send the request; the answer once its head is in (its body: `read`)."""
        answer = StreamedAnswer(self)
        self._send(request, answer)
        await answer.head
        return answer

    def usable(self, now: float, idle_seconds: float) -> bool:
        return (self.transport is not None and not self.transport.is_closing()
                and now - self.idle_since < idle_seconds)

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()


def _decoded(body: bytes, encoding: str, max_bytes: int) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise BadResponse(f"unsupported content-encoding {encoding!r}")
    # 47: a gzip or zlib header, detected; raw deflate (some servers) is tried after.
    for wbits in (47, -15):
        decoder = zlib.decompressobj(wbits)
        try:
            out = decoder.decompress(body, max_bytes + 1)
        except zlib.error:
            continue
        if len(out) > max_bytes or decoder.unconsumed_tail:
            raise ResponseTooLarge("larger than the bound once decoded")
        return out
    raise BadResponse(f"the {encoding} body does not decode")


class UpstreamClient:
    """POSTs one body and reads one answer, over keep-alive connections."""

    def __init__(self, *, max_connections: int = 1000, idle_seconds: float = 15.0,
                 ssl_context: ssl.SSLContext | None = None):
        self.idle_seconds = idle_seconds
        self._ssl = ssl_context
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._targets: dict[str, _Target] = {}

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], *,
                   connect_timeout: float, max_bytes: int, within: float) -> UpstreamReply:
        """POST `body`, read the answer. `within` (seconds) bounds the whole call (the wait
        for a free connection, the connect, the answer): TimeoutError past it.

        The deadline is one timer on the loop, cancelled when the answer is in,
        not an `asyncio.timeout` (≈ 3x the cost, once per provider call)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        target, request = self._request(url, headers, body, b"gzip, deflate")
        connection = await self._connection(target, connect_timeout, deadline)
        try:
            expiry = loop.call_at(deadline, connection.expire)
            try:
                reply = await connection.exchange(request, max_bytes)
            except BaseException:
                connection.close()  # never reused half-read
                raise
            finally:
                expiry.cancel()
            if connection.reusable:
                self._checkin(target.origin, connection)
            else:
                connection.close()
            return reply
        finally:
            self._slots.release()

    async def stream(self, url: str, body: bytes, headers: Mapping[str, str], *,
                     connect_timeout: float, head_by: float) -> UpstreamStream:
        """POST `body`; the answer as an UpstreamStream once its head is in. `head_by`
        (the event loop's clock) bounds the wait for a free connection, the connect
        and the head, and then the stream, until moved (`expire_at`): TimeoutError
        past it, from here or from a read."""
        loop = asyncio.get_running_loop()
        target, request = self._request(url, headers, body, b"identity")
        connection = await self._connection(target, connect_timeout, head_by)
        timer = loop.call_at(head_by, connection.expire)
        try:
            answer = await connection.open_stream(request)
        except BaseException:
            timer.cancel()
            connection.close()  # never reused half-read
            self._slots.release()
            raise
        origin = target.origin

        def done(reusable: bool) -> None:
            if reusable:
                self._checkin(origin, connection)
            else:
                connection.close()
            self._slots.release()

        return UpstreamStream(answer, done, timer)

    def _request(self, url: str, headers: Mapping[str, str], body: bytes,
                 accept_encoding: bytes) -> tuple[_Target, bytes]:
        """The request's target and bytes (RefusedRequest before anything is sent)."""
        target = self._targets.get(url)
        if target is None:
            if len(self._targets) >= _MAX_TARGETS:
                self._targets.clear()
            target = self._targets[url] = _target(url)
        return target, b"".join((
            target.head, _header_lines(headers),
            b"accept-encoding: %s\r\ncontent-length: %d\r\n\r\n" % (accept_encoding, len(body)),
            body,
        ))

    async def _connection(self, target: _Target, connect_timeout: float,
                          deadline: float) -> _Connection:
        """A slot of the pool and a connection to `target`, by `deadline` (the event
        loop's clock); the caller gives the slot back when the call is over."""
        if self._slots.locked():  # every connection busy: wait, within the deadline
            async with asyncio.timeout_at(deadline):
                await self._slots.acquire()
        else:
            await self._slots.acquire()  # free: returns at once
        try:
            return self._checkout(target.origin) or await self._connect(
                target, min(connect_timeout, deadline - asyncio.get_running_loop().time()))
        except BaseException:
            self._slots.release()
            raise

    def _checkin(self, origin: tuple[str, str, int], connection: _Connection) -> None:
        connection.answer = None  # a stream's, once read to its end
        now = time.monotonic()
        connection.idle_since = now
        idle = self._idle.setdefault(origin, [])
        # Reuse takes the newest (the top); the oldest (the bottom) may sit unused
        # under steady traffic: close it once idle too long, one per call.
        if idle and not idle[0].usable(now, self.idle_seconds):
            idle.pop(0).close()
        idle.append(connection)

    def _checkout(self, origin: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if connection.usable(now, self.idle_seconds):
                return connection
            connection.close()
        return None

    async def _connect(self, target: _Target, connect_seconds: float) -> _Connection:
        tls = None
        if target.scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            tls = self._ssl
        try:
            async with asyncio.timeout(connect_seconds):
                _transport, connection = await asyncio.get_running_loop().create_connection(
                    _Connection, target.host, target.port, ssl=tls,
                    server_hostname=target.host if tls else None,
                )
        except TimeoutError:  # an OSError too: raised as it is
            raise
        except OSError as exc:  # refused, unreachable, DNS, TLS (ssl.SSLError)
            raise UpstreamConnectError(f"cannot reach {target.host}:{target.port}: {exc}") from exc
        return connection

    def idle_connections(self) -> list[_Connection]:
        """The keep-alive connections waiting for a call, over all hosts."""
        return [connection for idle in self._idle.values() for connection in idle]

    def close(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
