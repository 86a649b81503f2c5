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
buffers in between ("Streams without aiohttp" there).

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
  come in first, within `DRAIN_SECONDS`, so that the connection is kept); a
  reader slower than the provider stops the reading from the socket, so at
  most `STREAM_BUFFER_BYTES` and one read wait per stream;
- bounded: the response body (`max_bytes`, also after decoding), the header
  block, the header count; a header name or value that could split the
  request is refused before anything is sent;
- any failure closes that connection; it is never reused half-read.

Failures are raised as `RefusedRequest` (nothing sent), `UpstreamConnectError`
(nothing reached the provider), `TimeoutError` (the connect timeout, or the
call's deadline: `post(within=…)`, a stream's `expire_at`),
`ConnectionError` (closed mid-answer), `ResponseTooLarge` and `BadResponse`;
providers/http.py maps them to the gateway's errors, as it maps aiohttp's. A
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
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

#: The header block of a response is read up to this size.
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 256
#: A stream's body read from the socket but not yet by its reader: past this,
#: reading from the socket pauses until the reader catches up.
STREAM_BUFFER_BYTES = 256 * 1024
#: A stream closed at the provider's last event, before the end of its body (the
#: chunked encoding's last bytes, often in a later packet), waits this long and
#: reads at most DRAIN_BYTES for it, so that its connection can be reused.
DRAIN_SECONDS = 0.5
DRAIN_BYTES = 64 * 1024
#: Parsed request targets kept (base URLs times documented paths: a handful).
_MAX_TARGETS = 1024
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class UpstreamConnectError(OSError):
    """The provider could not be reached (refused, no route, DNS, TLS handshake)."""


class ResponseTooLarge(Exception):
    """The answer is larger than the caller's bound."""


class BadResponse(Exception):
    """The answer is not HTTP/1.1 this client can read."""


class RefusedRequest(ValueError):
    """The request was not sent: a URL or header this client will not put on the wire."""


@dataclass(slots=True)
class UpstreamReply:
    status: int
    #: Lower-case names; a repeated header keeps its last value.
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class _Head:
    status: int
    headers: dict[str, str]


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


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one exchange at a time."""

    def __init__(self):
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future | None = None
        self.max_bytes = 0
        self.size = 0
        self.header_bytes = 0
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.headers_done = False
        self.delimited = True  # by content-length or chunked (not by the connection's end)
        self.reusable = False
        self.idle_since = 0.0
        #: A stream's state: its body pieces not read yet (and their size), whether
        #: the body has ended, the failure that ended it, the reader waiting.
        self.streaming = False
        self.pieces: deque[bytes] = deque()
        self.buffered = 0
        self.ended = False
        self.failure: BaseException | None = None
        self.reader: asyncio.Future | None = None
        self.reading_paused = False
        #: Set while a closed stream waits for its body's end: called with whether
        #: the connection can be reused.
        self.draining: Callable[[bool], None] | None = None
        self.drain_timer: asyncio.TimerHandle | None = None

    # -- asyncio -----------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.transport = None
        if self.streaming and self.headers_done:
            if not self.ended:
                if not self.delimited and exc is None:
                    self._end()  # a body that ends with the connection
                else:
                    self._fail(ConnectionResetError("the provider closed the connection"))
            return
        if self.waiter is None or self.waiter.done():
            return
        if self.headers_done and not self.delimited and exc is None:
            self._finish()  # a body that ends with the connection
        else:
            self._fail(ConnectionResetError("the provider closed the connection"))

    def data_received(self, data: bytes) -> None:
        if not self.streaming and (self.waiter is None or self.waiter.done()):
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
        if self.streaming:
            status = self.parser.get_status_code()
            if status < 200:
                raise BadResponse(f"unexpected interim answer {status}")
            if self.headers.get("content-encoding", "identity").strip().lower() != "identity":
                raise BadResponse("the stream is encoded, though the request asked for none")
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(_Head(status, self.headers))
            return
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            raise ResponseTooLarge("declared larger than the bound")

    def on_body(self, body: bytes) -> None:
        if self.draining is not None:  # nobody reads it: only its size counts
            self.buffered += len(body)
            if self.buffered > DRAIN_BYTES:
                self._drained(False)
            return
        if self.streaming:
            self.pieces.append(body)
            self.buffered += len(body)
            if self.buffered > STREAM_BUFFER_BYTES and not self.reading_paused:
                self.reading_paused = True
                self.transport.pause_reading()
            self._wake()
            return
        self.size += len(body)
        if self.size > self.max_bytes:
            raise ResponseTooLarge("larger than the bound")
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.streaming:
            self._end()
        else:
            self._finish()

    # -- the exchange ------------------------------------------------------------------

    def _finish(self) -> None:
        if self.waiter is None or self.waiter.done():
            return
        try:
            status = self.parser.get_status_code()
            if status < 200:
                raise BadResponse(f"unexpected interim answer {status}")
            body = _decoded(b"".join(self.body), self.headers.get("content-encoding", ""),
                            self.max_bytes)
        except (BadResponse, ResponseTooLarge) as exc:
            self._fail(exc)
            return
        self.reusable = (self.delimited and self.transport is not None
                         and self.parser.should_keep_alive())
        self.waiter.set_result(UpstreamReply(status, self.headers, body))

    def _fail(self, exc: BaseException) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        if self.streaming and not self.ended and self.failure is None:
            self.failure = exc  # the first: the deadline, not the hang-up that follows
            self._wake()
        self.close()
        self._drained(False)

    def expire(self) -> None:
        """The call's deadline passed: the exchange in progress fails (TimeoutError),
        or the stream's next read does."""
        if self.streaming:
            self._fail(TimeoutError())
        elif self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(TimeoutError())

    # -- a stream ----------------------------------------------------------------------

    def _end(self) -> None:
        self.ended = True
        self.reusable = (self.delimited and self.transport is not None
                         and self.parser.should_keep_alive())
        self._wake()
        self._drained(self.reusable)

    def drain(self, then: Callable[[bool], None]) -> None:
        """Wait for the body's end, throwing it away, within DRAIN_SECONDS and
        DRAIN_BYTES; then `then(reusable)`."""
        self.draining = then
        self.buffered = 0
        self.drain_timer = asyncio.get_running_loop().call_later(
            DRAIN_SECONDS, self._drained, False)

    def _drained(self, reusable: bool) -> None:
        then, self.draining = self.draining, None
        if then is None:
            return
        self.drain_timer.cancel()
        if not reusable:
            self.close()
        then(reusable)

    def _wake(self) -> None:
        if self.reader is not None and not self.reader.done():
            self.reader.set_result(None)

    async def open_stream(self, request: bytes) -> _Head:
        """Send the request; the answer's head once it is in (its body: `read`)."""
        self.streaming, self.ended, self.failure = True, False, None
        self.pieces.clear()
        self.buffered = 0
        return await self._send(request)

    async def read(self) -> bytes:
        """The body's next piece as it came off the socket; b"" once it has ended."""
        while True:
            if self.pieces:
                piece = self.pieces.popleft()
                self.buffered -= len(piece)
                if self.reading_paused and self.buffered <= STREAM_BUFFER_BYTES // 2:
                    self.reading_paused = False
                    if self.transport is not None:
                        self.transport.resume_reading()
                return piece
            if self.failure is not None:
                raise self.failure
            if self.ended:
                return b""
            self.reader = asyncio.get_running_loop().create_future()
            try:
                await self.reader
            finally:
                self.reader = None

    async def exchange(self, request: bytes, max_bytes: int) -> UpstreamReply:
        self.max_bytes, self.size, self.body = max_bytes, 0, []
        return await self._send(request)

    async def _send(self, request: bytes):
        """Write a request; what the answer resolves the waiter with (the whole
        answer, or a stream's head)."""
        self.headers, self.headers_done, self.reusable, self.header_bytes = {}, False, False, 0
        self.waiter = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(request)
        try:
            return await self.waiter
        finally:
            self.waiter = None

    def usable(self, now: float, idle_seconds: float) -> bool:
        return (self.transport is not None and not self.transport.is_closing()
                and now - self.idle_since < idle_seconds)

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()

    def reset(self) -> None:
        """Back to unary use, once a stream read to its end is checked in."""
        self.streaming = False
        self.pieces.clear()
        self.buffered = 0


class UpstreamStream:
    """An answer being streamed: `status` and `headers` at once, then the body
    piece by piece (`read`). Holds its connection and a slot of the pool until
    `close`, which every reader must call (a `finally`): a stream read to its end
    gives its connection back for reuse, any other is closed, so the provider
    stops generating."""

    __slots__ = ("status", "headers", "_connection", "_done", "_timer")

    def __init__(self, head: _Head, connection: _Connection,
                 done: Callable[[_Connection, bool], None], timer: asyncio.TimerHandle):
        self.status = head.status
        #: Lower-case names; a repeated header keeps its last value.
        self.headers = head.headers
        self._connection = connection
        self._done: Callable[[_Connection, bool], None] | None = done
        self._timer = timer

    async def read(self) -> bytes:
        """The next piece of the body (b"" at its end). Raises TimeoutError once the
        deadline passed, ConnectionError if the provider hung up midway,
        BadResponse on a malformed body."""
        return await self._connection.read()

    async def read_upto(self, limit: int) -> bytes:
        """The body's start, up to `limit` bytes (an error answer's message)."""
        parts, size = [], 0
        while size < limit:
            piece = await self.read()
            if not piece:
                break
            parts.append(piece)
            size += len(piece)
        return b"".join(parts)[:limit]

    def expire_at(self, when: float) -> None:
        """Move the stream's deadline to `when` (the event loop's clock)."""
        self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_at(when, self._connection.expire)

    def close(self, *, at_last_event: bool = False) -> None:
        """Done with the stream (idempotent): see the class. `at_last_event`: the
        reader stopped at the provider's last event, so what may be left of the
        body is its end, worth a moment's wait to keep the connection."""
        if self._done is None:
            return
        self._timer.cancel()
        done, self._done = self._done, None
        connection = self._connection
        if (at_last_event and not connection.ended and connection.failure is None
                and connection.transport is not None and not connection.pieces):
            connection.drain(lambda reusable: done(connection, reusable))
            return
        done(connection, connection.ended and connection.failure is None
             and connection.reusable and not connection.pieces)


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
            head = await connection.open_stream(request)
        except BaseException:
            timer.cancel()
            connection.close()  # never reused half-read
            self._slots.release()
            raise
        origin = target.origin

        def done(used: _Connection, reusable: bool) -> None:
            if reusable:
                used.reset()
                self._checkin(origin, used)
            else:
                used.close()
            self._slots.release()

        return UpstreamStream(head, connection, done, timer)

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
