"""A streamed answer of the lean upstream client (lockgate/upstream_client.py):
its body handed to the reader piece by piece as the parser delivers it.

- `StreamedAnswer`: what the connection's parser callbacks feed while a stream
  is read — the head (resolving `head`), each piece of the body (queued, the
  reader's one future woken), its end, its failure (the first one sticks: a
  missed deadline stays a timeout when the hang-up that follows lands first).
  A reader slower than the provider pauses the reads from the socket past
  `STREAM_BUFFER_BYTES` unread, so a stream's memory is bounded.
- `UpstreamStream`: the caller's handle (status, headers, `read`, `expire_at`,
  `close`). Closing it at the provider's last event waits, within
  `DRAIN_SECONDS` and `DRAIN_BYTES`, for the body's last bytes (the chunked
  encoding's end, often in a later packet), so the connection can be reused;
  closing it midway closes the connection, so the provider stops generating.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Protocol

from lockgate.upstream_errors import BadResponse

#: A stream's body read from the socket but not yet by its reader: past this,
#: reading from the socket pauses until the reader catches up.
STREAM_BUFFER_BYTES = 256 * 1024
#: A stream closed at the provider's last event, before the end of its body (the
#: chunked encoding's last bytes, often in a later packet), waits this long and
#: reads at most DRAIN_BYTES for it, so that its connection can be reused.
DRAIN_SECONDS = 0.5
DRAIN_BYTES = 64 * 1024


class _Link(Protocol):
    """What a stream needs of its connection."""

    transport: asyncio.Transport | None
    reusable: bool

    def close(self) -> None: ...

    def expire(self) -> None: ...


class StreamedAnswer:
    """A stream's state on its connection, fed by the parser's callbacks."""

    def __init__(self, link: _Link):
        self.link = link
        #: The status and headers, once in.
        self.head: asyncio.Future[tuple[int, dict[str, str]]] = (
            asyncio.get_running_loop().create_future())
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

    # -- fed by the connection ------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self.ended or self.failure is not None

    def headers_complete(self, status: int, headers: dict[str, str], declared: int | None) -> None:
        if status < 200:
            raise BadResponse(f"unexpected interim answer {status}")
        if headers.get("content-encoding", "identity").strip().lower() != "identity":
            raise BadResponse("the stream is encoded, though the request asked for none")
        if not self.head.done():
            self.head.set_result((status, headers))

    def body(self, piece: bytes) -> None:
        if self.draining is not None:  # nobody reads it: only its size counts
            self.buffered += len(piece)
            if self.buffered > DRAIN_BYTES:
                self._drained(False)
            return
        self.pieces.append(piece)
        self.buffered += len(piece)
        if self.buffered > STREAM_BUFFER_BYTES and not self.reading_paused:
            self.reading_paused = True
            self.link.transport.pause_reading()
        self._wake()

    def end(self) -> None:
        self.ended = True
        self._wake()
        self._drained(self.link.reusable)

    def fail(self, exc: BaseException) -> None:
        if not self.head.done():
            self.head.set_exception(exc)
        if not self.ended and self.failure is None:
            self.failure = exc  # the first: the deadline, not the hang-up that follows
            self._wake()
        self._drained(False)

    # -- the reader's side ----------------------------------------------------------------

    async def read(self) -> bytes:
        """The body's next piece as it came off the socket; b"" once it has ended."""
        while True:
            if self.pieces:
                piece = self.pieces.popleft()
                self.buffered -= len(piece)
                if self.reading_paused and self.buffered <= STREAM_BUFFER_BYTES // 2:
                    self.reading_paused = False
                    if self.link.transport is not None:
                        self.link.transport.resume_reading()
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
            self.link.close()
        then(reusable)

    def _wake(self) -> None:
        if self.reader is not None and not self.reader.done():
            self.reader.set_result(None)


class UpstreamStream:
    """An answer being streamed: `status` and `headers` at once, then the body
    piece by piece (`read`). Holds its connection and a slot of the pool until
    `close`, which every reader must call (a `finally`): a stream read to its end
    gives its connection back for reuse, any other is closed, so the provider
    stops generating."""

    __slots__ = ("status", "headers", "_answer", "_done", "_timer")

    def __init__(self, answer: StreamedAnswer, done: Callable[[bool], None],
                 timer: asyncio.TimerHandle):
        self.status, headers = answer.head.result()
        #: Lower-case names; a repeated header keeps its last value.
        self.headers = headers
        self._answer = answer
        self._done: Callable[[bool], None] | None = done
        self._timer = timer

    async def read(self) -> bytes:
        """The next piece of the body (b"" at its end). Raises TimeoutError once the
        deadline passed, ConnectionError if the provider hung up midway,
        BadResponse on a malformed body."""
        return await self._answer.read()

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
        self._timer = asyncio.get_running_loop().call_at(when, self._answer.link.expire)

    def close(self, *, at_last_event: bool = False) -> None:
        """Done with the stream (idempotent): see the class. `at_last_event`: the
        reader stopped at the provider's last event, so what may be left of the
        body is its end, worth a moment's wait to keep the connection."""
        if self._done is None:
            return
        self._timer.cancel()
        done, self._done = self._done, None
        answer = self._answer
        if (at_last_event and not answer.ended and answer.failure is None
                and answer.link.transport is not None and not answer.pieces):
            answer.drain(done)
            return
        done(answer.ended and answer.failure is None and answer.link.reusable
             and not answer.pieces)
