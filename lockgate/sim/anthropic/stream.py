"""The simulator's Anthropic streams (``"stream": true``).

``event:``/``data:`` pairs in Anthropic's order: message_start (usage with input_tokens), content_block_start, ping,
content_block_delta (text_delta, or input_json_delta starting with an empty
``partial_json``), content_block_stop, message_delta (stop_reason and usage
with output_tokens), message_stop.

``x-sim-drop-after-chunks: k`` sends the events up to the first
content_block_delta and ``k`` content deltas, then cuts the connection.
"""

from __future__ import annotations

from typing import Any

import orjson

from lockgate.sim import replies
from lockgate.sim.anthropic.reply import Answer, _usage
from lockgate.sim.anthropic.validate import MessagesRequest


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def stream_events(
    req: MessagesRequest, answer: Answer, message_id: str, chunk_count: int | None
) -> tuple[bytes, list[bytes], bytes]:
    """(head through the first block's start and the ping, content deltas, tail)."""
    start = {
        "id": message_id, "type": "message", "role": "assistant", "model": req.model,
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": _usage(answer.input_tokens, min(1, answer.output_tokens)),
    }
    head = [_event("message_start", {"type": "message_start", "message": start})]
    deltas: list[bytes] = []
    tail: list[bytes] = []
    if answer.content:
        block = dict(answer.content[0])
        if answer.call is not None:
            block["input"] = {}
            first = {"type": "input_json_delta", "partial_json": ""}
            kind, field = "input_json_delta", "partial_json"
        else:
            block["text"] = ""
            first = None
            kind, field = "text_delta", "text"
        head.append(_event("content_block_start",
                           {"type": "content_block_start", "index": 0, "content_block": block}))
        head.append(_event("ping", {"type": "ping"}))
        if first is not None:
            head.append(_event("content_block_delta",
                               {"type": "content_block_delta", "index": 0, "delta": first}))
        deltas = [
            _event("content_block_delta", {
                "type": "content_block_delta", "index": 0, "delta": {"type": kind, field: piece},
            })
            for piece in replies.group_pieces(answer.pieces, chunk_count)
        ]
        tail.append(_event("content_block_stop", {"type": "content_block_stop", "index": 0}))
    else:
        head.append(_event("ping", {"type": "ping"}))
    tail.append(_event("message_delta", {
        "type": "message_delta",
        "delta": {"stop_reason": answer.stop_reason, "stop_sequence": answer.stop_sequence},
        "usage": {"output_tokens": answer.output_tokens},
    }))
    tail.append(_event("message_stop", {"type": "message_stop"}))
    return b"".join(head), deltas, b"".join(tail)
