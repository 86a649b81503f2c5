"""Request checks: an Anthropic Messages request, checked the way Anthropic checks what we rely on.

`parse_messages_request` / `validate_messages_request` raise `InvalidRequest`
with the dotted field path (`messages.0.content.1.source`) in the message and
`param`.

Rejected (InvalidRequest naming the field): `top_k` (a sampling control no
OpenAI-compatible API guarantees; dropping it would silently change
sampling), `thinking` other than disabled, `output_config.effort`,
`container`, `mcp_servers`, `context_management`, `inference_geo`, server
tools (typed tools such as web search, bash, computer use), document/PDF,
search-result and other non-text/image blocks, `file` image sources.
Unknown fields are rejected as Anthropic does ("Extra inputs are not permitted").
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from lockgate.errors import InvalidRequest

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
        pass  # dropped in translation (see request.py)
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
