"""The request checks of the simulator's Anthropic dialect.

Request: ``model``, ``max_tokens`` and ``messages`` are required; messages
have the roles ``user`` / ``assistant`` and a string or a list of content
blocks (text, image, document, tool_use, tool_result, thinking…); ``system``
is a string or text blocks; ``stop_sequences``, ``stream``, ``temperature``,
``top_p``, ``top_k``, ``metadata``, ``tools`` and ``tool_choice`` are checked;
any other top-level field is refused ("Extra inputs are not permitted"), as
the API does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lockgate.sim.anthropic.errors import _Invalid

_FIELDS = frozenset({
    "model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream",
    "temperature", "top_p", "top_k", "tools", "tool_choice", "thinking", "service_tier",
    "container", "mcp_servers", "context_management", "output_config", "cache_control",
    "inference_geo", "speed",
})
_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_BLOCKS_UNCHECKED = frozenset({
    "thinking", "redacted_thinking", "search_result", "server_tool_use",
    "web_search_tool_result", "web_fetch_tool_result", "code_execution_tool_result",
    "container_upload", "mcp_tool_use", "mcp_tool_result",
})
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")


@dataclass(slots=True)
class MessagesRequest:
    model: str
    max_tokens: int
    messages: list[dict[str, Any]]
    system: Any
    stop_sequences: list[str]
    stream: bool
    tools: list[dict[str, Any]]
    tool_choice: dict[str, Any] | None


def parse(body: dict[str, Any]) -> MessagesRequest:
    """The checked request, or a 400 with Anthropic's ``path: problem`` wording."""
    for field in body:
        if field not in _FIELDS:
            raise _Invalid(f"{str(field)[:60]}: Extra inputs are not permitted")
    model = _required(body, "model", str, "a valid string")
    max_tokens = _required(body, "max_tokens", int, "a valid integer")
    if max_tokens < 1:
        raise _Invalid("max_tokens: Input should be greater than or equal to 1")
    messages = _required(body, "messages", list, "a valid list")
    if not messages:
        raise _Invalid("messages: at least one message is required")
    for i, message in enumerate(messages):
        _check_message(message, i, last=i == len(messages) - 1)
    _check_tool_pairs(messages)
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        _check_blocks(system, "system", only=("text",))
    stop = body.get("stop_sequences") or []
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise _Invalid("stop_sequences: Input should be a valid list of strings")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _Invalid("stream: Input should be a valid boolean")
    for name, high in (("temperature", 1.0), ("top_p", 1.0)):
        value = body.get(name)
        if value is not None and (
            not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= high
        ):
            raise _Invalid(f"{name}: Input should be a number between 0 and {high:g}")
    top_k = body.get("top_k")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 0):
        raise _Invalid("top_k: Input should be a non-negative integer")
    metadata = body.get("metadata")
    if metadata is not None and (
        not isinstance(metadata, dict)
        or not isinstance(metadata.get("user_id"), str | None)
        or set(metadata) - {"user_id"}
    ):
        raise _Invalid("metadata: Input should be an object with an optional string user_id")
    tools = _check_tools(body.get("tools"))
    choice = _check_tool_choice(body.get("tool_choice"), tools)
    return MessagesRequest(model, max_tokens, messages, system, stop, stream, tools, choice)


def _required(body: dict[str, Any], name: str, kind: type, described: str) -> Any:
    if name not in body:
        raise _Invalid(f"{name}: Field required")
    value = body[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _Invalid(f"{name}: Input should be {described}")
    return value


def _check_message(message: Any, i: int, *, last: bool) -> None:
    where = f"messages.{i}"
    if not isinstance(message, dict):
        raise _Invalid(f"{where}: Input should be a valid dictionary")
    if message.get("role") not in ("user", "assistant"):
        raise _Invalid(f"{where}.role: Input should be 'user' or 'assistant'")
    if set(message) - {"role", "content"}:
        extra = sorted(set(message) - {"role", "content"})[0]
        raise _Invalid(f"{where}.{str(extra)[:60]}: Extra inputs are not permitted")
    if "content" not in message:
        raise _Invalid(f"{where}.content: Field required")
    content = message["content"]
    if isinstance(content, str):
        empty = not content
    else:
        _check_blocks(content, f"{where}.content")
        empty = not content
    if empty and not (last and message["role"] == "assistant"):
        raise _Invalid(
            f"{where}: all messages must have non-empty content except for the optional "
            "final assistant message"
        )


def _check_blocks(blocks: Any, where: str, only: tuple[str, ...] | None = None) -> None:
    if not isinstance(blocks, list):
        raise _Invalid(f"{where}: Input should be a valid list")
    for j, block in enumerate(blocks):
        at = f"{where}.{j}"
        kind = block.get("type") if isinstance(block, dict) else None
        if not isinstance(kind, str):
            raise _Invalid(f"{at}: Unable to extract tag using discriminator 'type'")
        if only is not None and kind not in only:
            raise _Invalid(f"{at}.type: Input should be {' or '.join(map(repr, only))}")
        if kind == "text":
            if not isinstance(block.get("text"), str):
                raise _Invalid(f"{at}.text.text: Field required")
            if not block["text"]:
                raise _Invalid(f"{where.split('.')[0]}: text content blocks must be non-empty")
        elif kind in ("image", "document"):
            _check_source(block.get("source"), f"{at}.{kind}.source", kind)
        elif kind == "tool_use":
            for field, typ in (("id", str), ("name", str), ("input", dict)):
                if not isinstance(block.get(field), typ):
                    raise _Invalid(f"{at}.tool_use.{field}: Field required")
        elif kind == "tool_result":
            if not isinstance(block.get("tool_use_id"), str):
                raise _Invalid(f"{at}.tool_result.tool_use_id: Field required")
            content = block.get("content")
            if content is not None and not isinstance(content, str):
                _check_blocks(content, f"{at}.tool_result.content", only=("text", "image"))
            if block.get("is_error") is not None and not isinstance(block["is_error"], bool):
                raise _Invalid(f"{at}.tool_result.is_error: Input should be a valid boolean")
        elif kind not in _BLOCKS_UNCHECKED:
            raise _Invalid(
                f"{at}: Input tag '{kind[:40]}' found using 'type' does not match any of the "
                "expected tags: 'text', 'image', 'document', 'tool_use', 'tool_result', "
                "'thinking', 'redacted_thinking'"
            )


def _check_source(source: Any, where: str, kind: str) -> None:
    typ = source.get("type") if isinstance(source, dict) else None
    if typ == "base64":
        allowed = _MEDIA_TYPES if kind == "image" else ("application/pdf",)
        if source.get("media_type") not in allowed:
            raise _Invalid(
                f"{where}.base64.media_type: Input should be "
                + ", ".join(repr(m) for m in allowed)
            )
        if not isinstance(source.get("data"), str) or not source["data"]:
            raise _Invalid(f"{where}.base64.data: Field required")
    elif typ == "url":
        if not isinstance(source.get("url"), str):
            raise _Invalid(f"{where}.url.url: Field required")
    elif typ == "text" and kind == "document":
        if not isinstance(source.get("data"), str):
            raise _Invalid(f"{where}.text.data: Field required")
    elif typ not in ("file", "content"):
        raise _Invalid(f"{where}: Unable to extract tag using discriminator 'type'")


def _turns(messages: list[dict[str, Any]]) -> list[tuple[str, list[Any]]]:
    """Consecutive same-role messages merged, as the API combines them."""
    turns: list[tuple[str, list[Any]]] = []
    for message in messages:
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if turns and turns[-1][0] == message["role"]:
            turns[-1][1].extend(blocks)
        else:
            turns.append((message["role"], list(blocks)))
    return turns


def _check_tool_pairs(messages: list[dict[str, Any]]) -> None:
    """Every tool_use is answered by a tool_result in the next turn, and every
    tool_result answers a tool_use of the turn before."""
    turns = _turns(messages)
    for t, (role, blocks) in enumerate(turns):
        if role != "user":
            continue
        asked = _ids(turns[t - 1][1], "tool_use", "id") if t else []
        answered = _ids(blocks, "tool_result", "tool_use_id")
        unknown = [i for i in answered if i not in asked]
        if unknown:
            raise _Invalid(
                f"messages.{t}.content: unexpected `tool_use_id` found in `tool_result` blocks: "
                f"{unknown[0][:80]}. Each `tool_result` block must have a corresponding "
                "`tool_use` block in the previous message."
            )
    for t, (role, blocks) in enumerate(turns):
        if role != "assistant":
            continue
        asked = _ids(blocks, "tool_use", "id")
        answered = _ids(turns[t + 1][1], "tool_result", "tool_use_id") if t + 1 < len(turns) else []
        missing = [i for i in asked if i not in answered]
        if missing and t + 1 < len(turns):
            raise _Invalid(
                f"messages.{t}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {missing[0][:80]}. Each `tool_use` block must have a "
                "corresponding `tool_result` block in the next message."
            )


def _ids(blocks: list[Any], kind: str, field: str) -> list[str]:
    return [b[field] for b in blocks if isinstance(b, dict) and b.get("type") == kind]


def _check_tools(tools: Any) -> list[dict[str, Any]]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise _Invalid("tools: Input should be a valid list")
    names = set()
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise _Invalid(f"tools.{i}: Input should be a valid dictionary")
        if tool.get("type") not in (None, "custom"):
            continue  # a server tool (web search, bash…): run by the API, not simulated
        name = tool.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise _Invalid(f"tools.{i}.custom.name: String should match pattern "
                           f"'{_TOOL_NAME.pattern}'")
        if not isinstance(tool.get("input_schema"), dict):
            raise _Invalid(f"tools.{i}.custom.input_schema: Field required")
        if tool.get("description") is not None and not isinstance(tool["description"], str):
            raise _Invalid(f"tools.{i}.custom.description: Input should be a valid string")
        if name in names:
            raise _Invalid("tools: Tool names must be unique.")
        names.add(name)
    return [t for t in tools if t.get("type") in (None, "custom")]


def _check_tool_choice(choice: Any, tools: list[dict[str, Any]]) -> dict[str, Any] | None:
    if choice is None:
        return None
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind not in ("auto", "any", "tool", "none"):
        raise _Invalid(
            "tool_choice: Input tag found using 'type' does not match any of the expected "
            "tags: 'auto', 'any', 'tool', 'none'"
        )
    if kind == "tool":
        name = choice.get("name")
        if not isinstance(name, str):
            raise _Invalid("tool_choice.tool.name: Field required")
        if name not in {t["name"] for t in tools}:
            raise _Invalid(f"tool_choice.tool.name: tool '{name[:64]}' is not in tools")
    if kind != "none" and not tools:
        raise _Invalid("tool_choice: tool_choice may only be specified while providing tools.")
    flag = choice.get("disable_parallel_tool_use")
    if flag is not None and not isinstance(flag, bool):
        raise _Invalid(f"tool_choice.{kind}.disable_parallel_tool_use: "
                       "Input should be a valid boolean")
    return choice
