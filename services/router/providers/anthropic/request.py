"""Request translation (OpenAI chat completion -> Anthropic message).

* `system` / `developer` messages -> the top-level `system` (a string when
  there is one plain-text system message, else a list of text blocks, in
  order; Anthropic has a single system prompt, so a system message in the
  middle of a conversation moves to the front).
* user content: a string, or `text` and `image_url` parts (a `data:` URL ->
  a base64 image source with its media type; an `https://` URL -> a url
  source; `detail` has no Anthropic equivalent and is ignored).
* assistant: text (and `refusal` text) -> text blocks; `tool_calls` ->
  `tool_use` blocks (`arguments` must be a JSON object, else 400 naming it).
* `tool` messages -> `tool_result` blocks in a user turn; adjacent turns of
  the same role are merged into one (Anthropic requires alternation), tool
  results first.
* `tools` -> `{name, description, input_schema}` (`strict` is a hint
  Anthropic does not take; it is not sent); `tool_choice` auto / none /
  required / a named function -> `{type: auto}` / `{type: none}` /
  `{type: any}` / `{type: tool, name}`; `parallel_tool_calls: false` ->
  `disable_parallel_tool_use`.
* `max_completion_tokens` or `max_tokens` -> `max_tokens`, which Anthropic
  requires: DEFAULT_MAX_TOKENS (4096) when the request has neither.
* `stop` -> `stop_sequences`; `temperature` (0..1 only: Anthropic's range),
  `top_p`; `user` -> `metadata.user_id`.
* Ignored because they do not change the answer: `model` (the deployment's
  is used), `stream`, `stream_options` (usage is always reported), `metadata`
  (OpenAI's tags for stored completions; only valid with `store`).

Fields Anthropic cannot honour are a 400 (InvalidRequest with `param`), never
dropped: `n` > 1, `logprobs`, `top_logprobs`, `response_format` other than
text, `seed`, non-zero `presence_penalty` / `frequency_penalty`, a non-empty
`logit_bias`, `audio`, `modalities` other than ["text"], `prediction`,
`reasoning_effort`, `web_search_options`, `store: true`, a `service_tier`
other than auto/default,
legacy `functions` / `function_call` and `function` messages, a message
`name`, audio/file content parts, and any field this adapter does not know.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from lockgate.errors import InvalidRequest

#: Anthropic requires max_tokens; used when the request sets no limit.
DEFAULT_MAX_TOKENS = 4096

#: Fields translated, or ignored because they do not change the answer.
_HANDLED = frozenset({
    "model", "messages", "stream", "stream_options", "metadata", "max_tokens",
    "max_completion_tokens", "temperature", "top_p", "stop", "tools", "tool_choice",
    "parallel_tool_calls", "user",
})
#: Fields that are fine at their neutral value: field -> is it neutral.
_NEUTRAL = {
    "n": lambda v: v == 1,
    "logprobs": lambda v: v is False,
    "presence_penalty": lambda v: v == 0,
    "frequency_penalty": lambda v: v == 0,
    "logit_bias": lambda v: v == {},
    "modalities": lambda v: v == ["text"],
    "response_format": lambda v: isinstance(v, dict) and v.get("type") == "text",
    "store": lambda v: v is False,
    "service_tier": lambda v: v in ("auto", "default"),
}
_DATA_URL = re.compile(r"^data:(image/[A-Za-z0-9.+-]+);base64,(.*)$", re.DOTALL)


def to_anthropic(body: dict, model: str) -> dict:
    """The Anthropic Messages request for an OpenAI chat completion request."""
    _reject_unsupported(body)
    system, messages = _messages(body.get("messages"))
    payload: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": _max_tokens(body),
    }
    if system:
        payload["system"] = system
    stop = body.get("stop")
    if stop is not None:
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise InvalidRequest("'stop' must be a string or an array of strings", param="stop")
        if stop:
            payload["stop_sequences"] = stop
    temperature = body.get("temperature")
    if temperature is not None:
        if not _is_number(temperature) or not 0 <= temperature <= 1:
            raise InvalidRequest(
                "Anthropic accepts a 'temperature' between 0 and 1", param="temperature"
            )
        payload["temperature"] = temperature
    top_p = body.get("top_p")
    if top_p is not None:
        if not _is_number(top_p) or not 0 <= top_p <= 1:
            raise InvalidRequest("'top_p' must be a number between 0 and 1", param="top_p")
        payload["top_p"] = top_p
    user = body.get("user")
    if user is not None:
        if not isinstance(user, str):
            raise InvalidRequest("'user' must be a string", param="user")
        payload["metadata"] = {"user_id": user}
    tools = _tools(body.get("tools"))
    choice = _tool_choice(body.get("tool_choice"), bool(tools), body.get("parallel_tool_calls"))
    if tools:
        payload["tools"] = tools
    if choice:
        payload["tool_choice"] = choice
    return payload


def _reject_unsupported(body: dict) -> None:
    for field, value in body.items():
        if field in _HANDLED or value is None:
            continue
        neutral = _NEUTRAL.get(field)
        if neutral is not None and neutral(value):
            continue
        raise InvalidRequest(
            f"Anthropic cannot honour '{field}'"
            + (f" = {_short(value)}" if neutral is not None else "")
            + "; remove it or route to another provider",
            param=field,
        )


def _short(value: Any) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= 60 else text[:57] + "..."


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _max_tokens(body: dict) -> int:
    for field in ("max_completion_tokens", "max_tokens"):
        value = body.get(field)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidRequest(f"'{field}' must be a positive integer", param=field)
        return value
    return DEFAULT_MAX_TOKENS


def _messages(messages: Any) -> tuple[str | list[dict], list[dict]]:
    """(system, turns): the system prompt and the alternating user/assistant turns."""
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array", param="messages")
    system: list[dict] = []
    turns: list[dict] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"'{where}' must be an object", param=where)
        role = message.get("role")
        for field in ("name", "audio", "function_call"):
            if message.get(field) is not None:
                raise InvalidRequest(
                    f"Anthropic cannot honour '{where}.{field}'", param=f"{where}.{field}"
                )
        if role in ("system", "developer"):
            system += _text_blocks(message.get("content"), f"{where}.content")
        elif role == "user":
            _append(turns, "user", _user_blocks(message.get("content"), f"{where}.content"))
        elif role == "assistant":
            blocks = _assistant_blocks(message, where)
            if blocks:  # an empty assistant turn says nothing; Anthropic would refuse it
                _append(turns, "assistant", blocks)
        elif role == "tool":
            _append(turns, "user", [_tool_result(message, where)])
        elif role == "function":
            raise InvalidRequest(
                "legacy 'function' messages are not supported; use 'tool' messages",
                param=f"{where}.role",
            )
        else:
            raise InvalidRequest(f"'{where}.role' is not a valid role", param=f"{where}.role")
    if not turns:
        raise InvalidRequest(
            "Anthropic needs at least one user or assistant message", param="messages"
        )
    for turn in turns:
        # A turn that is one text block is sent as a string, as Anthropic's
        # own examples do; anything richer stays a list of blocks.
        content = turn["content"]
        if len(content) == 1 and content[0]["type"] == "text" and len(content[0]) == 2:
            turn["content"] = content[0]["text"]
    if len(system) == 1:
        return system[0]["text"], turns
    return system, turns


def _append(turns: list[dict], role: str, blocks: list[dict]) -> None:
    """Adds blocks as a turn, merged into the previous one when it has the same
    role (Anthropic needs user and assistant turns to alternate); in a user
    turn, tool results go before anything else, as Anthropic requires."""
    if turns and turns[-1]["role"] == role:
        content = turns[-1]["content"] + blocks
    else:
        content = blocks
        turns.append({"role": role, "content": content})
    if role == "user":
        content.sort(key=lambda b: b["type"] != "tool_result")  # stable: order kept otherwise
    turns[-1]["content"] = content


def _text_blocks(content: Any, where: str) -> list[dict]:
    """Text-only content (system, developer, tool, assistant) as text blocks."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if content is None:
        return []
    if not isinstance(content, list):
        raise InvalidRequest(f"'{where}' must be a string or an array", param=where)
    blocks = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        text = part.get("text") if kind == "text" else part.get("refusal") if kind else None
        if kind not in ("text", "refusal") or not isinstance(text, str):
            raise InvalidRequest(
                f"'{where}[{j}]' must be a text part here", param=f"{where}[{j}]"
            )
        if text:
            blocks.append({"type": "text", "text": text})
    return blocks


def _user_blocks(content: Any, where: str) -> list[dict]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise InvalidRequest(f"'{where}' must be a string or an array of parts", param=where)
    blocks = []
    for j, part in enumerate(content):
        at = f"{where}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise InvalidRequest(f"'{at}.text' must be a string", param=f"{at}.text")
            blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            blocks.append(_image(part.get("image_url"), f"{at}.image_url"))
        elif isinstance(kind, str):
            raise InvalidRequest(
                f"Anthropic cannot honour content parts of type '{kind[:40]}'",
                param=f"{at}.type",
            )
        else:
            raise InvalidRequest(f"'{at}' must be a content part with a type", param=at)
    return blocks


def _image(image: Any, where: str) -> dict:
    url = image.get("url") if isinstance(image, dict) else None
    if not isinstance(url, str):
        raise InvalidRequest(f"'{where}.url' must be a string", param=f"{where}.url")
    match = _DATA_URL.match(url)
    if match:
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": match[1], "data": match[2]},
        }
    if url.startswith("https://"):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise InvalidRequest(
        "an image must be a base64 data: URL (data:image/...;base64,...) or an https:// URL",
        param=f"{where}.url",
    )


def _assistant_blocks(message: dict, where: str) -> list[dict]:
    blocks = _text_blocks(message.get("content"), f"{where}.content")
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        blocks.append({"type": "text", "text": refusal})
    calls = message.get("tool_calls")
    if calls is None:
        return blocks
    if not isinstance(calls, list):
        raise InvalidRequest(f"'{where}.tool_calls' must be an array", param=f"{where}.tool_calls")
    for j, call in enumerate(calls):
        at = f"{where}.tool_calls[{j}]"
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(call.get("id"), str):
            raise InvalidRequest(f"'{at}' must have an 'id' and a 'function'", param=at)
        if not isinstance(fn.get("name"), str):
            raise InvalidRequest(f"'{at}.function.name' must be a string",
                                 param=f"{at}.function.name")
        blocks.append({
            "type": "tool_use",
            "id": call["id"],
            "name": fn["name"],
            "input": _arguments(fn.get("arguments"), f"{at}.function.arguments"),
        })
    return blocks


def _arguments(arguments: Any, where: str) -> dict:
    if arguments is None or arguments == "":
        return {}
    try:
        value = orjson.loads(arguments) if isinstance(arguments, str) else None
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise InvalidRequest(f"'{where}' must be a JSON object encoded as a string", param=where)
    return value


def _tool_result(message: dict, where: str) -> dict:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequest(
            f"'{where}.tool_call_id' is required for tool messages", param=f"{where}.tool_call_id"
        )
    content = message.get("content")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id}
    if isinstance(content, str):
        block["content"] = content
    else:
        block["content"] = _text_blocks(content, f"{where}.content")
    return block


def _tools(tools: Any) -> list[dict]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise InvalidRequest("'tools' must be an array", param="tools")
    out = []
    for i, tool in enumerate(tools):
        at = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise InvalidRequest(
                "Anthropic supports only tools of type 'function'", param=f"{at}.type"
            )
        fn = tool.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise InvalidRequest(f"'{at}.function.name' must be a string",
                                 param=f"{at}.function.name")
        schema = fn.get("parameters")
        if schema is None:
            schema = {"type": "object", "properties": {}}
        elif not isinstance(schema, dict):
            raise InvalidRequest(f"'{at}.function.parameters' must be a JSON schema object",
                                 param=f"{at}.function.parameters")
        spec: dict[str, Any] = {"name": fn["name"]}
        if isinstance(fn.get("description"), str):
            spec["description"] = fn["description"]
        spec["input_schema"] = schema
        out.append(spec)
    return out


def _tool_choice(choice: Any, has_tools: bool, parallel: Any) -> dict | None:
    if parallel is not None and not isinstance(parallel, bool):
        raise InvalidRequest("'parallel_tool_calls' must be a boolean", param="parallel_tool_calls")
    if choice is None:
        out = {"type": "auto"} if has_tools and parallel is False else None
    elif choice == "none":
        return {"type": "none"} if has_tools else None
    elif choice == "auto":
        out = {"type": "auto"}
    elif choice == "required":
        out = {"type": "any"}
    elif (
        isinstance(choice, dict) and choice.get("type") == "function"
        and isinstance(choice.get("function"), dict)
        and isinstance(choice["function"].get("name"), str)
    ):
        out = {"type": "tool", "name": choice["function"]["name"]}
    else:
        raise InvalidRequest(
            "'tool_choice' must be 'none', 'auto', 'required' or "
            '{"type": "function", "function": {"name": ...}}',
            param="tool_choice",
        )
    if out is not None and not has_tools:
        raise InvalidRequest(
            "'tool_choice' is only allowed when 'tools' are specified", param="tool_choice"
        )
    if out is not None and parallel is False:
        out["disable_parallel_tool_use"] = True
    return out
