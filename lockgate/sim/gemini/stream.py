"""The streams of the simulator's Gemini dialect.

``streamGenerateContent``
    The same reply in pieces: with ``alt=sse`` a ``text/event-stream`` whose
    events' ``data`` are GenerateContentResponses; without it (as Google does)
    one JSON array of them. One event per content chunk (``x-sim-chunk-count``
    groups words), then a last event with an empty text part, the
    ``finishReason`` and the final ``usageMetadata`` (earlier events carry the
    prompt count only). A function call is sent whole in that last event.

``x-sim-drop-after-chunks: k`` sends ``k`` content events, then closes the
connection (no finishing event, no closing ``]`` in array mode).
"""

from __future__ import annotations

import orjson
from aiohttp import web

from lockgate.sim import replies, streaming
from lockgate.sim.gemini.errors import _JSON
from lockgate.sim.gemini.reply import _Candidate, _usage, _with_index
from lockgate.sim.knobs import Knobs

_SSE = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _content_events(
    candidates: list[_Candidate], knobs: Knobs, prompt: int, head: dict
) -> list[dict]:
    chunked = [replies.group_pieces(c.pieces, knobs.chunk_count) for c in candidates]
    events = []
    for p in range(max((len(c) for c in chunked), default=0)):
        cands = [
            _with_index({"content": {"parts": [{"text": chunks[p]}], "role": "model"}}, i)
            for i, chunks in enumerate(chunked)
            if p < len(chunks)
        ]
        events.append({"candidates": cands, "usageMetadata": _usage(prompt, None), **head})
    return events


async def _send_stream(
    request: web.Request, knobs: Knobs, events: list[dict], final: dict
) -> web.StreamResponse:
    """The content events, then the final one as its own paced write."""
    sse = request.query.get("alt") == "sse"
    bodies = [orjson.dumps(e) for e in events]
    last = orjson.dumps(final)
    if sse:
        frames = [b"data: " + b + b"\r\n\r\n" for b in bodies]
        tail = b"data: " + last + b"\r\n\r\n"
    else:  # a JSON array of responses, as Google sends without alt=sse
        frames = [(b",\r\n" if k else b"[") + b for k, b in enumerate(bodies)]
        tail = (b",\r\n" if frames else b"[") + last + b"]"
    return await streaming.send(
        request, knobs, b"", frames, tail, _SSE if sse else _JSON, tail_apart=True,
        dialect="gemini",
    )

