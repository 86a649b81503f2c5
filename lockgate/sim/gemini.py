"""The simulator's Google Gemini dialect (Gemini API v1beta, as Google documents it).

``POST /v1beta/models/{model}:{method}``, one aiohttp resource whose last path
segment is split on its last ':' (aiohttp matches ``{model_action}`` across the
colon; unknown methods get a Google-shaped 404):

``generateContent``
    A GenerateContentResponse: ``candidates`` (``candidateCount`` of them) with
    the deterministic reply of :mod:`lockgate.sim.replies` seeded by the
    ``contents`` and ``systemInstruction``, or a ``functionCall`` chosen by
    :func:`lockgate.sim.tools.choose_call` from ``tools`` and
    ``toolConfig.functionCallingConfig`` (mode AUTO / ANY / NONE,
    ``allowedFunctionNames``; after a ``functionResponse`` the model answers in
    text unless forced). ``maxOutputTokens`` -> finishReason MAX_TOKENS,
    ``stopSequences`` cut the text. With ``responseMimeType:
    application/json`` the text is a JSON value built from ``responseSchema``
    / ``responseJsonSchema`` (``{"text": <reply>}`` without a schema), and
    stop sequences and the token limit do not apply to it. ``usageMetadata``
    counts every text of the request (function declarations included; 85
    tokens per inline or file part), ``modelVersion`` is the path's model.
``streamGenerateContent``
    The same reply in pieces: with ``alt=sse`` a ``text/event-stream`` whose
    events' ``data`` are GenerateContentResponses; without it (as Google does)
    one JSON array of them. One event per content chunk (``x-sim-chunk-count``
    groups words), then a last event with an empty text part, the
    ``finishReason`` and the final ``usageMetadata`` (earlier events carry the
    prompt count only). A function call is sent whole in that last event.
``embedContent`` / ``batchEmbedContents``
    ``{"embedding": {"values"}}`` / ``{"embeddings": [{"values"}]}``: the same
    deterministic unit vectors as the OpenAI dialect for the same text
    (``outputDimensionality`` or ``embedding_dimensions`` floats). Every batch
    request must name the path's model (``models/{model}``); at most 100 per
    batch. Gemini returns no token counts here, and neither does the simulator.

The request is checked the way Google's JSON parser checks it: unknown fields
(camelCase or snake_case names) are a 400 ``Invalid JSON payload received.
Unknown name …``, including unknown keywords in function-declaration
``parameters`` (Gemini's Schema is an OpenAPI subset: no
``additionalProperties``, no ``$ref``) and an OBJECT without properties; a part
must hold exactly one kind of data; inline data must be valid base64.

Errors are Google-shaped: ``{"error": {"code", "message", "status"[, "details"]}}``.
The key, when the simulator has one, is taken from ``x-goog-api-key`` or the
``key`` query parameter: missing -> 403 PERMISSION_DENIED, wrong -> 400
INVALID_ARGUMENT with an ErrorInfo ``API_KEY_INVALID`` detail (as Google does).

Fault injection uses the OpenAI dialect's ``x-sim-*`` headers (see
:mod:`lockgate.sim.server`) with Google-shaped injected errors (429
RESOURCE_EXHAUSTED with QuotaFailure and RetryInfo ``retryDelay: "1s"``
details, 503 UNAVAILABLE "The model is overloaded…", 500 INTERNAL, 504
DEADLINE_EXCEEDED, …), plus:

``x-sim-safety-block: prompt``
    No candidates; ``promptFeedback: {blockReason: SAFETY, safetyRatings}``.
``x-sim-safety-block: response``
    Every candidate ends with finishReason SAFETY, no content, and
    ``safetyRatings`` with a blocked HIGH rating.

``x-sim-drop-after-chunks: k`` sends ``k`` content events, then closes the
connection (no finishing event, no closing ``]`` in array mode).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from lockgate.sim import replies, streaming, tools
from lockgate.sim.config import MAX_EMBEDDING_DIMENSIONS
from lockgate.sim.errors import SimError
from lockgate.sim.knobs import Knobs
from lockgate.sim.state import STATE, ShuttingDown, State

log = logging.getLogger(__name__)

ROUTE = "/v1beta/models/{model_action}"
H_SAFETY_BLOCK = "x-sim-safety-block"
MAX_CANDIDATES = 8
MAX_STOP_SEQUENCES = 5
MAX_BATCH_EMBEDDINGS = 100

_CODES = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
    404: "NOT_FOUND", 409: "ABORTED", 413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED", 500: "INTERNAL", 501: "UNIMPLEMENTED", 503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}  # fmt: skip
_INJECTED = {
    400: "Request contains an invalid argument.",
    401: "Request had invalid authentication credentials.",
    403: "The caller does not have permission",
    404: "Requested entity was not found.",
    429: "Resource has been exhausted (e.g. check quota).",
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}
_RETRY_DELAY = "1s"
_JSON = {"Content-Type": "application/json; charset=UTF-8"}
_SSE = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class GoogleError(Exception):
    """A Google API error answer."""

    def __init__(self, status: int, message: str, details: list | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details

    def response(self) -> web.Response:
        error: dict[str, Any] = {
            "code": self.status,
            "message": self.message,
            "status": _CODES.get(self.status, "INTERNAL" if self.status >= 500 else
                                 "FAILED_PRECONDITION"),
        }
        if self.details:
            error["details"] = self.details
        return web.Response(status=self.status, body=orjson.dumps({"error": error}), headers=_JSON)


def _bad(message: str) -> GoogleError:
    return GoogleError(400, message)


def _injected(status: int) -> GoogleError:
    details = None
    if status == 429:
        details = [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{
                    "quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
                    "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
                }],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": _RETRY_DELAY},
        ]
    return GoogleError(status, _INJECTED.get(status, f"Simulated error (HTTP {status})."), details)


# -- the route ---------------------------------------------------------------------------


async def model_action(request: web.Request) -> web.StreamResponse:
    """``POST /v1beta/models/{model}:{method}``; every error leaves Google-shaped."""
    try:
        model, sep, method = request.match_info["model_action"].rpartition(":")
        handler = _METHODS.get(method)
        if not sep or not model or handler is None:
            raise GoogleError(404, f"Method not found: {method[:100]!r}.")
        state: State = request.app[STATE]
        _check_key(state, request)
        knobs = Knobs(state.config, request.headers)
        return await handler(request, state, knobs, model)
    except GoogleError as exc:
        return exc.response()
    except SimError as exc:  # an invalid x-sim-* header
        return GoogleError(exc.status, exc.message).response()
    except ShuttingDown:
        return GoogleError(503, "The service is currently unavailable.").response()
    except web.HTTPRequestEntityTooLarge:
        return _bad("Request payload size exceeds the limit.").response()
    except ConnectionError:
        raise  # the client went away: the server's middleware drops the connection
    except Exception:
        log.exception("simulator: unexpected error on %s %s", request.method, request.path)
        return GoogleError(500, _INJECTED[500]).response()


def _check_key(state: State, request: web.Request) -> None:
    expected = state.config.api_key
    if expected is None:
        return
    given = request.headers.get("x-goog-api-key") or request.query.get("key")
    if given is None:
        raise GoogleError(
            403,
            "Method doesn't allow unregistered callers (callers without established "
            "identity). Please use API Key or other form of API consumer identity to call "
            "this API.",
        )
    if not hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape")
    ):
        raise GoogleError(400, "API key not valid. Please pass a valid API key.", [{
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        }])


async def _read(request: web.Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise _bad("Invalid JSON payload received. Unexpected token.") from None
    if not isinstance(body, dict):
        raise _bad("Invalid JSON payload received. Expected an object.")
    return body


async def _fault(state: State, knobs: Knobs) -> None:
    try:
        await state.fault(knobs)
    except SimError as exc:
        raise _injected(exc.status) from None


def _safety_mode(request: web.Request) -> str | None:
    value = request.headers.get(H_SAFETY_BLOCK)
    if value is None:
        return None
    value = value.strip().lower()
    if value not in ("prompt", "response"):
        raise _bad(f"Invalid '{H_SAFETY_BLOCK}' header: expected 'prompt' or 'response'.")
    return value


# -- request checks ------------------------------------------------------------------------


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def _fields(obj: Any, allowed: frozenset[str], where: str) -> dict[str, Any]:
    """The object with camelCase keys; unknown fields are Google's 400."""
    if not isinstance(obj, dict):
        raise _bad(f"Invalid JSON payload received. Expected an object at '{where}'.")
    out = {}
    for key, value in obj.items():
        name = _camel(key)
        if name not in allowed:
            at = f" at '{where}'" if where else ""
            message = f'Invalid JSON payload received. Unknown name "{key}"{at}: Cannot find field.'
            raise GoogleError(400, message, [{
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": where, "description": message}],
            }])
        out[name] = value
    return out


_REQUEST = frozenset({
    "model", "contents", "tools", "toolConfig", "safetySettings", "systemInstruction",
    "generationConfig", "cachedContent",
})  # fmt: skip
_CONTENT = frozenset({"role", "parts"})
_PART_DATA = frozenset({
    "text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode",
    "codeExecutionResult",
})  # fmt: skip
_PART = _PART_DATA | {"thought", "thoughtSignature", "videoMetadata", "partMetadata"}
_GENERATION = frozenset({
    "stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema",
    "responseModalities", "candidateCount", "maxOutputTokens", "temperature", "topP", "topK",
    "seed", "presencePenalty", "frequencyPenalty", "responseLogprobs", "logprobs",
    "enableEnhancedCivicAnswers", "speechConfig", "thinkingConfig", "imageConfig",
    "mediaResolution",
})  # fmt: skip
_TOOL = frozenset({
    "functionDeclarations", "googleSearchRetrieval", "codeExecution", "googleSearch",
    "urlContext", "computerUse", "fileSearch", "googleMaps",
})  # fmt: skip
_DECLARATION = frozenset({
    "name", "description", "behavior", "parameters", "parametersJsonSchema", "response",
    "responseJsonSchema",
})  # fmt: skip
_SCHEMA = frozenset({
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems",
    "properties", "required", "minProperties", "maxProperties", "minLength", "maxLength",
    "pattern", "example", "anyOf", "propertyOrdering", "default", "items", "minimum", "maximum",
})  # fmt: skip
_SCHEMA_TYPES = frozenset({"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"})
_MODES = {"AUTO": "auto", "ANY": "required", "NONE": "none", "VALIDATED": "auto",
          "MODE_UNSPECIFIED": "auto"}


@dataclass(slots=True)
class _Generate:
    contents: list[dict]
    system: Any = None
    tools: list[tools.ToolSpec] = field(default_factory=list)
    declarations: list[dict] = field(default_factory=list)
    mode: str | None = None
    allowed: list[str] | None = None
    max_tokens: int | None = None
    stops: list[str] | None = None
    candidates: int = 1
    json_mode: bool = False
    schema: Any = None


def _parse_generate(body: dict) -> _Generate:
    body = _fields(body, _REQUEST, "")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise _bad("* GenerateContentRequest.contents: contents is not specified\n")
    parsed = _Generate(contents=[_content(c, f"contents[{i}]") for i, c in enumerate(contents)])
    for content in parsed.contents:
        if content.get("role", "user") not in ("user", "model"):
            raise _bad(
                f"Please use a valid role: user, model. Got {str(content.get('role'))[:40]!r}."
            )
    if body.get("systemInstruction") is not None:
        parsed.system = _content(body["systemInstruction"], "system_instruction")
    _parse_tools(parsed, body.get("tools"), body.get("toolConfig"))
    config = _fields(body.get("generationConfig") or {}, _GENERATION, "generation_config")
    parsed.max_tokens = _int(config, "maxOutputTokens", 1, 2**31 - 1)
    parsed.candidates = _int(config, "candidateCount", 1, MAX_CANDIDATES) or 1
    stops = config.get("stopSequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise _bad("Invalid value at 'generation_config.stop_sequences': expected strings.")
        if len(stops) > MAX_STOP_SEQUENCES:
            raise _bad(
                "* GenerateContentRequest.generation_config.stop_sequences: "
                f"at most {MAX_STOP_SEQUENCES} stop sequences are allowed\n"
            )
        parsed.stops = stops
    mime = config.get("responseMimeType")
    schema = config.get("responseSchema")
    json_schema = config.get("responseJsonSchema")
    if schema is not None and json_schema is not None:
        raise _bad("responseSchema and responseJsonSchema cannot both be set.")
    if (schema is not None or json_schema is not None) and mime != "application/json":
        raise _bad(
            "* GenerateContentRequest.generation_config.response_mime_type: "
            "a response schema requires response_mime_type application/json\n"
        )
    if schema is not None:
        _schema(schema, "generation_config.response_schema", 0)
    parsed.json_mode = mime == "application/json"
    parsed.schema = schema if schema is not None else json_schema
    return parsed


def _int(config: dict, name: str, low: int, high: int) -> int | None:
    value = config.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _bad(
            f"* GenerateContentRequest.generation_config.{_snake(name)}: "
            f"must be an integer in [{low}, {high}]\n"
        )
    return value


def _content(content: Any, where: str) -> dict:
    content = _fields(content, _CONTENT, where)
    parts = content.get("parts")
    if not isinstance(parts, list) or not parts:
        raise _bad(f"* GenerateContentRequest.{where}.parts: contents.parts must not be empty.\n")
    content["parts"] = [_part(p, f"{where}.parts[{j}]") for j, p in enumerate(parts)]
    return content


def _part(part: Any, where: str) -> dict:
    part = _fields(part, _PART, where)
    kinds = [k for k in part if k in _PART_DATA]
    if len(kinds) != 1:
        raise _bad(
            f"* GenerateContentRequest.{where}.data: required oneof field 'data' must have "
            "one initialized field\n"
        )
    kind = kinds[0]
    value = part[kind]
    if kind == "text" and not isinstance(value, str):
        raise _bad(f"Invalid value at '{where}.text' (TYPE_STRING).")
    if kind == "inlineData":
        data = _fields(value, frozenset({"mimeType", "data"}), f"{where}.inline_data")
        if not isinstance(data.get("mimeType"), str) or not data["mimeType"]:
            raise _bad(f"* GenerateContentRequest.{where}.inline_data.mime_type: required\n")
        try:
            base64.b64decode(str(data.get("data", "")), validate=True)
        except (binascii.Error, ValueError):
            raise _bad(
                f"Invalid value at '{where}.inline_data.data' (TYPE_BYTES), "
                "Base64 decoding failed"
            ) from None
    elif kind == "fileData":
        data = _fields(value, frozenset({"mimeType", "fileUri", "displayName"}), f"{where}.file_data")
        if not isinstance(data.get("fileUri"), str) or not data["fileUri"]:
            raise _bad(f"* GenerateContentRequest.{where}.file_data.file_uri: required\n")
    elif kind in ("functionCall", "functionResponse"):
        payload = "args" if kind == "functionCall" else "response"
        call = _fields(value, frozenset({"id", "name", payload, "willContinue", "scheduling",
                                         "parts"}), f"{where}.{_snake(kind)}")
        if not isinstance(call.get("name"), str) or not call["name"]:
            raise _bad(f"* GenerateContentRequest.{where}.{_snake(kind)}.name: Name is empty.\n")
        if call.get(payload) is not None and not isinstance(call[payload], dict):
            raise _bad(f"Invalid value at '{where}.{_snake(kind)}.{payload}' (type.googleapis."
                       "com/google.protobuf.Struct)")
        if kind == "functionResponse" and payload not in call:
            raise _bad(f"* GenerateContentRequest.{where}.function_response.response: "
                       "required\n")
    return part


def _parse_tools(parsed: _Generate, tool_list: Any, tool_config: Any) -> None:
    if tool_list is not None:
        if not isinstance(tool_list, list):
            raise _bad("Invalid JSON payload received. Expected a list at 'tools'.")
        for i, tool in enumerate(tool_list):
            tool = _fields(tool, _TOOL, f"tools[{i}]")
            declarations = tool.get("functionDeclarations") or []
            if not isinstance(declarations, list):
                raise _bad(f"Invalid JSON payload received. Expected a list at 'tools[{i}]'.")
            for j, declaration in enumerate(declarations):
                where = f"tools[{i}].function_declarations[{j}]"
                declaration = _fields(declaration, _DECLARATION, where)
                name = declaration.get("name")
                if not isinstance(name, str) or not name:
                    raise _bad(f"* GenerateContentRequest.{where}.name: Name is empty.\n")
                params = declaration.get("parameters")
                if params is not None and declaration.get("parametersJsonSchema") is not None:
                    raise _bad(f"* GenerateContentRequest.{where}: parameters and "
                               "parameters_json_schema are mutually exclusive\n")
                if params is not None:
                    _schema(params, f"{where}.parameters", 0)
                else:
                    params = declaration.get("parametersJsonSchema")
                parsed.declarations.append(declaration)
                parsed.tools.append(tools.ToolSpec(name, params if isinstance(params, dict) else {}))
    if tool_config is None:
        return
    config = _fields(tool_config, frozenset({"functionCallingConfig", "retrievalConfig"}),
                     "tool_config")
    calling = _fields(config.get("functionCallingConfig") or {},
                      frozenset({"mode", "allowedFunctionNames"}),
                      "tool_config.function_calling_config")
    mode = calling.get("mode")
    if mode is not None and mode not in _MODES:
        raise _bad(
            f"Invalid value at 'tool_config.function_calling_config.mode' "
            f"(type.googleapis.com/google.ai.generativelanguage.v1beta.FunctionCallingConfig.Mode)"
            f", {str(mode)[:40]!r}"
        )
    allowed = calling.get("allowedFunctionNames")
    if allowed is not None:
        if mode not in ("ANY", "VALIDATED"):
            raise _bad("* GenerateContentRequest.tool_config.function_calling_config."
                       "allowed_function_names: only allowed when mode is ANY or VALIDATED\n")
        known = {t.name for t in parsed.tools}
        if not isinstance(allowed, list) or not all(n in known for n in allowed):
            raise _bad("* GenerateContentRequest.tool_config.function_calling_config."
                       "allowed_function_names: must name declared functions\n")
        parsed.allowed = allowed
    parsed.mode = mode


def _schema(schema: Any, where: str, depth: int) -> None:
    """Checks a Gemini Schema (OpenAPI subset) as Google's parser does."""
    if depth > 64:
        raise _bad(f"* GenerateContentRequest.{where}: schema is nested too deeply\n")
    schema = _fields(schema, _SCHEMA, where)
    kind = schema.get("type")
    if kind is not None and (not isinstance(kind, str) or kind.upper() not in _SCHEMA_TYPES):
        raise _bad(f"Invalid value at '{where}.type' (type.googleapis.com/"
                   f"google.ai.generativelanguage.v1beta.Type), {str(kind)[:40]!r}")
    properties = schema.get("properties")
    if isinstance(kind, str) and kind.upper() == "OBJECT" and properties is not None \
            and not properties:
        raise _bad(f"* GenerateContentRequest.{where}.properties: should be non-empty for "
                   "OBJECT type\n")
    if properties is not None:
        if not isinstance(properties, dict):
            raise _bad(f"Invalid JSON payload received. Expected an object at '{where}'.")
        for name, sub in properties.items():
            _schema(sub, f"{where}.properties[{name}].value", depth + 1)
    if schema.get("items") is not None:
        _schema(schema["items"], f"{where}.items", depth + 1)
    any_of = schema.get("anyOf")
    if any_of is not None:
        if not isinstance(any_of, list):
            raise _bad(f"Invalid JSON payload received. Expected a list at '{where}.any_of'.")
        for k, sub in enumerate(any_of):
            _schema(sub, f"{where}.any_of[{k}]", depth + 1)
    enum = schema.get("enum")
    if enum is not None and (not isinstance(enum, list) or not all(isinstance(v, str)
                                                                    for v in enum)):
        raise _bad(f"Invalid value at '{where}.enum' (TYPE_STRING).")


# -- replies ----------------------------------------------------------------------------------


def _prompt_tokens(parsed: _Generate) -> int:
    total = 0
    turns = [*parsed.contents, parsed.system] if parsed.system else parsed.contents
    for content in turns:
        for part in content["parts"]:
            if isinstance(part.get("text"), str):
                total += replies.count_tokens(part["text"])
            elif "inlineData" in part or "fileData" in part:
                total += replies.NON_TEXT_PART_TOKENS
            else:
                total += replies.count_tokens(orjson.dumps(part).decode())
    if parsed.declarations:
        total += replies.count_tokens(orjson.dumps(parsed.declarations).decode())
    return total


@dataclass(slots=True)
class _Candidate:
    pieces: list[str]
    call: tools.ToolCall | None
    finish: str
    tokens: int


def _candidates(parsed: _Generate, words: int) -> list[_Candidate]:
    key = replies.messages_key({"contents": parsed.contents, "system": parsed.system})
    last = parsed.contents[-1]
    ends_with_result = last.get("role", "user") == "user" and any(
        "functionResponse" in p for p in last["parts"]
    )
    offered = parsed.tools
    if parsed.allowed is not None:
        offered = [t for t in offered if t.name in parsed.allowed]
    call = tools.choose_call(
        offered, _MODES.get(parsed.mode) if parsed.mode else None, None, ends_with_result, key
    )
    out = []
    for i in range(parsed.candidates):
        if call is not None:
            tokens = replies.count_tokens(call.name + orjson.dumps(call.arguments).decode())
            out.append(_Candidate([], call, "STOP", tokens))
        elif parsed.json_mode:
            value = tools.value_for(parsed.schema) if parsed.schema is not None else {
                "text": "".join(replies.reply_pieces(key, words, i))
            }
            text = orjson.dumps(value).decode()
            out.append(_Candidate([text], None, "STOP", replies.count_tokens(text)))
        else:
            done = replies.complete(key, words, i, stop=parsed.stops, max_tokens=parsed.max_tokens)
            finish = "MAX_TOKENS" if done.finish_reason == "length" else "STOP"
            out.append(_Candidate(done.pieces, None, finish, done.tokens))
    return out


def _usage(prompt: int, completion: int | None) -> dict[str, Any]:
    usage: dict[str, Any] = {"promptTokenCount": prompt}
    if completion is not None:
        usage["candidatesTokenCount"] = completion
    usage["totalTokenCount"] = prompt + (completion or 0)
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
    return usage


def _with_index(candidate: dict, index: int) -> dict:
    if index:  # proto3 JSON leaves the default 0 out
        candidate["index"] = index
    return candidate


def _final_candidate(c: _Candidate, index: int, text: str | None) -> dict:
    parts: list[dict] = []
    if c.call is not None:
        parts.append({"functionCall": {"name": c.call.name, "args": c.call.arguments}})
    elif text is not None:
        parts.append({"text": text})
    content: dict[str, Any] = {"role": "model"}
    if parts:
        content["parts"] = parts
    return _with_index({"content": content, "finishReason": c.finish}, index)


_RATINGS = ("HARM_CATEGORY_SEXUALLY_EXPLICIT", "HARM_CATEGORY_HATE_SPEECH",
            "HARM_CATEGORY_HARASSMENT", "HARM_CATEGORY_DANGEROUS_CONTENT")


def _safety_ratings() -> list[dict]:
    ratings: list[dict] = [{"category": c, "probability": "NEGLIGIBLE"} for c in _RATINGS[:-1]]
    ratings.append({"category": _RATINGS[-1], "probability": "HIGH", "blocked": True})
    return ratings


def _blocked(mode: str, parsed: _Generate, prompt: int, head: dict) -> dict:
    if mode == "prompt":
        return {"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": _safety_ratings()},
                "usageMetadata": _usage(prompt, None), **head}
    candidates = [
        _with_index({"finishReason": "SAFETY", "safetyRatings": _safety_ratings()}, i)
        for i in range(parsed.candidates)
    ]
    return {"candidates": candidates, "usageMetadata": _usage(prompt, 0), **head}


async def _generate(
    request: web.Request, state: State, knobs: Knobs, model: str, stream: bool = False
) -> web.StreamResponse:
    safety = _safety_mode(request)
    parsed = _parse_generate(await _read(request))
    await _fault(state, knobs)
    prompt = _prompt_tokens(parsed)
    head = {"modelVersion": model, "responseId": state.next_id("")}
    if safety is not None:
        events: list[dict] = []
        final = _blocked(safety, parsed, prompt, head)
    else:
        candidates = _candidates(parsed, knobs.words)
        completion = sum(c.tokens for c in candidates)
        if stream:
            events = _content_events(candidates, knobs, prompt, head)
            final = {
                "candidates": [_final_candidate(c, i, "") for i, c in enumerate(candidates)],
                "usageMetadata": _usage(prompt, completion), **head,
            }
        else:
            events = []
            final = {
                "candidates": [
                    _final_candidate(c, i, "".join(c.pieces) if c.pieces else None)
                    for i, c in enumerate(candidates)
                ],
                "usageMetadata": _usage(prompt, completion), **head,
            }
    if not stream:
        if knobs.latency > 0:
            await state.pause(knobs.latency)
        return web.Response(body=orjson.dumps(final), headers=_JSON)
    return await _send_stream(request, knobs, events, final)


async def _stream_generate(
    request: web.Request, state: State, knobs: Knobs, model: str
) -> web.StreamResponse:
    return await _generate(request, state, knobs, model, stream=True)


def _content_events(
    candidates: list[_Candidate], knobs: Knobs, prompt: int, head: dict
) -> list[dict]:
    chunked = [replies.group_pieces(c.pieces, knobs.chunk_count) for c in candidates]
    events = []
    for p in range(max((len(c) for c in chunked), default=0)):
        cands = [
            _with_index({"content": {"parts": [{"text": chunks[p]}], "role": "model"}}, i)
            for i, chunks in enumerate(chunked)
            if p < len(chunks)
        ]
        events.append({"candidates": cands, "usageMetadata": _usage(prompt, None), **head})
    return events


async def _send_stream(
    request: web.Request, knobs: Knobs, events: list[dict], final: dict
) -> web.StreamResponse:
    """The content events, then the final one as its own paced write."""
    sse = request.query.get("alt") == "sse"
    bodies = [orjson.dumps(e) for e in events]
    last = orjson.dumps(final)
    if sse:
        frames = [b"data: " + b + b"\r\n\r\n" for b in bodies]
        tail = b"data: " + last + b"\r\n\r\n"
    else:  # a JSON array of responses, as Google sends without alt=sse
        frames = [(b",\r\n" if k else b"[") + b for k, b in enumerate(bodies)]
        tail = (b",\r\n" if frames else b"[") + last + b"]"
    return await streaming.send(
        request, knobs, b"", frames, tail, _SSE if sse else _JSON, tail_apart=True,
        dialect="gemini",
    )


# -- embeddings ----------------------------------------------------------------------------------

_EMBED = frozenset({"model", "content", "taskType", "title", "outputDimensionality"})


def _embedding(request: dict, where: str, dims: int, model: str | None) -> dict:
    request = _fields(request, _EMBED, where)
    if model is not None and request.get("model") != model:
        raise _bad(
            f"* BatchEmbedContentsRequest.{where}.model: the model must be the batch's "
            f"model ({model})\n"
        )
    content = _content(request.get("content"), f"{where}.content")
    texts = [p["text"] for p in content["parts"] if isinstance(p.get("text"), str)]
    if len(texts) != len(content["parts"]):
        raise _bad(f"* {where}.content: only text parts can be embedded\n")
    size = request.get("outputDimensionality")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or not (
            1 <= size <= MAX_EMBEDDING_DIMENSIONS
        ):
            raise _bad(f"* {where}.output_dimensionality: must be in "
                       f"[1, {MAX_EMBEDDING_DIMENSIONS}]\n")
        dims = size
    return {"values": replies.embedding("".join(texts).encode(), dims)}


async def _embed_content(
    request: web.Request, state: State, knobs: Knobs, model: str
) -> web.Response:
    body = await _read(request)
    result = _embedding(body, "", state.config.embedding_dimensions, None)
    await _fault(state, knobs)
    if knobs.latency > 0:
        await state.pause(knobs.latency)
    return web.Response(body=orjson.dumps({"embedding": result}), headers=_JSON)


async def _batch_embed(
    request: web.Request, state: State, knobs: Knobs, model: str
) -> web.Response:
    body = _fields(await _read(request), frozenset({"requests"}), "")
    items = body.get("requests")
    if not isinstance(items, list) or not items:
        raise _bad("* BatchEmbedContentsRequest.requests: requests is not specified\n")
    if len(items) > MAX_BATCH_EMBEDDINGS:
        raise _bad(f"* BatchEmbedContentsRequest.requests: at most {MAX_BATCH_EMBEDDINGS} "
                   "requests can be in one batch\n")
    name = "models/" + model
    dims = state.config.embedding_dimensions
    results = [_embedding(r, f"requests[{i}]", dims, name) for i, r in enumerate(items)]
    await _fault(state, knobs)
    if knobs.latency > 0:
        await state.pause(knobs.latency)
    return web.Response(body=orjson.dumps({"embeddings": results}), headers=_JSON)


_METHODS = {
    "generateContent": _generate,
    "streamGenerateContent": _stream_generate,
    "embedContent": _embed_content,
    "batchEmbedContents": _batch_embed,
}
