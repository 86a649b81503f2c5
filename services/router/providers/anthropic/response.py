"""Response translation (Anthropic message -> OpenAI chat.completion).

Response translation: text blocks joined into `content`; `tool_use` blocks ->
`tool_calls`; `stop_reason` end_turn / stop_sequence / pause_turn -> stop,
max_tokens / model_context_window_exceeded -> length, tool_use -> tool_calls,
refusal -> content_filter. Usage: `prompt_tokens` = input_tokens +
cache_read_input_tokens + cache_creation_input_tokens (Anthropic counts cached
tokens apart; OpenAI includes them), `prompt_tokens_details.cached_tokens` =
cache_read_input_tokens, `completion_tokens` = output_tokens.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def to_completion(message: dict) -> dict:
    """The OpenAI chat.completion for an Anthropic message."""
    texts: list[str] = []
    calls: list[dict] = []
    for block in message["content"]:
        if block["type"] == "text":
            texts.append(block["text"])
        elif block["type"] == "tool_use":
            calls.append({
                "id": block["id"],
                "type": "function",
                "function": {"name": block["name"], "arguments": orjson.dumps(
                    block.get("input") or {}).decode()},
            })
    reply: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts or not calls else None,
        "refusal": None,
    }
    if calls:
        reply["tool_calls"] = calls
    return {
        "id": message["id"],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.get("model") or "",
        "choices": [{
            "index": 0,
            "message": reply,
            "logprobs": None,
            "finish_reason": finish_reason(message.get("stop_reason")),
        }],
        "usage": openai_usage(message.get("usage") or {}),
    }


def finish_reason(stop_reason: Any) -> str:
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def openai_usage(usage: dict) -> dict:
    """OpenAI usage from Anthropic's, where cached input is counted apart."""
    def count(field: str) -> int:
        value = usage.get(field)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    cached = count("cache_read_input_tokens")
    prompt = count("input_tokens") + cached + count("cache_creation_input_tokens")
    completion = count("output_tokens")
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }
