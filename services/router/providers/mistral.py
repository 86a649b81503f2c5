"""Mistral's chat completions and embeddings API (`https://api.mistral.ai/v1`).

Mistral's wire format is OpenAI-like with documented differences, and its
API rejects unknown fields (422 `extra_forbidden`). The adapter translates an
OpenAI request field by field; anything not in this table is rejected with
InvalidRequest naming the field before a call is made.

==========================  =====================================================
OpenAI request field        Mistral
==========================  =====================================================
messages                    translated (below)
temperature, top_p, n,      same
stop, presence_penalty,
frequency_penalty, tools,
parallel_tool_calls,
prediction
response_format             same for text / json_object / json_schema
max_completion_tokens,      `max_tokens` (max_completion_tokens wins)
max_tokens
seed                        `random_seed`
tool_choice                 "auto"/"none" same; "required" -> "any"; a named
                            function `{"type":"function","function":{"name"}}`
                            same
stream                      set by the adapter
stream_options              dropped: Mistral always sends usage on its last chunk
user, safety_identifier     dropped: end-user ids for abuse monitoring, no effect
                            on the output
prompt_cache_key            dropped: a cache hint only
metadata                    dropped: tags for OpenAI's stored completions
store                       false/null dropped; true rejected
logprobs                    false/null dropped; true rejected
modalities                  ["text"] dropped; anything else rejected
service_tier                "auto"/"default" dropped; others rejected
logit_bias, top_logprobs,   rejected (no Mistral equivalent)
audio, reasoning_effort,
verbosity, web_search_options,
functions, function_call
random_seed, safe_prompt,   Mistral's own fields, passed through
prompt_mode
anything else               rejected
==========================  =====================================================

Messages: roles system, user, assistant, tool (`developer` is sent as
`system`, Mistral's equivalent; `function` is rejected). Mistral forbids
`name` on system/user/assistant messages (rejected); content parts `text`
and `image_url` are sent as they are, `input_audio`/`file` rejected.
Mistral requires tool call ids of 9 alphanumeric characters: other ids (e.g.
OpenAI's `call_…`, from a conversation started elsewhere) are replaced by a
stable 9-character digest, the same in the assistant `tool_calls` and the
`tool` messages, so the pairing is kept.

Responses: `finish_reason` `model_length` -> `length`; `error` -> UpstreamError;
content given as chunks (reasoning models) -> the text chunks joined,
`thinking` chunks left out; tool calls get `type: "function"` (and, in
streams, their `index`). Mistral puts `usage` on the last content chunk of a
stream; the adapter moves it to a final `choices: []` chunk, as the router
expects. Errors: 422 validation bodies (`{"object":"error","message":…}` with
`message` a string, an object with `detail`, or a list, depending on the
endpoint's age) become InvalidRequest naming the field in `param`; 429 is
RateLimited (with `retry-after` when sent).

Embeddings (`POST /embeddings`, e.g. `mistral-embed`): `input` strings,
`dimensions` -> `output_dimension`, `encoding_format` float/base64 as is;
token-id inputs are rejected.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import AsyncIterator

import orjson

from lockgate.errors import InvalidRequest, LockgateError, UpstreamError
from lockgate.upstream_client import UpstreamClient
from services.router.config import ProviderConfig, TimeoutsConfig
from services.router.providers.http import (
    UpstreamHTTP,
    api_key,
    retry_after_seconds,
    status_error,
)
from services.router.providers.openai import is_done, stream_chunks

_SAME = frozenset({
    "temperature", "top_p", "n", "stop", "presence_penalty", "frequency_penalty",
    "tools", "parallel_tool_calls", "prediction", "random_seed", "safe_prompt", "prompt_mode",
})
_DROPPED = frozenset({"stream", "stream_options", "user", "safety_identifier",
                      "prompt_cache_key", "metadata", "model"})
#: Dropped when they ask for nothing (the value given), rejected otherwise.
_DROPPED_IF = {
    "store": (None, False),
    "logprobs": (None, False),
    "modalities": (None, ["text"]),
    "service_tier": (None, "auto", "default"),
}
_UNSUPPORTED = {
    "logit_bias": "logit_bias",
    "top_logprobs": "log probabilities",
    "audio": "audio output",
    "reasoning_effort": "reasoning_effort",
    "verbosity": "verbosity",
    "web_search_options": "web search",
    "functions": "legacy `functions` (use `tools`)",
    "function_call": "legacy `function_call` (use `tool_choice`)",
}
_RESPONSE_FORMATS = frozenset({"text", "json_object", "json_schema"})
_FINISH = {"stop": "stop", "length": "length", "model_length": "length",
           "tool_calls": "tool_calls"}
_MESSAGE_KEYS = {
    "system": frozenset({"role", "content"}),
    "user": frozenset({"role", "content"}),
    "assistant": frozenset({"role", "content", "tool_calls", "prefix", "refusal"}),
    "tool": frozenset({"role", "content", "tool_call_id", "name"}),
}
_CALL_ID = re.compile(r"[A-Za-z0-9]{9}")
_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class MistralProvider:
    def __init__(self, name: str, config: ProviderConfig, upstream: UpstreamClient | None = None):
        self.name = name
        self.base_url = config.base_url
        self.http = UpstreamHTTP(
            name, max_response_bytes=config.max_response_bytes, error_hook=self._error,
            forward_headers=config.forward_headers,
            upstream=upstream,
        )
        self.headers = {"content-type": "application/json", "accept": "application/json"}
        key = api_key(config.api_key_env)
        if key:
            self.headers["authorization"] = f"Bearer {key}"

    async def chat(self, body: dict, model: str, timeouts: TimeoutsConfig) -> dict:
        payload = chat_request(body, model, stream=False)
        reply = await self.http.post_json(
            f"{self.base_url}/chat/completions", payload, self.headers, timeouts
        )
        return chat_response(self.name, reply)

    async def stream_chat(
        self, body: dict, model: str, timeouts: TimeoutsConfig
    ) -> AsyncIterator[dict]:
        payload = chat_request(body, model, stream=True)
        headers = {**self.headers, "accept": "text/event-stream"}
        events = self.http.post_sse(
            f"{self.base_url}/chat/completions", payload, headers, timeouts, last_event=is_done
        )
        chunks = stream_chunks(self.name, events, _stream_error)
        usage_chunk: dict | None = None
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                out, usage = stream_chunk(self.name, chunk)
                if usage is not None:
                    usage_chunk = {**_chunk_head(chunk), "choices": [], "usage": usage}
                if out is not None:
                    yield out
        if usage_chunk is not None:
            yield usage_chunk

    async def embed(self, body: dict, model: str, timeouts: TimeoutsConfig) -> dict:
        reply = await self.http.post_json(
            f"{self.base_url}/embeddings", embeddings_request(body, model), self.headers, timeouts
        )
        return embeddings_response(self.name, reply)

    def _error(self, status: int, parsed: object, text: str, headers) -> LockgateError:
        detail, param = error_detail(parsed)
        error = status_error(
            self.name, status, detail or text, retry_after=retry_after_seconds(headers)
        )
        if isinstance(error, InvalidRequest) and param:
            error.param = param
        return error


# -- requests ---------------------------------------------------------------------------


def chat_request(body: dict, model: str, *, stream: bool) -> dict:
    """The Mistral request for an OpenAI chat completions body (see the table)."""
    out: dict = {"model": model}
    for key, value in body.items():
        if key == "messages":
            continue
        if key in _SAME:
            if value is not None:
                out[key] = value
        elif key in _DROPPED:
            pass
        elif key in _DROPPED_IF:
            if value not in _DROPPED_IF[key]:
                raise _unsupported(key, f"{key}={_short(value)}")
        elif key in ("max_tokens", "max_completion_tokens"):
            pass
        elif key == "seed":
            if value is not None:
                out["random_seed"] = value
        elif key == "tool_choice":
            if value is not None:
                out["tool_choice"] = _tool_choice(value)
        elif key == "response_format":
            if value is not None:
                out["response_format"] = _response_format(value)
        elif key in _UNSUPPORTED:
            raise _unsupported(key, _UNSUPPORTED[key])
        else:
            raise _unsupported(key, f"the field {key!r}")
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    if max_tokens is not None:
        out["max_tokens"] = max_tokens
    if isinstance(out.get("tools"), list):
        for i, tool in enumerate(out["tools"]):
            if not isinstance(tool, dict) or tool.get("type", "function") != "function":
                raise InvalidRequest(
                    "Mistral supports only function tools", param=f"tools[{i}].type"
                )
    out["messages"] = _messages(body.get("messages"))
    out["stream"] = stream
    return out


def _unsupported(param: str, what: str) -> InvalidRequest:
    return InvalidRequest(f"Mistral does not support {what}", param=param)


def _short(value: object) -> str:
    return orjson.dumps(value).decode()[:60] if value is not None else "null"


def _tool_choice(value: object) -> object:
    if value in ("auto", "none"):
        return value
    if value == "required":
        return "any"
    if (
        isinstance(value, dict)
        and value.get("type") == "function"
        and isinstance(value.get("function"), dict)
        and isinstance(value["function"].get("name"), str)
    ):
        return {"type": "function", "function": {"name": value["function"]["name"]}}
    raise InvalidRequest(
        'tool_choice must be "auto", "none", "required" or a named function',
        param="tool_choice",
    )


def _response_format(value: object) -> object:
    if isinstance(value, dict) and value.get("type") in _RESPONSE_FORMATS:
        return value
    raise InvalidRequest(
        "response_format.type must be text, json_object or json_schema",
        param="response_format",
    )


def _messages(messages: object) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages must be a non-empty array", param="messages")
    out = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"{where} must be an object", param=where)
        role = message.get("role")
        if role == "developer":
            role = "system"
        allowed = _MESSAGE_KEYS.get(role) if isinstance(role, str) else None
        if allowed is None:
            raise InvalidRequest(
                f"Mistral does not support the message role {str(role)[:40]!r}",
                param=f"{where}.role",
            )
        converted: dict = {"role": role}
        for key, value in message.items():
            if key == "role":
                continue
            if key not in allowed:
                raise InvalidRequest(
                    f"Mistral does not support {key!r} on {role} messages",
                    param=f"{where}.{key}",
                )
            if key == "content":
                converted["content"] = _content(value, f"{where}.content")
            elif key == "tool_calls":
                if value is not None:
                    converted["tool_calls"] = _tool_calls(value, f"{where}.tool_calls")
            elif key == "tool_call_id":
                converted["tool_call_id"] = mistral_call_id(value)
            elif key == "refusal":
                if value is not None:
                    raise InvalidRequest(
                        "Mistral does not support assistant refusals", param=f"{where}.refusal"
                    )
            elif value is not None:
                converted[key] = value
        out.append(converted)
    return out


def _content(value: object, where: str) -> object:
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise InvalidRequest(f"{where} must be a string or an array", param=where)
    for j, part in enumerate(value):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in ("text", "image_url"):
            raise InvalidRequest(
                f"Mistral does not support {str(kind)[:40]!r} content parts here",
                param=f"{where}[{j}].type",
            )
    return value


def _tool_calls(calls: object, where: str) -> list[dict]:
    if not isinstance(calls, list):
        raise InvalidRequest(f"{where} must be an array", param=where)
    out = []
    for j, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            raise InvalidRequest(f"{where}[{j}] must be a function call", param=f"{where}[{j}]")
        out.append({
            "id": mistral_call_id(call.get("id")),
            "type": "function",
            "function": {"name": function.get("name"), "arguments": function.get("arguments")},
        })
    return out


def mistral_call_id(value: object) -> object:
    """A tool call id Mistral accepts (9 alphanumerics): kept if it is one,
    else a stable digest of it."""
    if not isinstance(value, str) or _CALL_ID.fullmatch(value):
        return value
    number = int.from_bytes(hashlib.sha256(value.encode()).digest()[:8], "big")
    chars = []
    for _ in range(9):
        number, digit = divmod(number, len(_ALNUM))
        chars.append(_ALNUM[digit])
    return "".join(chars)


def embeddings_request(body: dict, model: str) -> dict:
    out: dict = {"model": model}
    for key, value in body.items():
        if key == "input":
            if isinstance(value, str) or (
                isinstance(value, list) and value and all(isinstance(v, str) for v in value)
            ):
                out["input"] = value
            else:
                raise InvalidRequest(
                    "Mistral embeddings take a string or an array of strings", param="input"
                )
        elif key == "dimensions":
            if value is not None:
                out["output_dimension"] = value
        elif key == "encoding_format":
            if value is not None:
                out["encoding_format"] = value
        elif key not in ("model", "user"):
            raise _unsupported(key, f"the embeddings field {key!r}")
    if "input" not in out:
        raise InvalidRequest("input is required", param="input")
    return out


# -- responses --------------------------------------------------------------------------


def chat_response(provider: str, reply: dict) -> dict:
    choices = reply.get("choices")
    if not isinstance(choices, list):
        raise UpstreamError(f"provider {provider!r} sent an unexpected response")
    out_choices = []
    for i, choice in enumerate(choices):
        if not isinstance(choice, dict):
            raise UpstreamError(f"provider {provider!r} sent an unexpected response")
        message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
        converted = {
            "role": "assistant",
            "content": _text(message.get("content")),
            "refusal": None,
        }
        calls = message.get("tool_calls")
        if isinstance(calls, list) and calls:
            converted["tool_calls"] = [_response_call(c) for c in calls if isinstance(c, dict)]
        out_choices.append({
            "index": choice.get("index", i),
            "message": converted,
            "logprobs": None,
            "finish_reason": _finish(provider, choice.get("finish_reason")),
        })
    out = {
        "id": reply.get("id", ""),
        "object": "chat.completion",
        "created": reply.get("created", 0),
        "model": reply.get("model", ""),
        "choices": out_choices,
    }
    usage = _usage(reply.get("usage"))
    if usage is not None:
        out["usage"] = usage
    return out


def stream_chunk(provider: str, chunk: dict) -> tuple[dict | None, dict | None]:
    """(the OpenAI chunk or None when it carried only usage, the usage or None)."""
    usage = _usage(chunk.get("usage"))
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        raise UpstreamError(f"provider {provider!r} sent an invalid stream chunk")
    out_choices = []
    for i, choice in enumerate(choices):
        if not isinstance(choice, dict):
            raise UpstreamError(f"provider {provider!r} sent an invalid stream chunk")
        delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
        converted: dict = {}
        if "role" in delta:
            converted["role"] = delta["role"]
        if "content" in delta:
            converted["content"] = _text(delta["content"])
        calls = delta.get("tool_calls")
        if isinstance(calls, list) and calls:
            converted["tool_calls"] = [
                {"index": call.get("index", j), **_response_call(call)}
                for j, call in enumerate(calls)
                if isinstance(call, dict)
            ]
        finish = choice.get("finish_reason")
        out_choices.append({
            "index": choice.get("index", i),
            "delta": converted,
            "logprobs": None,
            "finish_reason": None if finish is None else _finish(provider, finish),
        })
    if not out_choices and usage is not None:
        return None, usage
    return {**_chunk_head(chunk), "choices": out_choices}, usage


def _chunk_head(chunk: dict) -> dict:
    return {
        "id": chunk.get("id", ""),
        "object": "chat.completion.chunk",
        "created": chunk.get("created", 0),
        "model": chunk.get("model", ""),
    }


def _response_call(call: dict) -> dict:
    function = call.get("function") if isinstance(call.get("function"), dict) else {}
    arguments = function.get("arguments")
    if not isinstance(arguments, str) and arguments is not None:
        arguments = orjson.dumps(arguments).decode()  # OpenAI sends arguments as a JSON string
    return {
        "id": call.get("id"),
        "type": "function",
        "function": {"name": function.get("name"), "arguments": arguments},
    }


def _text(content: object) -> str | None:
    """Mistral content: a string, null, or chunks (text kept, thinking left out)."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
            and isinstance(part.get("text"), str)
        )
    return None


def _finish(provider: str, reason: object) -> str:
    mapped = _FINISH.get(reason) if isinstance(reason, str) else None
    if mapped is None:
        if reason == "error":
            raise UpstreamError(f"provider {provider!r} failed while generating")
        return "stop"
    return mapped


def _usage(usage: object) -> dict | None:
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens") or 0
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    total = usage.get("total_tokens")
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": total if isinstance(total, int) else prompt + completion,
    }


def embeddings_response(provider: str, reply: dict) -> dict:
    data = reply.get("data")
    if not isinstance(data, list):
        raise UpstreamError(f"provider {provider!r} sent an unexpected response")
    out = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": item.get("index", i),
             "embedding": item.get("embedding")}
            for i, item in enumerate(data)
            if isinstance(item, dict)
        ],
        "model": reply.get("model", ""),
    }
    usage = reply.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
        total = usage.get("total_tokens")
        out["usage"] = {
            "prompt_tokens": usage["prompt_tokens"],
            "total_tokens": total if isinstance(total, int) else usage["prompt_tokens"],
        }
    return out


# -- errors -----------------------------------------------------------------------------


def error_detail(parsed: object) -> tuple[str, str | None]:
    """(readable message, offending top-level request field or None) of a
    Mistral error body, whichever of its documented shapes it has."""
    if not isinstance(parsed, dict):
        return "", None
    message = parsed.get("message")
    if isinstance(message, str) and message.startswith("{"):
        try:
            message = orjson.loads(message)  # older API: the detail object as a string
        except orjson.JSONDecodeError:
            pass
    details = None
    if isinstance(message, dict):
        details = message.get("detail")
    elif isinstance(message, list):
        details = message
    elif isinstance(parsed.get("detail"), list):
        details = parsed["detail"]
    if isinstance(details, list) and details:
        return _validation_details(details)
    if isinstance(message, str):
        return message, None
    return _message_text(parsed), None


def _validation_details(details: list) -> tuple[str, str | None]:
    parts = []
    param = None
    for item in details[:5]:
        if not isinstance(item, dict):
            continue
        loc = item.get("loc") if isinstance(item.get("loc"), list) else []
        path = [str(p) for p in loc if p != "body"]
        if param is None and path:
            param = path[0]
        parts.append(f"{'.'.join(path) or 'body'}: {item.get('msg', 'invalid')}")
    return "; ".join(parts), param


def _stream_error(chunk: dict) -> str | None:
    """The message of an error sent mid-stream (a body without `choices`)."""
    return None if "choices" in chunk else _message_text(chunk)


def _message_text(payload: dict) -> str:
    message = payload.get("message")
    if isinstance(message, str):
        return message
    error = payload.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"]
    return ""
