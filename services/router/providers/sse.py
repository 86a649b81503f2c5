"""An incremental text/event-stream parser for providers' streamed answers.

Bytes go in as the connection delivers them (`feed`), whole events come out:
`event:` and `data:` fields (several data lines joined by newlines), comments
and unknown fields ignored, an event ending at a blank line, lines ending in
LF or CRLF. Each event is bounded in size.

One parse per network read, not one awaited `readline` per line: with a
thousand streams the reads were a sizeable share of the router's event loop
(docs/performance.md, "Streams").
"""

from __future__ import annotations

from dataclasses import dataclass

from lockgate.errors import UpstreamError


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One server-sent event: its `event:` name ("" when absent) and `data:`."""

    event: str
    data: bytes


class SSEParser:
    """Feed it the stream's bytes; it returns the events they complete."""

    __slots__ = ("max_bytes", "_partial", "_partial_size", "_event", "_data", "_size")

    def __init__(self, max_bytes: int):
        #: Bound on one event: its lines together, or one line still arriving.
        self.max_bytes = max_bytes
        self._partial: list[bytes] = []  # a line's beginning, without its newline yet
        self._partial_size = 0
        self._event = ""
        self._data: list[bytes] = []
        self._size = 0

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """The events `chunk` completes (often none, usually one)."""
        if not chunk:
            return []
        end = chunk.rfind(b"\n")
        if end < 0:  # no line ends here: keep it without copying what came before
            self._hold(chunk)
            return []
        if self._partial:
            self._partial.append(chunk[:end])
            text = self._take_partial()
        else:
            text = chunk[:end]
        rest = chunk[end + 1:]
        if rest:
            self._hold(rest)
        events: list[SSEEvent] = []
        for line in text.split(b"\n"):
            self._line(line, events)
        return events

    def finish(self) -> list[SSEEvent]:
        """The stream ended: a last line without its newline, and an event
        without its blank line, still count."""
        events: list[SSEEvent] = []
        if self._partial:
            self._line(self._take_partial(), events)
        self._line(b"", events)
        return events

    def _take_partial(self) -> bytes:
        line = b"".join(self._partial)
        self._partial, self._partial_size = [], 0
        return line

    def _hold(self, piece: bytes) -> None:
        self._partial.append(piece)
        self._partial_size += len(piece)
        if self._size + self._partial_size > self.max_bytes:
            raise UpstreamError("provider sent an oversized stream event")

    def _line(self, line: bytes, events: list[SSEEvent]) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            if self._data:
                events.append(SSEEvent(self._event, b"\n".join(self._data)))
            self._event, self._data, self._size = "", [], 0
            return
        self._size += len(line)
        if self._size > self.max_bytes:
            raise UpstreamError("provider sent an oversized stream event")
        if line.startswith(b":"):
            return
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode(errors="replace")
