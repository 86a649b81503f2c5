"""OpenAI `chat.completion.chunk`s -> Anthropic's SSE events.

`StreamTranslator` produces `message_start`, `content_block_start/delta/stop`,
`message_delta` and `message_stop`; `error_event` ends a stream that failed
after it started.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from lockgate.errors import LockgateError, UpstreamError
from services.router.anthropic_edge.errors import _error
from services.router.anthropic_edge.response import (
    _tool_id,
    anthropic_usage,
    message_id,
    stop_reason,
)
from services.router.anthropic_edge.validate import _is_int


def sse_event(event: dict) -> bytes:
    """One Anthropic SSE event: `event: <type>` and its JSON `data` line."""
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


#: A keep-alive Anthropic clients ignore (Anthropic sends them during long streams).
PING_EVENT = sse_event({"type": "ping"})


@dataclass(slots=True)
class _Block:
    """The open content block: text, or a tool call (started once its name is known)."""

    kind: str  # "text" or "tool_use"
    index: int = -1  # Anthropic block index, -1 until content_block_start was sent
    tool_index: int | None = None  # OpenAI tool_calls[].index
    tool_id: str = ""
    name: str = ""
    buffered: list[str] = field(default_factory=list)


class StreamTranslator:
    """OpenAI `chat.completion.chunk` dicts in, Anthropic SSE event bytes out.

    `feed(chunk)` returns the events a chunk produces (`message_start` comes
    with the first one); `finish()` closes the open block and sends
    `message_delta` (stop reason and usage: OpenAI reports usage last, in a
    chunk without choices) and `message_stop`. Only choice 0 is translated
    (Anthropic has no `n`). Blocks never interleave: a text or tool-call
    delta that starts a different block closes the open one. `feed` raises
    UpstreamError for what cannot be translated faithfully (a tool call that
    never gets a name, or fragments of an already closed tool call); the
    caller then ends the stream with `error_event`.
    """

    def __init__(self, model_alias: str, *, input_tokens: int = 0):
        self.model = model_alias
        #: Input tokens for message_start when the first chunk carries no usage
        #: (e.g. the router's estimate); the real count follows in message_delta.
        self.input_tokens = input_tokens
        self.started = False
        self.finished = False
        self._next_index = 0
        self._open: _Block | None = None
        self._closed_tools: set[int] = set()
        self._has_tool = False
        self._finish_reason: str | None = None
        self._usage: dict | None = None

    def feed(self, chunk: dict) -> list[bytes]:
        if self.finished:
            raise RuntimeError("the stream was already finished")
        out: list[bytes] = []
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self._usage = usage
        if not self.started:
            out.append(self._message_start(chunk))
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict):
                for key in ("content", "refusal"):
                    text = delta.get(key)
                    if isinstance(text, str) and text:
                        out += self._text(text)
                calls = delta.get("tool_calls")
                for call in calls if isinstance(calls, list) else []:
                    if isinstance(call, dict):
                        out += self._tool(call)
            finish = choice.get("finish_reason")
            if isinstance(finish, str) and finish:
                self._finish_reason = finish
        return out

    def finish(self, usage: dict | None = None) -> list[bytes]:
        """The closing events. `usage` (OpenAI's shape) overrides what the chunks
        reported, e.g. the router's estimate when the provider reports none."""
        if self.finished:
            raise RuntimeError("the stream was already finished")
        out: list[bytes] = []
        if not self.started:
            out.append(self._message_start({}))
        out += self._close()
        self.finished = True
        usage = usage if usage is not None else self._usage
        delta_usage = anthropic_usage(usage) if usage is not None else {"output_tokens": 0}
        out.append(
            sse_event(
                {
                    "type": "message_delta",
                    "delta": {
                        "stop_reason": stop_reason(self._finish_reason, self._has_tool),
                        "stop_sequence": None,
                    },
                    "usage": delta_usage,
                }
            )
        )
        out.append(sse_event({"type": "message_stop"}))
        return out

    # -- internals

    def _message_start(self, chunk: dict) -> bytes:
        self.started = True
        usage = anthropic_usage(self._usage)
        if self._usage is None:
            usage["input_tokens"] = self.input_tokens
        usage["output_tokens"] = 0
        return sse_event(
            {
                "type": "message_start",
                "message": {
                    "id": message_id(chunk.get("id")),
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": usage,
                },
            }
        )

    def _start(self, block: _Block, content_block: dict) -> bytes:
        block.index = self._next_index
        self._next_index += 1
        return sse_event(
            {"type": "content_block_start", "index": block.index, "content_block": content_block}
        )

    def _close(self) -> list[bytes]:
        block, self._open = self._open, None
        if block is None:
            return []
        if block.kind == "tool_use":
            if block.tool_index is not None:
                self._closed_tools.add(block.tool_index)
            if block.index < 0:
                raise UpstreamError("the provider streamed a tool call without a name")
        return [sse_event({"type": "content_block_stop", "index": block.index})]

    def _text(self, text: str) -> list[bytes]:
        out: list[bytes] = []
        block = self._open
        if block is None or block.kind != "text":
            out += self._close()
            block = self._open = _Block("text")
            out.append(self._start(block, {"type": "text", "text": ""}))
        out.append(
            sse_event(
                {
                    "type": "content_block_delta",
                    "index": block.index,
                    "delta": {"type": "text_delta", "text": text},
                }
            )
        )
        return out

    def _tool(self, call: dict) -> list[bytes]:
        out: list[bytes] = []
        index = call.get("index") if _is_int(call.get("index")) else None
        call_id = call.get("id") if isinstance(call.get("id"), str) and call["id"] else None
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        name = function.get("name") if isinstance(function.get("name"), str) else ""
        arguments = function.get("arguments")
        arguments = arguments if isinstance(arguments, str) else ""

        block = self._open
        same = (
            block is not None
            and block.kind == "tool_use"
            and (index is None or index == block.tool_index)
            and (call_id is None or call_id == block.tool_id)
        )
        if not same:
            if index is not None and index in self._closed_tools and call_id is None:
                raise UpstreamError("the provider interleaved the fragments of its tool calls")
            out += self._close()
            block = self._open = _Block(
                "tool_use", tool_index=index, tool_id=call_id or _tool_id()
            )
            self._has_tool = True
        assert block is not None
        if block.index < 0 and name:
            block.name = name
            out.append(
                self._start(
                    block, {"type": "tool_use", "id": block.tool_id, "name": name, "input": {}}
                )
            )
            arguments = "".join(block.buffered) + arguments
            block.buffered.clear()
        if arguments:
            if block.index < 0:
                block.buffered.append(arguments)  # no name yet: wait for it
            else:
                out.append(
                    sse_event(
                        {
                            "type": "content_block_delta",
                            "index": block.index,
                            "delta": {"type": "input_json_delta", "partial_json": arguments},
                        }
                    )
                )
        return out


def error_event(exc: LockgateError) -> bytes:
    """The `error` SSE event that ends a stream which failed after it started."""
    return sse_event({"type": "error", "error": _error(exc)})
