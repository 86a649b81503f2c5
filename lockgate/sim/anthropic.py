"""The simulator's Anthropic dialect: ``POST /v1/messages`` as Anthropic documents it.

Request: ``model``, ``max_tokens`` and ``messages`` are required; messages
have the roles ``user`` / ``assistant`` and a string or a list of content
blocks (text, image, document, tool_use, tool_result, thinking…); ``system``
is a string or text blocks; ``stop_sequences``, ``stream``, ``temperature``,
``top_p``, ``top_k``, ``metadata``, ``tools`` and ``tool_choice`` are checked;
any other top-level field is refused ("Extra inputs are not permitted"), as
the API does. When the simulator has an ``api_key``, it must come as
``x-api-key`` or as ``Authorization: Bearer`` (what newer official SDKs
send); ``anthropic-version`` is required.

Reply: the same deterministic words the OpenAI dialect gives for the same
conversation (the reply key is built from ``[system] + messages`` as OpenAI
messages would carry them, so plain-text conversations match exactly), cut
at ``stop_sequences`` (``stop_reason: stop_sequence``) and ``max_tokens``
(``stop_reason: max_tokens``). With ``tools``, the call is chosen by
:func:`lockgate.sim.tools.choose_call` (tool_choice auto / any / tool / none;
after a ``tool_result`` the model answers in text unless forced) and the
answer is one ``tool_use`` block (``stop_reason: tool_use``), never cut by
``max_tokens``.

Usage: ``input_tokens`` are :func:`replies.prompt_tokens` of the system
prompt and the messages (tool_use blocks counted as their name and JSON
input, tool_result blocks as their content); ``output_tokens`` the reply's
tokens. No prompt caching: the cache counters are 0.

Streams (``"stream": true``): ``event:``/``data:`` pairs in Anthropic's
order: message_start (usage with input_tokens), content_block_start, ping,
content_block_delta (text_delta, or input_json_delta starting with an empty
``partial_json``), content_block_stop, message_delta (stop_reason and usage
with output_tokens), message_stop.

Errors: ``{"type": "error", "error": {"type", "message"}, "request_id"}``
with the matching status (400 invalid_request_error, 401
authentication_error, 403 permission_error, 404 not_found_error, 413
request_too_large, 429 rate_limit_error, 500 api_error, 529
overloaded_error…). Every answer has a ``request-id`` header. The ``x-sim-*``
fault headers work as in the OpenAI dialect (see :mod:`lockgate.sim.server`);
``x-sim-drop-after-chunks: k`` sends the events up to the first
content_block_delta and ``k`` content deltas, then cuts the connection.
"""

from __future__ import annotations

import hmac
import logging
import re
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from lockgate.sim import replies, streaming
from lockgate.sim.errors import SimError
from lockgate.sim.knobs import Knobs
from lockgate.sim.state import STATE, ShuttingDown, State
from lockgate.sim.tools import ToolCall, ToolSpec, choose_call

log = logging.getLogger(__name__)

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}
#: Anthropic's wording for the injected faults that have a well-known one.
_INJECTED_MESSAGES = {
    529: "Overloaded",
    429: "Number of requests has exceeded your per-minute rate limit (simulated).",
    500: "Internal server error (simulated).",
}
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
_JSON_PIECE = re.compile(r'[^,:]*[,:]?')


class _Invalid(SimError):
    def __init__(self, message: str):
        super().__init__(400, message)


# -- entry point -----------------------------------------------------------------


async def messages(request: web.Request) -> web.StreamResponse:
    """``POST /v1/messages``; every error leaves Anthropic-shaped."""
    state: State = request.app[STATE]
    request_id = state.next_id("req_")
    try:
        response = await _messages(request, state, request_id)
    except SimError as exc:
        response = error_response(exc.status, exc.message, request_id, exc.headers)
    except web.HTTPRequestEntityTooLarge:
        response = error_response(413, "Request exceeds the maximum allowed number of bytes.",
                                  request_id)
    except ShuttingDown:
        response = error_response(503, "The simulator is shutting down.", request_id)
    except ConnectionError:
        return web.Response(status=500)  # the client went away: nobody reads this
    except Exception:
        log.exception("simulator: unexpected error on POST /v1/messages")
        response = error_response(500, "Internal server error", request_id)
    if not response.prepared:
        response.headers["request-id"] = request_id
    return response


def error_response(
    status: int, message: str, request_id: str, headers: dict[str, str] | None = None
) -> web.Response:
    """An Anthropic-shaped error answer."""
    kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    body = orjson.dumps({
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": request_id,
    })
    response = web.Response(status=status, body=body, content_type="application/json")
    response.headers.update(headers or {})
    return response


async def _messages(request: web.Request, state: State, request_id: str) -> web.StreamResponse:
    _authorize(state, request)
    knobs = Knobs(state.config, request.headers)
    req = parse(await _read_json(request))
    try:
        await state.fault(knobs)
    except SimError as exc:
        exc.message = _INJECTED_MESSAGES.get(exc.status, exc.message)
        raise
    answer = respond(req, knobs.words)
    message_id = state.next_id("msg_")
    if req.stream:
        head, deltas, tail = stream_events(req, answer, message_id, knobs.chunk_count)
        headers = {**streaming.SSE_HEADERS, "request-id": request_id}
        return await streaming.send(request, knobs, head, deltas, tail, headers,
                                    dialect="anthropic")
    if knobs.latency > 0:
        await state.pause(knobs.latency)
    body = orjson.dumps({
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": req.model,
        "content": answer.content,
        "stop_reason": answer.stop_reason,
        "stop_sequence": answer.stop_sequence,
        "usage": _usage(answer.input_tokens, answer.output_tokens),
    })
    return web.Response(body=body, content_type="application/json")


async def _read_json(request: web.Request) -> dict[str, Any]:
    raw = await request.read()  # bounded by client_max_size (413)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _Invalid("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise _Invalid("The request body must be a JSON object.")
    return body


def _authorize(state: State, request: web.Request) -> None:
    key = state.config.api_key
    if key is not None:
        given = request.headers.get("x-api-key")
        bearer = request.headers.get("Authorization", "")
        if given is None and bearer[:7].lower() == "bearer ":
            given = bearer[7:]  # how newer official SDKs send the key
        if given is None:
            raise SimError(401, "x-api-key header is required")
        if not hmac.compare_digest(
            given.encode("utf-8", "surrogateescape"), key.encode("utf-8", "surrogateescape")
        ):
            raise SimError(401, "invalid x-api-key")
    if not request.headers.get("anthropic-version"):
        raise _Invalid("anthropic-version: header is required")


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


# -- request checks -----------------------------------------------------------------


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


# -- the answer ------------------------------------------------------------------------


@dataclass(slots=True)
class Answer:
    """The assistant message: its content blocks and what streaming needs."""

    content: list[dict[str, Any]]
    stop_reason: str
    stop_sequence: str | None
    input_tokens: int
    output_tokens: int
    #: Text pieces (text answer) or partial JSON pieces (tool_use answer).
    pieces: list[str]
    call: ToolCall | None


def conversation(req: MessagesRequest) -> list[dict[str, Any]]:
    """The conversation as OpenAI messages would carry it: the reply key."""
    head = [{"role": "system", "content": req.system}] if req.system else []
    return head + [{"role": m["role"], "content": m["content"]} for m in req.messages]


def respond(req: MessagesRequest, words: int) -> Answer:
    key = replies.messages_key(conversation(req))
    input_tokens = replies.prompt_tokens(_token_view(conversation(req)))
    call = _tool_call(req, key)
    if call is not None:
        block = {
            "type": "tool_use", "id": call.call_id("toolu_"), "name": call.name,
            "input": call.arguments,
        }
        arguments = orjson.dumps(call.arguments).decode()
        output = replies.count_tokens(call.name) + replies.count_tokens(arguments)
        pieces = [p for p in _JSON_PIECE.findall(arguments) if p]
        return Answer([block], "tool_use", None, input_tokens, output, pieces, call)
    done = replies.complete(key, words, stop=req.stop_sequences, max_tokens=req.max_tokens)
    matched = _matched_stop(key, words, req.stop_sequences) if done.finish_reason == "stop" else None
    content = [{"type": "text", "text": done.text}] if done.pieces else []
    if done.finish_reason == "length":
        reason = "max_tokens"
    else:
        reason = "stop_sequence" if matched is not None else "end_turn"
    return Answer(content, reason, matched, input_tokens, done.tokens, done.pieces, None)


def _matched_stop(key: bytes, words: int, stops: list[str]) -> str | None:
    """The stop sequence the full reply reaches first, if any."""
    text = "".join(replies.reply_pieces(key, words))
    hits = [(pos, i) for i, s in enumerate(stops) if s and (pos := text.find(s)) >= 0]
    return stops[min(hits)[1]] if hits else None


def _tool_call(req: MessagesRequest, key: bytes) -> ToolCall | None:
    if not req.tools:
        return None
    choice = req.tool_choice or {"type": "auto"}
    neutral = {"auto": "auto", "any": "required", "none": "none", "tool": None}[choice["type"]]
    last = req.messages[-1]
    ends_with_result = last["role"] == "user" and isinstance(last["content"], list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in last["content"]
    )
    return choose_call(
        [ToolSpec(t["name"], t["input_schema"]) for t in req.tools],
        neutral,
        choice.get("name") if choice["type"] == "tool" else None,
        ends_with_result,
        key,
    )


def _token_view(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages whose tool blocks read as the text they carry, for prompt_tokens."""
    out = []
    for message in messages:
        content = message["content"]
        if isinstance(content, list):
            content = [_block_as_part(b) for b in content]
        out.append({"role": message["role"], "content": content})
    return out


def _block_as_part(block: Any) -> Any:
    if not isinstance(block, dict):
        return block
    if block.get("type") == "tool_use":
        text = f"{block.get('name', '')} {orjson.dumps(block.get('input')).decode()}"
        return {"type": "text", "text": text}
    if block.get("type") == "tool_result":
        content = block.get("content")
        if isinstance(content, list):
            return {"type": "text", "text": " ".join(
                b.get("text", "") for b in content if isinstance(b, dict)
            )}
        return {"type": "text", "text": content if isinstance(content, str) else ""}
    return block


# -- streaming ---------------------------------------------------------------------------


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
