"""OpenAI `chat.completion` -> Anthropic `message` (`to_anthropic_message`).

Response choices
----------------
* The message id is `msg_` + the OpenAI id without its `chatcmpl-` prefix (an
  id that already starts with `msg_` is kept).
* Tool-call arguments are parsed into `input`; arguments that are not a JSON
  object are an `UpstreamError` (502) rather than a silently empty input:
  the streamed equivalent makes the SDK raise too, and the router may retry.
  Empty arguments mean `{}` (servers send "" for argument-less tools).
* `finish_reason`: stop -> end_turn (OpenAI does not say whether a stop
  sequence was hit, and removes it from the text, so `stop_sequence` is always
  null), length -> max_tokens, tool_calls -> tool_use (also whenever tool calls
  are present and the reply was not cut), content_filter -> refusal.
* Usage: `cache_read_input_tokens` is OpenAI's `cached_tokens`, subtracted from
  `input_tokens` (Anthropic counts them apart); `cache_creation_input_tokens` 0.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from lockgate.errors import UpstreamError
from services.router.anthropic_edge.validate import _is_int


def message_id(openai_id: Any) -> str:
    """`msg_…` for an OpenAI completion id (a fresh one when the provider gave none;
    an id that is already Anthropic's, from the Anthropic adapter, as it is)."""
    if isinstance(openai_id, str) and openai_id:
        if openai_id.startswith("msg_"):
            return openai_id
        return "msg_" + openai_id.removeprefix("chatcmpl-")
    return "msg_" + uuid.uuid4().hex[:24]


def stop_reason(finish_reason: Any, has_tool_use: bool) -> str:
    """Anthropic's stop_reason for an OpenAI finish_reason (see the module docstring)."""
    if finish_reason == "length":
        return "max_tokens"
    if finish_reason == "content_filter":
        return "refusal"
    if has_tool_use or finish_reason in ("tool_calls", "function_call"):
        return "tool_use"
    return "end_turn"


def _count(value: Any) -> int:
    return value if _is_int(value) and value > 0 else 0


def anthropic_usage(usage: Any) -> dict:
    """Anthropic's usage for an OpenAI usage object (zeros for what is missing)."""
    if not isinstance(usage, dict):
        usage = {}
    prompt = _count(usage.get("prompt_tokens"))
    details = usage.get("prompt_tokens_details")
    cached = min(_count(details.get("cached_tokens")) if isinstance(details, dict) else 0, prompt)
    return {
        "input_tokens": prompt - cached,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "output_tokens": _count(usage.get("completion_tokens")),
    }


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # some servers answer with content parts
        return "".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def _tool_input(name: str, arguments: Any) -> dict:
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}
    if isinstance(arguments, dict):  # a few servers send the object itself
        return arguments
    try:
        value = orjson.loads(arguments) if isinstance(arguments, str) else None
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise UpstreamError(
            f"the provider returned arguments for tool {name[:128]!r} that are not a JSON object"
        )
    return value


def to_anthropic_message(reply: dict, model_alias: str) -> dict:
    """The Anthropic `message` for an OpenAI `chat.completion` (first choice)."""
    choices = reply.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else {}
    choice = choice if isinstance(choice, dict) else {}
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}
    finish = choice.get("finish_reason")

    content: list[dict] = []
    text = _text_of(message.get("content"))
    if not text and isinstance(message.get("refusal"), str):
        text = message["refusal"]
        finish = finish or "content_filter"
    if text:
        content.append({"type": "text", "text": text})
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else []:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise UpstreamError("the provider returned a tool call without a name")
        call_id = call.get("id")
        content.append(
            {
                "type": "tool_use",
                "id": call_id if isinstance(call_id, str) and call_id else _tool_id(),
                "name": function["name"],
                "input": _tool_input(function["name"], function.get("arguments")),
            }
        )
    has_tool = any(block["type"] == "tool_use" for block in content)
    return {
        "id": message_id(reply.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model_alias,
        "content": content,
        "stop_reason": stop_reason(finish, has_tool),
        "stop_sequence": None,
        "usage": anthropic_usage(reply.get("usage")),
    }


def _tool_id() -> str:
    return "toolu_" + uuid.uuid4().hex[:24]
