"""Google Gemini API (generateContent, v1beta) behind the OpenAI chat contract.

Wire format: `POST {base_url}/v1beta/models/{model}:generateContent`,
`…:streamGenerateContent?alt=sse` (each SSE event's data is one
GenerateContentResponse) and `…:batchEmbedContents`. The key goes in the
`x-goog-api-key` header, never in the URL (`?key=` would land in access logs).
`base_url` carries no version, e.g. `https://generativelanguage.googleapis.com`.

Request translation (OpenAI chat -> GenerateContentRequest)
-----------------------------------------------------------
* `system` / `developer` messages -> `systemInstruction` (all of them, in
  order, wherever they appear: Gemini has one system instruction).
* `user` / `assistant` -> `contents` with roles `user` / `model`; adjacent
  turns of the same role are merged (role "tool" results become one user turn).
* Content parts: text -> `{text}`; `image_url` with a `data:` URL, `file`
  with `file_data`, `input_audio` -> `inlineData {mimeType, data}`. An
  `https://` image URL -> `fileData {mimeType, fileUri}`: the Gemini API
  fetches public and signed HTTPS URLs itself (announced January 2026, "File
  input methods"); fileData needs a MIME type, so the URL path must end in a
  documented image extension (.png .jpg .jpeg .webp .heic .heif), otherwise 400
  (send a data: URL instead). `detail` is a resolution hint and is not sent.
  Other URL schemes, `file_id` -> 400.
* Assistant `tool_calls` -> `functionCall {name, args}` parts (arguments must
  be a JSON object). A `tool` message -> `functionResponse {name, response}`:
  the name is looked up by `tool_call_id` among earlier assistant tool_calls
  (unknown id -> 400); `response` is the content parsed as JSON when it is a
  JSON object, else `{"content": text}` (Gemini allows any keys there).
  Thought signatures are not round-tripped (OpenAI's format has no place for
  them), so multi-turn function calling on Gemini 3 thinking models may be
  refused by Google.
* `tools` -> `tools[{functionDeclarations: [{name, description, parameters}]}]`.
  `parameters` is converted to Gemini's OpenAPI-subset Schema
  (`gemini_schema`): types upper-cased, `["T", "null"]` -> `nullable`, several
  types -> `anyOf`, `oneOf` -> `anyOf`, `const` -> one-value `enum`, local
  `$ref`s (`#/$defs/…`, `#/definitions/…`) inlined, a one-element `allOf`
  merged. Annotation and loosening-only keywords Gemini has no field for are
  dropped (`$schema`, `$id`, `$comment`, `additionalProperties`, `examples`,
  `readOnly`, `writeOnly`, `deprecated`, `uniqueItems`, `multipleOf`,
  `exclusiveMinimum`, `exclusiveMaximum`, `strict`, …), as are unknown
  keywords (JSON Schema ignores those too). Keywords that change the shape of
  valid values are rejected with 400: `not`, several-element `allOf`,
  `if`/`then`/`else`, `patternProperties`, `prefixItems`, tuple `items`,
  `dependentSchemas`, `contains`, `propertyNames`, recursive or non-local
  `$ref`, non-string `enum`. An object without properties at the top level
  sends no `parameters` (Gemini rejects an OBJECT with empty properties).
* `tool_choice` -> `toolConfig.functionCallingConfig`: auto -> AUTO, none ->
  NONE, required -> ANY, a named function -> ANY + `allowedFunctionNames`;
  `allowed_tools` in required mode -> ANY + `allowedFunctionNames`, in auto
  mode only the allowed declarations are sent (Gemini allows
  `allowedFunctionNames` only with ANY).
* `response_format`: json_object -> `responseMimeType: application/json`;
  json_schema -> that plus `responseJsonSchema` (v1beta's JSON-Schema-accepting
  alternative to `responseSchema`, sent as given; Google documents which
  keywords it honours).
* generationConfig: max_completion_tokens (else max_tokens) ->
  maxOutputTokens, stop -> stopSequences, temperature, top_p -> topP, seed,
  n -> candidateCount, presence/frequency_penalty -> presencePenalty /
  frequencyPenalty, reasoning_effort none/minimal/low/medium/high ->
  thinkingConfig.thinkingBudget 0/1024/1024/8192/24576 (Google's own
  OpenAI-compatibility mapping).
* Accepted but not sent (bookkeeping, no effect on generation): `model` (the
  deployment's model is used), `stream`, `stream_options` (usage is always
  reported), `user`, `metadata`, `service_tier` auto/default, `store` false,
  `parallel_tool_calls` true, `logprobs` false, `modalities` ["text"].
* Rejected with 400 naming the field (`param`): `logit_bias`, `logprobs` true,
  `top_logprobs`, `audio`, `modalities` other than ["text"], `prediction`,
  `web_search_options`, `functions` / `function_call` (legacy),
  `parallel_tool_calls` false (Gemini may always call several), `store` true,
  other `service_tier`s, message `name`s, role "function", and any field this
  adapter does not know.

Response translation
--------------------
Each candidate -> a choice (`index`, which proto3 JSON omits when 0): text
parts joined (thought summaries skipped), `functionCall` parts -> `tool_calls`
with ids `call_<hash of response id, candidate, position, name, args>` (stable:
the same response gives the same ids streamed or not). finishReason STOP ->
stop (tool_calls when the candidate called functions), MAX_TOKENS -> length,
SAFETY / RECITATION / BLOCKLIST / PROHIBITED_CONTENT / SPII / IMAGE_SAFETY /
IMAGE_PROHIBITED_CONTENT / IMAGE_RECITATION -> content_filter, anything else
(OTHER, LANGUAGE, MALFORMED_FUNCTION_CALL, …) -> stop. A prompt blocked by
`promptFeedback.blockReason` (no candidates) -> one choice with empty content
and finish_reason content_filter, so the caller sees a refusal, not an error.
usage: prompt_tokens = promptTokenCount + toolUsePromptTokenCount,
completion_tokens = candidatesTokenCount + thoughtsTokenCount,
completion_tokens_details.reasoning_tokens = thoughtsTokenCount,
prompt_tokens_details.cached_tokens = cachedContentTokenCount.

Streaming: a role chunk first, then text deltas and whole tool_calls deltas
(Gemini sends each function call complete), a finish chunk per candidate, and
a last chunk with `choices: []` and the usage of the last usageMetadata. A
stream that ends before every started candidate has a finishReason raises
UpstreamError("… ended the stream early").

Errors ({"error": {"code", "message", "status", "details"}}, also inside a
one-element array): 429 / RESOURCE_EXHAUSTED -> RateLimited with
`retry_after` from a google.rpc.RetryInfo `retryDelay` ("30s") or Retry-After;
500 / 503 / UNAVAILABLE / INTERNAL -> UpstreamUnavailable; 504 /
DEADLINE_EXCEEDED -> UpstreamTimeout; 400 about the input token count
exceeding the limit -> InvalidRequest(code="context_length_exceeded");
401 / 403 and 400 API_KEY_INVALID -> the gateway's credentials were rejected
(UpstreamError); the rest by the shared default mapping.

Embeddings: input (a string or a list of strings; token arrays -> 400),
dimensions -> outputDimensionality, one batchEmbedContents call. Gemini reports
no token counts for embeddings: usage is 0/0 and the router estimates it.
`encoding_format: base64` is produced here from the floats.
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import orjson

from lockgate.errors import (
    InvalidRequest,
    LockgateError,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from lockgate.logs import redact
from services.router.config import ProviderConfig, TimeoutsConfig
from services.router.providers.http import (
    UpstreamHTTP,
    api_key,
    error_message,
    retry_after_seconds,
    status_error,
)

API_VERSION = "v1beta"

# -- request fields ------------------------------------------------------------------

#: Fields translated into the Gemini request.
_TRANSLATED = frozenset({
    "messages", "temperature", "top_p", "n", "stop", "max_tokens", "max_completion_tokens",
    "seed", "presence_penalty", "frequency_penalty", "tools", "tool_choice",
    "response_format", "reasoning_effort",
})  # fmt: skip
#: Fields accepted when they ask for nothing Gemini would have to do:
#: field -> predicate on the (non-null) value.
_ACCEPTED_IF = {
    "model": lambda v: True,
    "stream": lambda v: isinstance(v, bool),
    "stream_options": lambda v: isinstance(v, dict),
    "user": lambda v: isinstance(v, str),
    "metadata": lambda v: isinstance(v, dict),
    "service_tier": lambda v: v in ("auto", "default"),
    "store": lambda v: v is False,
    "parallel_tool_calls": lambda v: v is True,
    "logprobs": lambda v: v is False,
    "modalities": lambda v: v == ["text"],
}
_MESSAGE_FIELDS = {
    "system": {"role", "content"},
    "developer": {"role", "content"},
    "user": {"role", "content"},
    "assistant": {"role", "content", "tool_calls", "refusal"},
    "tool": {"role", "content", "tool_call_id"},
}
_IMAGE_TYPES = {
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
    ".webp": "image/webp", ".heic": "image/heic", ".heif": "image/heif",
}  # fmt: skip
_AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mp3"}
_THINKING_BUDGET = {"none": 0, "minimal": 1024, "low": 1024, "medium": 8192, "high": 24576}
_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+)(?:;[\w-]+=[^;,]*)*;base64,(.*)$", re.S)

# -- response mapping -------------------------------------------------------------------

_FILTERED = frozenset({
    "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION",
})  # fmt: skip
_RETRY_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


class GeminiProvider:
    def __init__(self, name: str, config: ProviderConfig, session: aiohttp.ClientSession):
        self.name = name
        self.base_url = config.base_url
        self.http = UpstreamHTTP(
            name, session, max_response_bytes=config.max_response_bytes,
            error_hook=lambda status, parsed, text, headers: gemini_error(
                name, status, parsed, text, headers
            ),
            forward_headers=config.forward_headers,
        )
        self.headers = {"content-type": "application/json"}
        key = api_key(config.api_key_env)
        if key:
            self.headers["x-goog-api-key"] = key

    def url(self, model: str, method: str) -> str:
        """`{base_url}/v1beta/models/{model}:{method}` (a `models/` prefix is tolerated)."""
        model = model.removeprefix("models/")
        return f"{self.base_url}/{API_VERSION}/models/{quote(model, safe='')}:{method}"

    async def chat(self, body: dict, model: str, timeouts: TimeoutsConfig) -> dict:
        payload = to_gemini_request(body)
        reply = await self.http.post_json(
            self.url(model, "generateContent"), payload, self.headers, timeouts
        )
        return from_gemini_response(reply, model, self.name)

    async def stream_chat(
        self, body: dict, model: str, timeouts: TimeoutsConfig
    ) -> AsyncIterator[dict]:
        payload = to_gemini_request(body)
        url = self.url(model, "streamGenerateContent") + "?alt=sse"
        events = self.http.post_sse(url, payload, self.headers, timeouts)
        stream = StreamTranslator(model, self.name)
        try:
            async for event in events:
                try:
                    reply = orjson.loads(event.data)
                except orjson.JSONDecodeError:
                    reply = None
                if not isinstance(reply, dict):
                    raise UpstreamError(f"provider {self.name!r} sent an invalid stream chunk")
                for chunk in stream.feed(reply):
                    yield chunk
        finally:
            await events.aclose()
        for chunk in stream.end():
            yield chunk

    async def embed(self, body: dict, model: str, timeouts: TimeoutsConfig) -> dict:
        payload, encoding = to_embed_request(body, model)
        reply = await self.http.post_json(
            self.url(model, "batchEmbedContents"), payload, self.headers, timeouts
        )
        return from_embed_response(reply, model, len(payload["requests"]), encoding, self.name)


# == request ===========================================================================


def to_gemini_request(body: Any) -> dict:
    """The GenerateContentRequest for an OpenAI chat body; InvalidRequest when
    the body asks for something Gemini cannot do (see the module docstring)."""
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    for field, value in body.items():
        if value is None or field in _TRANSLATED:
            continue
        accept = _ACCEPTED_IF.get(field)
        if accept is None or not accept(value):
            raise InvalidRequest(f"'{field}' is not supported by Gemini", param=field)

    system, contents = _messages(body.get("messages"))
    request: dict[str, Any] = {"contents": contents}
    if system:
        request["systemInstruction"] = {"parts": system}
    tools, tool_config = _tools(body.get("tools"), body.get("tool_choice"))
    if tools:
        request["tools"] = tools
    if tool_config:
        request["toolConfig"] = tool_config
    config = _generation_config(body)
    if config:
        request["generationConfig"] = config
    return request


def _messages(messages: Any) -> tuple[list[dict], list[dict]]:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array", param="messages")
    system: list[dict] = []
    contents: list[dict] = []
    call_names: dict[str, str] = {}  # tool_call_id -> function name

    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"'{where}' must be an object", param=where)
        role = message.get("role")
        allowed = _MESSAGE_FIELDS.get(role) if isinstance(role, str) else None
        if allowed is None:
            raise InvalidRequest(
                f"'{where}.role' {str(role)[:40]!r} is not supported by Gemini",
                param=f"{where}.role",
            )
        for field, value in message.items():
            if value is not None and field not in allowed:
                raise InvalidRequest(
                    f"'{where}.{field}' is not supported by Gemini", param=f"{where}.{field}"
                )
        content = message.get("content")
        if role in ("system", "developer"):
            system += [{"text": t} for t in _texts(content, f"{where}.content") if t]
        elif role == "user":
            _append(contents, "user", _user_parts(content, f"{where}.content"))
        elif role == "assistant":
            parts = [{"text": t} for t in _texts(content, f"{where}.content", True) if t]
            if isinstance(message.get("refusal"), str) and message["refusal"]:
                parts.append({"text": message["refusal"]})
            parts += _call_parts(message.get("tool_calls"), f"{where}.tool_calls", call_names)
            _append(contents, "model", parts)
        else:  # tool
            _append(contents, "user", [_tool_result(message, where, call_names)])
    if not contents:
        raise InvalidRequest(
            "Gemini needs at least one user or assistant message", param="messages"
        )
    return system, contents


def _append(contents: list[dict], role: str, parts: list[dict]) -> None:
    """Adds a turn, merged into the previous one when the role is the same."""
    if not parts:
        return
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": role, "parts": parts})


def _texts(content: Any, where: str, refusals: bool = False) -> list[str]:
    """The texts of a content that may only hold text (system, assistant, tool)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        raise InvalidRequest(f"'{where}' must be a string or an array of parts", param=where)
    texts = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif refusals and kind == "refusal" and isinstance(part.get("refusal"), str):
            texts.append(part["refusal"])
        else:
            raise InvalidRequest(
                f"'{where}[{j}]' must be a text part here", param=f"{where}[{j}]"
            )
    return texts


def _user_parts(content: Any, where: str) -> list[dict]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise InvalidRequest(f"'{where}' must be a string or an array of parts", param=where)
    parts = []
    for j, part in enumerate(content):
        at = f"{where}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            if part["text"]:
                parts.append({"text": part["text"]})
        elif kind == "image_url":
            parts.append(_image_part(part.get("image_url"), f"{at}.image_url"))
        elif kind == "input_audio":
            parts.append(_audio_part(part.get("input_audio"), f"{at}.input_audio"))
        elif kind == "file":
            parts.append(_file_part(part.get("file"), f"{at}.file"))
        else:
            raise InvalidRequest(
                f"'{at}': content part type {str(kind)[:40]!r} is not supported by Gemini",
                param=at,
            )
    return parts


def _inline(url: Any, where: str) -> dict | None:
    """`inlineData` of a base64 data: URL, None for a string that is not one."""
    if not isinstance(url, str):
        raise InvalidRequest(f"'{where}' must be a string", param=where)
    if not url.startswith("data:"):
        return None
    match = _DATA_URL.match(url)
    if match is None:
        raise InvalidRequest(
            f"'{where}' must be a base64 data: URL (data:<type>;base64,<data>)", param=where
        )
    return {"inlineData": {"mimeType": match.group(1), "data": match.group(2)}}


def _image_part(image: Any, where: str) -> dict:
    if not isinstance(image, dict):
        raise InvalidRequest(f"'{where}' must be an object", param=where)
    url = image.get("url")
    part = _inline(url, f"{where}.url")
    if part is not None:
        return part
    split = urlsplit(url)
    suffix = split.path[split.path.rfind("."):].lower() if "." in split.path else ""
    if split.scheme != "https" or not split.netloc or suffix not in _IMAGE_TYPES:
        raise InvalidRequest(
            f"'{where}.url': Gemini takes a data: URL or an https:// URL whose path ends "
            f"in {', '.join(_IMAGE_TYPES)}",
            param=f"{where}.url",
        )
    return {"fileData": {"mimeType": _IMAGE_TYPES[suffix], "fileUri": url}}


def _audio_part(audio: Any, where: str) -> dict:
    if not isinstance(audio, dict) or not isinstance(audio.get("data"), str):
        raise InvalidRequest(f"'{where}' must be an object with base64 'data'", param=where)
    mime = _AUDIO_TYPES.get(audio.get("format"))  # type: ignore[arg-type]
    if mime is None:
        raise InvalidRequest(f"'{where}.format' must be 'wav' or 'mp3'", param=f"{where}.format")
    return {"inlineData": {"mimeType": mime, "data": audio["data"]}}


def _file_part(file: Any, where: str) -> dict:
    if not isinstance(file, dict) or file.get("file_data") is None:
        raise InvalidRequest(
            f"'{where}': Gemini needs the file inline ('file_data' as a data: URL), not a file id",
            param=where,
        )
    part = _inline(file["file_data"], f"{where}.file_data")
    if part is None:
        raise InvalidRequest(
            f"'{where}.file_data' must be a base64 data: URL", param=f"{where}.file_data"
        )
    return part


def _call_parts(calls: Any, where: str, call_names: dict[str, str]) -> list[dict]:
    if calls is None:
        return []
    if not isinstance(calls, list):
        raise InvalidRequest(f"'{where}' must be an array", param=where)
    parts = []
    for k, call in enumerate(calls):
        at = f"{where}[{k}]"
        fn = call.get("function") if isinstance(call, dict) else None
        if (
            not isinstance(fn, dict)
            or call.get("type", "function") != "function"
            or not isinstance(fn.get("name"), str)
            or not isinstance(call.get("id"), str)
        ):
            raise InvalidRequest(
                f"'{at}' must be a function tool call with an id and a name", param=at
            )
        arguments = fn.get("arguments") or "{}"
        try:
            args = orjson.loads(arguments) if isinstance(arguments, str) else None
        except orjson.JSONDecodeError:
            args = None
        if not isinstance(args, dict):
            raise InvalidRequest(
                f"'{at}.function.arguments' must be a JSON object", param=f"{at}.function.arguments"
            )
        call_names[call["id"]] = fn["name"]
        parts.append({"functionCall": {"name": fn["name"], "args": args}})
    return parts


def _tool_result(message: dict, where: str, call_names: dict[str, str]) -> dict:
    call_id = message.get("tool_call_id")
    name = call_names.get(call_id) if isinstance(call_id, str) else None
    if name is None:
        raise InvalidRequest(
            f"'{where}.tool_call_id' does not match a tool call of an earlier assistant message",
            param=f"{where}.tool_call_id",
        )
    text = "".join(_texts(message.get("content"), f"{where}.content"))
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        parsed = None
    response = parsed if isinstance(parsed, dict) else {"content": text}
    return {"functionResponse": {"name": name, "response": response}}


# -- tools ------------------------------------------------------------------------------


def _tools(tools: Any, choice: Any) -> tuple[list[dict] | None, dict | None]:
    if not tools:
        if choice not in (None, "none", "auto"):
            raise InvalidRequest("'tool_choice' needs 'tools'", param="tool_choice")
        if tools is not None and not isinstance(tools, list):
            raise InvalidRequest("'tools' must be an array", param="tools")
        return None, None
    if not isinstance(tools, list):
        raise InvalidRequest("'tools' must be an array", param="tools")
    declarations: list[dict] = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise InvalidRequest(f"'{where}.type': Gemini takes function tools only", param=where)
        fn = tool.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise InvalidRequest(f"'{where}.function.name' is required", param=where)
        declaration: dict[str, Any] = {"name": fn["name"]}
        if isinstance(fn.get("description"), str) and fn["description"]:
            declaration["description"] = fn["description"]
        parameters = fn.get("parameters")
        if parameters is not None:
            schema = gemini_schema(parameters, f"{where}.function.parameters")
            if schema and (schema.get("properties") or schema.get("type") != "OBJECT"):
                declaration["parameters"] = schema
        declarations.append(declaration)
    names = [d["name"] for d in declarations]
    if len(set(names)) != len(names):
        raise InvalidRequest("'tools': function names must be unique", param="tools")

    config, allowed = _tool_choice(choice, names)
    if allowed is not None:  # allowed_tools in auto mode: send only those
        declarations = [d for d in declarations if d["name"] in allowed]
    return [{"functionDeclarations": declarations}], config


def _tool_choice(choice: Any, names: list[str]) -> tuple[dict | None, set[str] | None]:
    """(toolConfig, names to keep in auto mode) for an OpenAI tool_choice."""
    modes = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
    if choice is None:
        return None, None
    if isinstance(choice, str) and choice in modes:
        return {"functionCallingConfig": {"mode": modes[choice]}}, None
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "function":
        fn = choice.get("function")
        name = fn.get("name") if isinstance(fn, dict) else None
        if name not in names:
            raise InvalidRequest(
                "'tool_choice.function.name' must name one of the tools", param="tool_choice"
            )
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}, None
    if kind == "allowed_tools":
        spec = choice.get("allowed_tools")
        mode = spec.get("mode") if isinstance(spec, dict) else None
        listed = spec.get("tools") if isinstance(spec, dict) else None
        if mode not in ("auto", "required") or not isinstance(listed, list) or not listed:
            raise InvalidRequest(
                "'tool_choice.allowed_tools' needs a mode (auto or required) and tools",
                param="tool_choice",
            )
        allowed = []
        for tool in listed:
            fn = tool.get("function") if isinstance(tool, dict) else None
            name = fn.get("name") if isinstance(fn, dict) else None
            if name not in names:
                raise InvalidRequest(
                    "'tool_choice.allowed_tools.tools' must name function tools of 'tools'",
                    param="tool_choice",
                )
            allowed.append(name)
        if mode == "required":
            return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": allowed}}, None
        return {"functionCallingConfig": {"mode": "AUTO"}}, set(allowed)
    raise InvalidRequest("'tool_choice' is not a valid tool choice", param="tool_choice")


# -- JSON Schema -> Gemini Schema ----------------------------------------------------------

_SCHEMA_COPIED = frozenset({
    "format", "title", "description", "nullable", "minItems", "maxItems", "minProperties",
    "maxProperties", "minLength", "maxLength", "pattern", "minimum", "maximum", "default",
    "example", "propertyOrdering",
})  # fmt: skip
_SCHEMA_REJECTED = frozenset({
    "not", "if", "then", "else", "patternProperties", "prefixItems", "dependentSchemas",
    "dependentRequired", "contains", "minContains", "maxContains", "propertyNames",
    "$dynamicRef", "$recursiveRef",
})  # fmt: skip
_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object", "null"})
_MAX_SCHEMA_DEPTH = 32


def gemini_schema(schema: Any, param: str) -> dict:
    """A JSON Schema converted to Gemini's Schema object (see the module docstring)."""
    return _SchemaConverter(schema, param).convert(schema, "", 0, ())


class _SchemaConverter:
    def __init__(self, root: Any, param: str):
        self.root = root
        self.param = param

    def fail(self, where: str, why: str) -> InvalidRequest:
        at = f"{self.param}{where}" if where else self.param
        return InvalidRequest(f"'{at}': {why} (not supported by Gemini)", param=self.param)

    def convert(self, schema: Any, where: str, depth: int, refs: tuple[str, ...]) -> dict:
        if not isinstance(schema, dict):
            if schema is True or schema == {}:
                return {}
            raise self.fail(where, "a schema must be an object")
        if depth > _MAX_SCHEMA_DEPTH:
            raise self.fail(where, "the schema is nested too deeply")
        if "$ref" in schema:
            return self.resolve(schema, where, depth, refs)
        for keyword in schema:
            if keyword in _SCHEMA_REJECTED:
                raise self.fail(where, f"JSON Schema keyword '{keyword}'")
        kinds, nullable = self.types(schema.get("type"), where)
        if len(kinds) > 1:  # several types: one branch per type, each with the other keywords
            out: dict[str, Any] = {"anyOf": [
                self.convert({**schema, "type": k}, f"{where}.type[{n}]", depth + 1, refs)
                for n, k in enumerate(kinds)
            ]}
            if nullable:
                out["nullable"] = True
            return out
        out = {}
        all_of = schema.get("allOf")
        if all_of is not None:
            if not isinstance(all_of, list) or len(all_of) != 1:
                raise self.fail(where, "'allOf' with several schemas")
            out.update(self.convert(all_of[0], f"{where}.allOf[0]", depth + 1, refs))
        if kinds:
            out["type"] = kinds[0].upper()
        elif nullable:
            out["type"] = "NULL"
        if nullable and kinds:
            out["nullable"] = True
        for keyword in _SCHEMA_COPIED:
            if keyword in schema:
                out[keyword] = schema[keyword]
        if "const" in schema:
            if not isinstance(schema["const"], str):
                raise self.fail(where, "a non-string 'const'")
            out["enum"] = [schema["const"]]
        if "enum" in schema:
            enum = schema["enum"]
            if not isinstance(enum, list) or not all(isinstance(v, str) for v in enum):
                raise self.fail(where, "an 'enum' of non-string values")
            out["enum"] = enum
        properties = schema.get("properties")
        if properties is not None:
            if not isinstance(properties, dict):
                raise self.fail(where, "'properties' must be an object")
            out["properties"] = {
                str(name): self.convert(sub, f"{where}.properties.{name}", depth + 1, refs)
                for name, sub in properties.items()
            }
            out.setdefault("type", "OBJECT")
        required = schema.get("required")
        if required is not None:
            if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
                raise self.fail(where, "'required' must be an array of strings")
            out["required"] = required
        items = schema.get("items")
        if items is not None:
            if not isinstance(items, dict | bool):
                raise self.fail(where, "tuple-form 'items'")
            out["items"] = self.convert(items, f"{where}.items", depth + 1, refs)
            out.setdefault("type", "ARRAY")
        for combinator in ("anyOf", "oneOf"):
            options = schema.get(combinator)
            if options is None:
                continue
            if not isinstance(options, list) or not options:
                raise self.fail(where, f"'{combinator}' must be a non-empty array")
            out["anyOf"] = out.get("anyOf", []) + [
                self.convert(o, f"{where}.{combinator}[{k}]", depth + 1, refs)
                for k, o in enumerate(options)
            ]
        return out

    def types(self, kind: Any, where: str) -> tuple[list[str], bool]:
        """(the non-null types of a `type` keyword, lower-cased; whether null is one)."""
        if kind is None:
            return [], False
        kinds = kind if isinstance(kind, list) else [kind]
        if not kinds or not all(isinstance(k, str) and k.lower() in _TYPES for k in kinds):
            raise self.fail(where, f"'type' {str(kind)[:60]}")
        lowered = list(dict.fromkeys(k.lower() for k in kinds))
        return [k for k in lowered if k != "null"], "null" in lowered

    def resolve(self, schema: dict, where: str, depth: int, refs: tuple[str, ...]) -> dict:
        ref = schema["$ref"]
        if not isinstance(ref, str) or not ref.startswith(("#/$defs/", "#/definitions/")):
            raise self.fail(where, f"'$ref' {str(ref)[:80]!r} (only local #/$defs refs)")
        if ref in refs:
            raise self.fail(where, f"recursive '$ref' {ref[:80]!r}")
        target: Any = self.root
        for token in ref[2:].split("/"):
            token = token.replace("~1", "/").replace("~0", "~")
            target = target.get(token) if isinstance(target, dict) else None
        if target is None:
            raise self.fail(where, f"unresolvable '$ref' {ref[:80]!r}")
        resolved = self.convert(target, f"{where}.$ref", depth + 1, (*refs, ref))
        siblings = {k: v for k, v in schema.items() if k != "$ref"}
        if siblings:
            resolved.update(self.convert(siblings, where, depth + 1, refs))
        return resolved


# -- generation config ----------------------------------------------------------------------


def _generation_config(body: dict) -> dict:
    config: dict[str, Any] = {}
    for field, name in (
        ("temperature", "temperature"), ("top_p", "topP"),
        ("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty"),
    ):  # fmt: skip
        value = body.get(field)
        if value is not None:
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise InvalidRequest(f"'{field}' must be a number", param=field)
            config[name] = value
    for field, name, low in (("n", "candidateCount", 1), ("seed", "seed", -(2**63))):
        value = body.get(field)
        if value is not None:
            config[name] = _integer(value, field, low)
    limit = body.get("max_completion_tokens")
    field = "max_completion_tokens"
    if limit is None:
        limit, field = body.get("max_tokens"), "max_tokens"
    if limit is not None:
        config["maxOutputTokens"] = _integer(limit, field, 1)
    stop = body.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise InvalidRequest("'stop' must be a string or an array of strings", param="stop")
        if stops:
            config["stopSequences"] = stops
    config.update(_response_format(body.get("response_format")))
    effort = body.get("reasoning_effort")
    if effort is not None:
        if effort not in _THINKING_BUDGET:
            raise InvalidRequest(
                f"'reasoning_effort' must be one of {', '.join(_THINKING_BUDGET)}",
                param="reasoning_effort",
            )
        config["thinkingConfig"] = {"thinkingBudget": _THINKING_BUDGET[effort]}
    return config


def _integer(value: Any, field: str, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise InvalidRequest(f"'{field}' must be an integer >= {low}", param=field)
    return value


def _response_format(fmt: Any) -> dict:
    if fmt is None:
        return {}
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return {}
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict):
            raise InvalidRequest(
                "'response_format.json_schema' must be an object", param="response_format"
            )
        schema = spec.get("schema")
        if schema is None:
            return {"responseMimeType": "application/json"}
        if not isinstance(schema, dict):
            raise InvalidRequest(
                "'response_format.json_schema.schema' must be an object", param="response_format"
            )
        return {"responseMimeType": "application/json", "responseJsonSchema": schema}
    raise InvalidRequest(
        "'response_format.type' must be text, json_object or json_schema",
        param="response_format",
    )


# == response ================================================================================


def from_gemini_response(reply: dict, model: str, provider: str = "gemini") -> dict:
    """An OpenAI chat.completion for a GenerateContentResponse."""
    response_id = reply.get("responseId") if isinstance(reply.get("responseId"), str) else ""
    candidates = reply.get("candidates")
    choices = []
    if isinstance(candidates, list) and candidates:
        for position, candidate in enumerate(candidates):
            if not isinstance(candidate, dict):
                raise UpstreamError(f"provider {provider!r} sent an unexpected response")
            index = _index(candidate, position)
            text, calls = candidate_parts(candidate, response_id, index, 0)
            message: dict[str, Any] = {
                "role": "assistant",
                "content": text if text or not calls else None,
                "refusal": None,
            }
            if calls:
                message["tool_calls"] = calls
            choices.append({
                "index": index,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(candidate.get("finishReason"), bool(calls)),
            })
        choices.sort(key=lambda c: c["index"])
    elif _block_reason(reply):
        choices = [{
            "index": 0,
            "message": {"role": "assistant", "content": "", "refusal": None},
            "logprobs": None,
            "finish_reason": "content_filter",
        }]
    else:
        raise UpstreamError(f"provider {provider!r} sent a response without candidates")
    return {
        "id": _completion_id(response_id),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": _model_of(reply, model),
        "choices": choices,
        "usage": usage_of(reply.get("usageMetadata")),
    }


def candidate_parts(
    candidate: dict, response_id: str, index: int, first_call: int
) -> tuple[str, list[dict]]:
    """(joined text, OpenAI tool_calls) of a candidate's parts; call positions
    start at `first_call` (a stream numbers calls across events)."""
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    texts: list[str] = []
    calls: list[dict] = []
    for part in parts if isinstance(parts, list) else ():
        if not isinstance(part, dict) or part.get("thought") is True:
            continue
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        call = part.get("functionCall")
        if isinstance(call, dict) and isinstance(call.get("name"), str):
            args = call.get("args") if isinstance(call.get("args"), dict) else {}
            arguments = orjson.dumps(args).decode()
            position = first_call + len(calls)
            calls.append({
                "id": tool_call_id(response_id, index, position, call["name"], arguments),
                "type": "function",
                "function": {"name": call["name"], "arguments": arguments},
            })
    return "".join(texts), calls


def tool_call_id(response_id: str, index: int, position: int, name: str, arguments: str) -> str:
    """A stable OpenAI-style id for a Gemini function call (Gemini sends none)."""
    seed = f"{response_id}\x00{index}\x00{position}\x00{name}\x00{arguments}".encode()
    return "call_" + hashlib.blake2b(seed, digest_size=12).hexdigest()


def finish_reason(reason: Any, called: bool) -> str:
    if reason == "MAX_TOKENS":
        return "length"
    if reason in _FILTERED:
        return "content_filter"
    return "tool_calls" if called else "stop"


def usage_of(meta: Any) -> dict:
    """OpenAI usage from Gemini's usageMetadata (zeros when absent)."""
    meta = meta if isinstance(meta, dict) else {}

    def count(field: str) -> int:
        value = meta.get(field)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0

    prompt = count("promptTokenCount") + count("toolUsePromptTokenCount")
    thoughts = count("thoughtsTokenCount")
    completion = count("candidatesTokenCount") + thoughts
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": count("cachedContentTokenCount")},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    }


def _index(candidate: dict, position: int) -> int:
    index = candidate.get("index", position)
    return index if isinstance(index, int) and not isinstance(index, bool) else position


def _block_reason(reply: dict) -> str | None:
    feedback = reply.get("promptFeedback")
    reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
    return reason if isinstance(reason, str) and reason else None


def _completion_id(response_id: str) -> str:
    return f"chatcmpl-{response_id}" if response_id else f"chatcmpl-{uuid.uuid4().hex}"


def _model_of(reply: dict, model: str) -> str:
    version = reply.get("modelVersion")
    return version if isinstance(version, str) and version else model


class StreamTranslator:
    """GenerateContentResponse stream events -> OpenAI chat.completion.chunk objects."""

    def __init__(self, model: str, provider: str = "gemini"):
        self.model = model
        self.provider = provider
        self.id = ""
        self.response_id = ""
        self.created = int(time.time())
        self.started: set[int] = set()
        self.calls: dict[int, int] = {}
        self.finished: set[int] = set()
        self.usage: Any = None

    def feed(self, reply: dict) -> list[dict]:
        if "error" in reply:
            raise UpstreamError(
                f"provider {self.provider!r} failed mid-stream: "
                f"{redact(error_message(reply))[:500] or 'no error message'}"
            )
        if not self.id:
            rid = reply.get("responseId")
            self.response_id = rid if isinstance(rid, str) else ""
            self.id = _completion_id(self.response_id)
            self.model = _model_of(reply, self.model)
        if isinstance(reply.get("usageMetadata"), dict):
            self.usage = reply["usageMetadata"]
        chunks: list[dict] = []
        candidates = reply.get("candidates")
        if not isinstance(candidates, list) or not candidates:
            if _block_reason(reply) and 0 not in self.finished:
                self._start(0, chunks)
                chunks.append(self._chunk(0, {}, "content_filter"))
                self.finished.add(0)
            return chunks
        for position, candidate in enumerate(candidates):
            if not isinstance(candidate, dict):
                raise UpstreamError(f"provider {self.provider!r} sent an invalid stream chunk")
            index = _index(candidate, position)
            if index in self.finished:
                continue
            self._start(index, chunks)
            first = self.calls.get(index, 0)
            text, calls = candidate_parts(candidate, self.response_id, index, first)
            if text:
                chunks.append(self._chunk(index, {"content": text}))
            if calls:
                deltas = [{"index": first + k, **call} for k, call in enumerate(calls)]
                chunks.append(self._chunk(index, {"tool_calls": deltas}))
                self.calls[index] = first + len(calls)
            reason = candidate.get("finishReason")
            if isinstance(reason, str) and reason:
                called = self.calls.get(index, 0) > 0
                chunks.append(self._chunk(index, {}, finish_reason(reason, called)))
                self.finished.add(index)
        return chunks

    def end(self) -> list[dict]:
        """The usage chunk; UpstreamError when a candidate never finished."""
        if not self.started or self.started - self.finished:
            raise UpstreamError(f"provider {self.provider!r} ended the stream early")
        if self.usage is None:
            return []
        return [{**self._head(), "choices": [], "usage": usage_of(self.usage)}]

    def _start(self, index: int, chunks: list[dict]) -> None:
        if index not in self.started:
            self.started.add(index)
            chunks.append(self._chunk(index, {"role": "assistant", "content": ""}))

    def _head(self) -> dict:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
        }

    def _chunk(self, index: int, delta: dict, finish: str | None = None) -> dict:
        return {
            **self._head(),
            "choices": [
                {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            ],
        }


# == errors ====================================================================================


def gemini_error(
    provider: str, status: int, parsed: object, text: str, headers: Any
) -> LockgateError | None:
    """Maps a Google API error answer (see the module docstring); None: default mapping."""
    if isinstance(parsed, list) and parsed and isinstance(parsed[0], dict):
        parsed = parsed[0]  # streamGenerateContent without alt=sse wraps it in an array
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if not isinstance(error, dict):
        return None
    code = error.get("status") if isinstance(error.get("status"), str) else ""
    message = error.get("message") if isinstance(error.get("message"), str) else text
    details = error.get("details") if isinstance(error.get("details"), list) else []
    retry_after = retry_delay(details)
    if retry_after is None:
        retry_after = retry_after_seconds(headers)
    where = f"provider {provider!r} answered {status}"
    detail = redact(message)[:500]
    mapped: LockgateError
    if status == 429 or code == "RESOURCE_EXHAUSTED":
        return status_error(provider, 429, message, retry_after=retry_after)
    if status in (401, 403) or code in ("UNAUTHENTICATED", "PERMISSION_DENIED") or any(
        isinstance(d, dict) and d.get("reason") == "API_KEY_INVALID" for d in details
    ):
        mapped = UpstreamError(f"{where}: the gateway's credentials were rejected")
    elif status == 400 and "input token count" in message.lower():
        mapped = InvalidRequest(
            f"{where}: {detail}", code="context_length_exceeded", param="messages"
        )
    elif status == 504 or code == "DEADLINE_EXCEEDED":
        mapped = UpstreamTimeout(f"{where}: {detail}")
    elif status in (500, 503) or code in ("UNAVAILABLE", "INTERNAL"):
        mapped = UpstreamUnavailable(f"{where}: {detail}")
    else:
        return status_error(provider, status, message, retry_after=retry_after)
    mapped.retry_after = retry_after
    return mapped


def retry_delay(details: list) -> float | None:
    """Seconds of a google.rpc.RetryInfo detail's retryDelay ("30s", "1.5s")."""
    for detail in details:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith(
            "google.rpc.RetryInfo"
        ):
            match = _RETRY_DELAY.match(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


# == embeddings ================================================================================


def to_embed_request(body: Any, model: str) -> tuple[dict, str]:
    """(batchEmbedContents request, encoding_format) for an OpenAI embeddings body."""
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    for field, value in body.items():
        if value is not None and field not in (
            "input", "model", "dimensions", "encoding_format", "user"
        ):
            raise InvalidRequest(f"'{field}' is not supported by Gemini", param=field)
    inputs = body.get("input")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs:
        raise InvalidRequest("'input' must be a string or a non-empty array", param="input")
    if not all(isinstance(item, str) for item in inputs):
        raise InvalidRequest(
            "'input' must hold strings: Gemini does not take token arrays", param="input"
        )
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise InvalidRequest(
            "'encoding_format' must be 'float' or 'base64'", param="encoding_format"
        )
    extra: dict[str, Any] = {}
    if body.get("dimensions") is not None:
        extra["outputDimensionality"] = _integer(body["dimensions"], "dimensions", 1)
    name = "models/" + model.removeprefix("models/")
    requests = [{"model": name, "content": {"parts": [{"text": s}]}, **extra} for s in inputs]
    return {"requests": requests}, encoding


def from_embed_response(
    reply: dict, model: str, expected: int, encoding: str, provider: str = "gemini"
) -> dict:
    embeddings = reply.get("embeddings")
    if not isinstance(embeddings, list) or len(embeddings) != expected:
        raise UpstreamError(f"provider {provider!r} sent an unexpected response")
    data = []
    for index, item in enumerate(embeddings):
        values = item.get("values") if isinstance(item, dict) else None
        if not isinstance(values, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in values
        ):
            raise UpstreamError(f"provider {provider!r} sent an unexpected response")
        vector: Any = values
        if encoding == "base64":
            vector = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": 0, "total_tokens": 0},
    }
