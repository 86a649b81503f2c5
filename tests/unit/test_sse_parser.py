"""The incremental text/event-stream parser: the same events however the bytes
are cut, CRLF, comments and fields, the end of a stream, size bounds."""

from __future__ import annotations

import pytest

from lockgate.errors import UpstreamError
from services.router.providers.sse import SSEEvent, SSEParser

STREAM = (
    b": keep-alive\n\n"
    b"event: message_start\ndata: {\"a\": 1}\n\n"
    b"data: one\ndata: two\nid: 7\nretry: 10\n\n"
    b"data:no-space\n\n"
    b"data: [DONE]\n\n"
)
EVENTS = [
    SSEEvent("message_start", b'{"a": 1}'),
    SSEEvent("", b"one\ntwo"),
    SSEEvent("", b"no-space"),
    SSEEvent("", b"[DONE]"),
]


def parse(pieces, max_bytes: int = 1 << 20) -> list[SSEEvent]:
    parser = SSEParser(max_bytes)
    events = [e for piece in pieces for e in parser.feed(piece)]
    return events + parser.finish()


def test_whole_stream_in_one_read():
    assert parse([STREAM]) == EVENTS


@pytest.mark.parametrize("size", [1, 2, 3, 7, 16])
def test_any_cut_of_the_bytes_gives_the_same_events(size):
    assert parse([STREAM[i:i + size] for i in range(0, len(STREAM), size)]) == EVENTS


def test_crlf_line_endings():
    crlf = STREAM.replace(b"\n", b"\r\n")
    assert parse([crlf]) == EVENTS
    assert parse([crlf[i:i + 1] for i in range(len(crlf))]) == EVENTS


def test_the_end_of_the_stream_completes_a_last_event():
    assert parse([b"data: a\n\ndata: b\ndata: c"]) == [SSEEvent("", b"a"), SSEEvent("", b"b\nc")]
    assert parse([b"data: a\n"]) == [SSEEvent("", b"a")]
    assert parse([b": only a comment\n\n", b""]) == []


def test_events_come_out_as_soon_as_their_blank_line_arrives():
    parser = SSEParser(1024)
    assert parser.feed(b"data: a\n") == []
    assert parser.feed(b"\ndata: b") == [SSEEvent("", b"a")]
    assert parser.feed(b"\n\n") == [SSEEvent("", b"b")]


def test_an_oversized_event_is_refused():
    with pytest.raises(UpstreamError, match="oversized"):
        parse([b"data: " + b"x" * 600 + b"\n", b"data: " + b"y" * 600 + b"\n\n"], max_bytes=1000)


def test_a_line_that_never_ends_is_refused_before_it_outgrows_the_bound():
    parser = SSEParser(1000)
    with pytest.raises(UpstreamError, match="oversized"):
        for _ in range(100):
            parser.feed(b"data: " + b"z" * 100)  # no newline, ever
