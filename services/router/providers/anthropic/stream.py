"""Stream translation (Anthropic stream events -> OpenAI chat.completion.chunk).

Streams: the event sequence (message_start, content_block_start/delta/stop,
message_delta, message_stop; ping ignored) becomes OpenAI chunks: a role
chunk, content and tool_calls deltas (one tool-call index per tool_use block,
in order), a finish chunk and a usage chunk. An `error` event is an
UpstreamUnavailable (overloaded_error) or UpstreamError; a stream without
message_stop is an UpstreamError.
"""

from __future__ import annotations

import time
from typing import Any

from lockgate.errors import LockgateError, UpstreamError, UpstreamUnavailable
from lockgate.logs import redact
from services.router.providers.anthropic.errors import _error_type
from services.router.providers.anthropic.response import finish_reason, openai_usage
from services.router.providers.http import error_message


class StreamTranslator:
    """Anthropic stream events in, OpenAI chunks out (see the module docstring)."""

    def __init__(self, provider: str):
        self.provider = provider
        self.id = ""
        self.model = ""
        self.created = int(time.time())
        self.usage: dict[str, int] = {}
        self.stop_reason: str | None = None
        self.started = False
        self.done = False
        #: Anthropic content block index -> OpenAI tool_calls index.
        self.tool_index: dict[int, int] = {}

    def feed(self, event: Any) -> list[dict]:
        """The chunks for one parsed event (often none)."""
        if not isinstance(event, dict):
            raise UpstreamError(f"provider {self.provider!r} sent an invalid stream event")
        kind = event.get("type")
        if kind == "error":
            raise self._error(event)
        if kind == "message_start":
            message = event.get("message")
            if not isinstance(message, dict):
                raise UpstreamError(f"provider {self.provider!r} sent an invalid stream event")
            self.id = str(message.get("id") or "")
            self.model = str(message.get("model") or "")
            self._add_usage(message.get("usage"))
            self.started = True
            return [self._chunk({"role": "assistant", "content": ""})]
        if not self.started:
            if kind == "ping":
                return []
            raise UpstreamError(f"provider {self.provider!r} sent {str(kind)[:40]!r} "
                                "before message_start")
        if kind == "content_block_start":
            return self._block_start(event)
        if kind == "content_block_delta":
            return self._block_delta(event)
        if kind == "message_delta":
            delta = event.get("delta")
            if isinstance(delta, dict) and delta.get("stop_reason") is not None:
                self.stop_reason = delta["stop_reason"]
            self._add_usage(event.get("usage"))
            return []
        if kind == "message_stop":
            self.done = True
            finish = self._chunk({}, finish_reason(self.stop_reason))
            usage = {**self._chunk({}), "choices": [], "usage": openai_usage(self.usage)}
            return [finish, usage]
        return []  # ping, content_block_stop, and event types added later

    def _block_start(self, event: dict) -> list[dict]:
        block = event.get("content_block")
        if not isinstance(block, dict):
            return []
        if block.get("type") == "tool_use":
            index = len(self.tool_index)
            self.tool_index[event.get("index")] = index
            return [self._chunk({"tool_calls": [{
                "index": index,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }]})]
        if block.get("type") == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        return []

    def _block_delta(self, event: dict) -> list[dict]:
        delta = event.get("delta")
        if not isinstance(delta, dict):
            return []
        if delta.get("type") == "text_delta" and delta.get("text"):
            return [self._chunk({"content": delta["text"]})]
        if delta.get("type") == "input_json_delta" and delta.get("partial_json"):
            index = self.tool_index.get(event.get("index"))
            if index is None:
                raise UpstreamError(
                    f"provider {self.provider!r} sent tool input for an unknown block"
                )
            return [self._chunk({"tool_calls": [{
                "index": index, "function": {"arguments": delta["partial_json"]},
            }]})]
        return []  # thinking, signatures, citations: nothing OpenAI's chunks carry

    def _add_usage(self, usage: Any) -> None:
        # Counts are cumulative: a later event's value replaces an earlier one.
        if isinstance(usage, dict):
            for field, value in usage.items():
                if isinstance(value, int) and not isinstance(value, bool):
                    self.usage[field] = value

    def _chunk(self, delta: dict, finish: str | None = None) -> dict:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            ],
        }

    def _error(self, event: dict) -> LockgateError:
        kind = _error_type(event)
        detail = redact(error_message(event) or "no error message")[:500]
        message = f"provider {self.provider!r} failed mid-stream: {detail}"
        if kind == "overloaded_error":
            return UpstreamUnavailable(message)
        return UpstreamError(message)
