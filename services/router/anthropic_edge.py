"""The Anthropic-compatible edge: Anthropic's Messages API in, OpenAI chat completions inside.

Clients using the official `anthropic` SDK call `POST /v1/messages`. The router
speaks OpenAI chat completions to every provider adapter (the lingua franca),
so this module translates, purely (no I/O):

* `parse_messages_request` / `validate_messages_request`: the request checked
  the way Anthropic checks what we rely on; errors are `InvalidRequest` with the
  dotted field path (`messages.0.content.1.source`) in the message and `param`.
* `to_openai_request`: the request as an OpenAI chat body.
* `to_anthropic_message`: an OpenAI `chat.completion` as an Anthropic `message`.
* `StreamTranslator`: OpenAI `chat.completion.chunk`s as Anthropic's SSE events
  (`message_start`, `content_block_start/delta/stop`, `message_delta`,
  `message_stop`); `error_event` for a failure after the stream started.
* `anthropic_error_body` / `anthropic_error_status`: errors in Anthropic's shape.

Translation choices (each field without an exact OpenAI equivalent)
-------------------------------------------------------------------
* `max_tokens` -> `max_tokens`, not `max_completion_tokens`: every
  OpenAI-compatible server (vLLM, Ollama, Groq, Mistral, older Azure API
  versions) understands `max_tokens`; `max_completion_tokens` is newer and
  not universal. (An adapter for OpenAI's reasoning models may rename it.)
* `system` (string or text blocks) -> one leading system message, blocks joined
  with "\\n". Multiple text blocks in an assistant turn are joined the same way;
  a user turn keeps its blocks as separate content parts (a lone text block
  becomes a plain string, which every server accepts).
* `tool_result` blocks -> `role: "tool"` messages, in order, before the rest of
  the user turn (OpenAI requires tool messages right after the assistant's
  tool calls). Text content blocks are joined with "\\n". Images inside a tool
  result cannot go in a tool message, so they move to the user message that
  follows the tool messages. `is_error: true` has no field in OpenAI: the
  content is prefixed with "Error: " so the model still learns the call failed.
* `tool_use` ids are kept verbatim both ways, so the ids a client echoes back in
  `tool_result` match the provider's tool-call ids.
* `tool_choice`: auto/any/tool/none -> "auto"/"required"/named/"none";
  `disable_parallel_tool_use: true` -> `parallel_tool_calls: false`. A
  `tool_choice` of auto/none without `tools` is dropped (meaningless, and OpenAI
  rejects it); any/tool without tools is an error.
* `stop_sequences` -> `stop`; `metadata.user_id` -> `user`; `stream` -> `stream`
  with `stream_options.include_usage` (the ledger needs usage).
* `output_config.format` (JSON schema) -> `response_format` json_schema, strict.
* Dropped, being hints that do not change what is asked: `cache_control`
  (top level and on blocks), `citations` on text blocks, `service_tier`,
  `speed`, `diagnostics`, `thinking: {"type": "disabled"}` (the default), and
  `thinking` / `redacted_thinking` blocks in assistant turns (the model's prior
  reasoning; OpenAI messages cannot carry it).
* Rejected (InvalidRequest naming the field): `top_k` (a sampling control no
  OpenAI-compatible API guarantees; dropping it would silently change
  sampling), `thinking` other than disabled, `output_config.effort`,
  `container`, `mcp_servers`, `context_management`, `inference_geo`, server
  tools (typed tools such as web search, bash, computer use), document/PDF,
  search-result and other non-text/image blocks, `file` image sources.
  Unknown fields are rejected as Anthropic does ("Extra inputs are not permitted").

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

Errors: 400 invalid_request_error, 401 authentication_error, 403
permission_error, 404 not_found_error, 413 request_too_large, 429
rate_limit_error, 500/502/503 api_error, 504 timeout_error. A provider that is
unreachable or overloaded (`UpstreamUnavailable`) is reported as Anthropic does
an overload: HTTP 529 `overloaded_error`, which the SDK raises as
`OverloadedError` and retries.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from lockgate.errors import (
    InvalidRequest,
    LockgateError,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)

# -- request validation ------------------------------------------------------------

_ROLES = ("user", "assistant")
_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_TOOL_CHOICES = ("auto", "any", "tool", "none")
#: Top-level fields we translate or deliberately drop (see the module docstring).
_FIELDS = frozenset(
    {
        "model", "max_tokens", "messages", "system", "tools", "tool_choice",
        "stop_sequences", "temperature", "top_p", "top_k", "metadata", "stream",
        "thinking", "service_tier", "cache_control", "output_config", "speed",
        "diagnostics",
    }
)  # fmt: skip
#: Real Anthropic fields with no equivalent behind an OpenAI-compatible provider.
_UNSUPPORTED = ("container", "mcp_servers", "context_management", "inference_geo", "top_k")
_ERROR_PREFIX = "Error: "


def _fail(path: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"{path}: {message}", param=path)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if _is_number(value):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _expect(value: Any, kind: type | tuple[type, ...], path: str, name: str) -> None:
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise _fail(path, f"Input should be {name}, got {_kind(value)}")


def parse_messages_request(raw: bytes) -> dict:
    """The request body, parsed and validated (see `validate_messages_request`)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return validate_messages_request(body)


def validate_messages_request(req: dict) -> dict:
    """Checks an Anthropic Messages request; returns it unchanged, or raises InvalidRequest."""
    for name in req:
        if name not in _FIELDS and name not in _UNSUPPORTED:
            raise _fail(str(name)[:64], "Extra inputs are not permitted")
    for name in _UNSUPPORTED:
        if req.get(name) is not None:
            raise _fail(name, "not supported by this gateway")

    model = req.get("model")
    if model is None:
        raise _fail("model", "Field required")
    _expect(model, str, "model", "a valid string")
    if not model:
        raise _fail("model", "String should have at least 1 character")

    max_tokens = req.get("max_tokens")
    if max_tokens is None:
        raise _fail("max_tokens", "Field required")
    if not _is_int(max_tokens):
        raise _fail("max_tokens", f"Input should be a valid integer, got {_kind(max_tokens)}")
    if max_tokens < 1:
        raise _fail("max_tokens", "Input should be greater than or equal to 1")

    _validate_system(req.get("system"))
    tool_names = _validate_tools(req.get("tools"))
    _validate_tool_choice(req.get("tool_choice"), tool_names)
    _validate_messages(req.get("messages"))

    stops = req.get("stop_sequences")
    if stops is not None:
        _expect(stops, list, "stop_sequences", "a valid list")
        for i, stop in enumerate(stops):
            _expect(stop, str, f"stop_sequences.{i}", "a valid string")
            if not stop.strip():
                raise _fail(f"stop_sequences.{i}", "each stop sequence must contain non-whitespace")
    for name in ("temperature", "top_p"):
        value = req.get(name)
        if value is None:
            continue
        if not _is_number(value):
            raise _fail(name, f"Input should be a valid number, got {_kind(value)}")
        if not 0 <= value <= 1:
            raise _fail(name, "Input should be between 0 and 1")

    metadata = req.get("metadata")
    if metadata is not None:
        _expect(metadata, dict, "metadata", "a valid dictionary")
        for key in metadata:
            if key != "user_id":
                raise _fail(f"metadata.{str(key)[:64]}", "Extra inputs are not permitted")
        user_id = metadata.get("user_id")
        if user_id is not None:
            _expect(user_id, str, "metadata.user_id", "a valid string")
            if len(user_id) > 256:
                raise _fail("metadata.user_id", "String should have at most 256 characters")

    stream = req.get("stream")
    if stream is not None:
        _expect(stream, bool, "stream", "a valid boolean")

    thinking = req.get("thinking")
    if thinking is not None:
        _expect(thinking, dict, "thinking", "a valid dictionary")
        if thinking.get("type") != "disabled":
            raise _fail("thinking", "extended thinking is not supported by this gateway")

    output = req.get("output_config")
    if output is not None:
        _expect(output, dict, "output_config", "a valid dictionary")
        if output.get("effort") is not None:
            raise _fail("output_config.effort", "not supported by this gateway")
        fmt = output.get("format")
        if fmt is not None:
            _expect(fmt, dict, "output_config.format", "a valid dictionary")
            if fmt.get("type") != "json_schema":
                raise _fail("output_config.format.type", "Input should be 'json_schema'")
            _expect(fmt.get("schema"), dict, "output_config.format.schema", "a valid dictionary")
    return req


def _validate_system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    _expect(system, list, "system", "a valid string or a list of text blocks")
    for i, block in enumerate(system):
        _validate_text_block(block, f"system.{i}")


def _validate_text_block(block: Any, path: str) -> None:
    _expect(block, dict, path, "a valid dictionary")
    if block.get("type") != "text":
        raise _fail(f"{path}.type", "Input should be 'text'")
    _expect(block.get("text"), str, f"{path}.text", "a valid string")
    if not block["text"]:
        raise _fail(path, "text content blocks must be non-empty")


def _validate_tools(tools: Any) -> set[str]:
    if tools is None:
        return set()
    _expect(tools, list, "tools", "a valid list")
    names: set[str] = set()
    for i, tool in enumerate(tools):
        path = f"tools.{i}"
        _expect(tool, dict, path, "a valid dictionary")
        kind = tool.get("type")
        if kind not in (None, "custom"):
            raise _fail(
                f"{path}.type",
                f"server tools ({str(kind)[:64]!r}) are not supported by this gateway; "
                "only custom tools with an input_schema",
            )
        name = tool.get("name")
        if name is None:
            raise _fail(f"{path}.name", "Field required")
        _expect(name, str, f"{path}.name", "a valid string")
        if not _TOOL_NAME.match(name):
            raise _fail(f"{path}.name", "String should match pattern '^[a-zA-Z0-9_-]{1,128}$'")
        if name in names:
            raise _fail("tools", "Tool names must be unique.")
        names.add(name)
        schema = tool.get("input_schema")
        if schema is None:
            raise _fail(f"{path}.input_schema", "Field required")
        _expect(schema, dict, f"{path}.input_schema", "a valid dictionary")
        if schema.get("type") != "object":
            raise _fail(f"{path}.input_schema.type", "Input should be 'object'")
        if tool.get("description") is not None:
            _expect(tool["description"], str, f"{path}.description", "a valid string")
        if tool.get("strict") is not None:
            _expect(tool["strict"], bool, f"{path}.strict", "a valid boolean")
    return names


def _validate_tool_choice(choice: Any, tool_names: set[str]) -> None:
    if choice is None:
        return
    _expect(choice, dict, "tool_choice", "a valid dictionary")
    kind = choice.get("type")
    if kind not in _TOOL_CHOICES:
        raise _fail("tool_choice.type", "Input should be 'auto', 'any', 'tool' or 'none'")
    parallel = choice.get("disable_parallel_tool_use")
    if parallel is not None:
        _expect(parallel, bool, "tool_choice.disable_parallel_tool_use", "a valid boolean")
    if kind in ("any", "tool") and not tool_names:
        raise _fail("tool_choice", f"tool_choice of type {kind!r} requires tools")
    if kind == "tool":
        name = choice.get("name")
        if name is None:
            raise _fail("tool_choice.name", "Field required")
        _expect(name, str, "tool_choice.name", "a valid string")
        if name not in tool_names:
            raise _fail("tool_choice.name", f"tool {name[:128]!r} is not among the tools")


def _validate_messages(messages: Any) -> None:
    if messages is None:
        raise _fail("messages", "Field required")
    _expect(messages, list, "messages", "a valid list")
    if not messages:
        raise _fail("messages", "at least one message is required")
    pending: list[str] = []  # tool_use ids of the previous assistant turn
    last = len(messages) - 1
    for i, message in enumerate(messages):
        path = f"messages.{i}"
        _expect(message, dict, path, "a valid dictionary")
        for key in message:
            if key not in ("role", "content"):
                raise _fail(f"{path}.{str(key)[:64]}", "Extra inputs are not permitted")
        role = message.get("role")
        if role not in _ROLES:
            raise _fail(f"{path}.role", "Input should be 'user' or 'assistant'")
        content = message.get("content")
        if content is None:
            raise _fail(f"{path}.content", "Field required")
        _expect(content, (str, list), f"{path}.content", "a valid string or list")
        if not content and not (role == "assistant" and i == last):
            raise _fail(
                path,
                "all messages must have non-empty content except for the optional "
                "final assistant message",
            )
        blocks = content if isinstance(content, list) else []
        answered: list[str] = []
        uses: list[str] = []
        for j, block in enumerate(blocks):
            kind = _validate_block(block, role, f"{path}.content.{j}")
            if kind == "tool_result":
                if block["tool_use_id"] not in pending:
                    raise _fail(
                        f"{path}.content.{j}",
                        f"unexpected `tool_use_id` found in `tool_result` blocks: "
                        f"{block['tool_use_id'][:128]}. Each `tool_result` block must have "
                        "a corresponding `tool_use` block in the previous message.",
                    )
                answered.append(block["tool_use_id"])
            elif kind == "tool_use":
                uses.append(block["id"])
        missing = [tid for tid in pending if tid not in answered]
        if missing:
            raise _fail(
                f"messages.{i - 1}",
                f"`tool_use` ids were found without `tool_result` blocks immediately "
                f"after: {', '.join(t[:128] for t in missing)}. Each `tool_use` block must "
                "have a corresponding `tool_result` block in the next message.",
            )
        if len(set(uses)) != len(uses):
            raise _fail(f"{path}.content", "`tool_use` ids must be unique")
        pending = uses


def _validate_block(block: Any, role: str, path: str) -> str:
    """Checks one content block; returns its type."""
    _expect(block, dict, path, "a valid dictionary")
    kind = block.get("type")
    if kind == "text":
        _validate_text_block(block, path)
    elif kind == "image" and role == "user":
        _validate_image(block, path)
    elif kind == "tool_result" and role == "user":
        tool_use_id = block.get("tool_use_id")
        if tool_use_id is None:
            raise _fail(f"{path}.tool_use_id", "Field required")
        _expect(tool_use_id, str, f"{path}.tool_use_id", "a valid string")
        if block.get("is_error") is not None:
            _expect(block["is_error"], bool, f"{path}.is_error", "a valid boolean")
        content = block.get("content")
        if content is not None and not isinstance(content, str):
            _expect(content, list, f"{path}.content", "a valid string or list")
            for k, part in enumerate(content):
                sub = f"{path}.content.{k}"
                _expect(part, dict, sub, "a valid dictionary")
                if part.get("type") == "text":
                    _validate_text_block(part, sub)
                elif part.get("type") == "image":
                    _validate_image(part, sub)
                else:
                    raise _fail(f"{sub}.type", _unsupported_block(part.get("type")))
    elif kind == "tool_use" and role == "assistant":
        for name in ("id", "name"):
            if block.get(name) is None:
                raise _fail(f"{path}.{name}", "Field required")
            _expect(block[name], str, f"{path}.{name}", "a valid string")
        if not block["id"]:
            raise _fail(f"{path}.id", "String should have at least 1 character")
        if "input" not in block:
            raise _fail(f"{path}.input", "Field required")
        _expect(block["input"], dict, f"{path}.input", "a valid dictionary")
    elif kind in ("thinking", "redacted_thinking") and role == "assistant":
        pass  # dropped in translation (see the module docstring)
    elif kind in ("image", "tool_result", "tool_use", "thinking", "redacted_thinking"):
        raise _fail(f"{path}.type", f"{kind!r} blocks are not allowed in {role} messages")
    else:
        raise _fail(f"{path}.type", _unsupported_block(kind))
    return kind


def _unsupported_block(kind: Any) -> str:
    if not isinstance(kind, str):
        return "Field required" if kind is None else "Input should be a valid string"
    return f"{kind[:64]!r} content blocks are not supported by this gateway"


def _validate_image(block: dict, path: str) -> None:
    source = block.get("source")
    if source is None:
        raise _fail(f"{path}.source", "Field required")
    _expect(source, dict, f"{path}.source", "a valid dictionary")
    kind = source.get("type")
    if kind == "base64":
        if source.get("media_type") not in _IMAGE_TYPES:
            raise _fail(
                f"{path}.source.media_type",
                "Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'",
            )
        _expect(source.get("data"), str, f"{path}.source.data", "a valid string")
    elif kind == "url":
        url = source.get("url")
        _expect(url, str, f"{path}.source.url", "a valid string")
        if not url.startswith(("http://", "https://")):
            raise _fail(f"{path}.source.url", "must be an http:// or https:// URL")
    elif kind == "file":
        raise _fail(f"{path}.source.type", "file sources are not supported by this gateway")
    else:
        raise _fail(f"{path}.source.type", "Input should be 'base64' or 'url'")


# -- request translation --------------------------------------------------------------


def to_openai_request(req: dict) -> dict:
    """The OpenAI chat body for a validated Anthropic Messages request."""
    messages: list[dict] = []
    system = req.get("system")
    if isinstance(system, list):
        system = "\n".join(block["text"] for block in system)
    if system:
        messages.append({"role": "system", "content": system})
    for message in req["messages"]:
        if message["role"] == "user":
            messages.extend(_user_messages(message["content"]))
        else:
            messages.append(_assistant_message(message["content"]))

    body: dict[str, Any] = {
        "model": req["model"],
        "messages": messages,
        "max_tokens": req["max_tokens"],
    }
    if req.get("stop_sequences"):
        body["stop"] = list(req["stop_sequences"])
    for name in ("temperature", "top_p"):
        if req.get(name) is not None:
            body[name] = req[name]
    tools = req.get("tools")
    if tools:
        body["tools"] = [_openai_tool(tool) for tool in tools]
        choice = req.get("tool_choice")
        if choice is not None:
            body["tool_choice"] = _openai_tool_choice(choice)
            if choice.get("disable_parallel_tool_use") and choice["type"] != "none":
                body["parallel_tool_calls"] = False
    user = (req.get("metadata") or {}).get("user_id")
    if user is not None:
        body["user"] = user
    fmt = (req.get("output_config") or {}).get("format")
    if fmt is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": fmt["schema"], "strict": True},
        }
    if req.get("stream"):
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _image_part(block: dict) -> dict:
    source = block["source"]
    if source["type"] == "base64":
        url = f"data:{source['media_type']};base64,{source['data']}"
    else:
        url = source["url"]
    return {"type": "image_url", "image_url": {"url": url}}


def _user_messages(content: str | list) -> list[dict]:
    """Tool messages for the tool results, then the rest of the turn as one user message."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    out: list[dict] = []
    parts: list[dict] = []
    for block in content:
        kind = block["type"]
        if kind == "text":
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image":
            parts.append(_image_part(block))
        elif kind == "tool_result":
            text, images = _tool_result_content(block.get("content"))
            if block.get("is_error"):
                text = _ERROR_PREFIX + text if text else _ERROR_PREFIX.rstrip(": ")
            out.append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": text})
            parts.extend(images)
    if len(parts) == 1 and parts[0]["type"] == "text":
        out.append({"role": "user", "content": parts[0]["text"]})
    elif parts:
        out.append({"role": "user", "content": parts})
    return out


def _tool_result_content(content: Any) -> tuple[str, list[dict]]:
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    texts = [part["text"] for part in content if part["type"] == "text"]
    images = [_image_part(part) for part in content if part["type"] == "image"]
    return "\n".join(texts), images


def _assistant_message(content: str | list) -> dict:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    calls: list[dict] = []
    for block in content:
        if block["type"] == "text":
            texts.append(block["text"])
        elif block["type"] == "tool_use":
            calls.append(
                {
                    "id": block["id"],
                    "type": "function",
                    "function": {
                        "name": block["name"],
                        "arguments": orjson.dumps(block["input"]).decode(),
                    },
                }
            )
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "\n".join(texts) if texts else (None if calls else ""),
    }
    if calls:
        message["tool_calls"] = calls
    return message


def _openai_tool(tool: dict) -> dict:
    function: dict[str, Any] = {"name": tool["name"]}
    if tool.get("description"):
        function["description"] = tool["description"]
    function["parameters"] = tool["input_schema"]
    if tool.get("strict") is not None:
        function["strict"] = tool["strict"]
    return {"type": "function", "function": function}


def _openai_tool_choice(choice: dict) -> Any:
    kind = choice["type"]
    if kind == "any":
        return "required"
    if kind == "tool":
        return {"type": "function", "function": {"name": choice["name"]}}
    return kind  # "auto" or "none"


# -- response translation ----------------------------------------------------------------


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


# -- streaming -------------------------------------------------------------------------------


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


# -- errors --------------------------------------------------------------------------------------

#: Anthropic's error type for each HTTP status Lockgate errors map to.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
}
#: Anthropic's status for an overload; the SDK raises OverloadedError and retries.
OVERLOADED_STATUS = 529


def anthropic_error_status(exc: LockgateError) -> int:
    """The HTTP status an Anthropic client gets for `exc`."""
    if isinstance(exc, UpstreamUnavailable):
        return OVERLOADED_STATUS
    return exc.status.http


def anthropic_error_type(exc: LockgateError) -> str:
    """Anthropic's `error.type` for `exc`."""
    if isinstance(exc, UpstreamUnavailable):
        return "overloaded_error"
    if isinstance(exc, UpstreamTimeout):
        return "timeout_error"
    status = exc.status.http
    return _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def _error(exc: LockgateError) -> dict:
    return {"type": anthropic_error_type(exc), "message": exc.message}


def anthropic_error_body(exc: LockgateError, request_id: str | None = None) -> bytes:
    """Anthropic's error JSON: {"type": "error", "error": {"type", "message"}, "request_id"}."""
    body: dict[str, Any] = {"type": "error", "error": _error(exc)}
    if request_id:
        body["request_id"] = request_id
    return orjson.dumps(body)


def error_event(exc: LockgateError) -> bytes:
    """The `error` SSE event that ends a stream which failed after it started."""
    return sse_event({"type": "error", "error": _error(exc)})
