"""Request translation (OpenAI chat -> GenerateContentRequest).

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
  A tool call's `extra_content.google.thought_signature` (set on answers, as
  Google's own OpenAI-compatible API does) goes back as the part's
  `thoughtSignature`, which thinking models need in multi-turn tool use.
* `tools` -> `tools[{functionDeclarations: [{name, description, parameters}]}]`.
  `parameters` is converted to Gemini's OpenAPI-subset Schema
  (`gemini_schema`, see schema.py). An object without properties at the top
  level sends no `parameters` (Gemini rejects an OBJECT with empty properties).
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
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import orjson

from lockgate.errors import InvalidRequest
from services.router.providers.gemini.schema import gemini_schema

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
        part: dict = {"functionCall": {"name": fn["name"], "args": args}}
        signature = _thought_signature(call)
        if signature:
            part["thoughtSignature"] = signature
        parts.append(part)
    return parts


def _thought_signature(call: dict) -> str | None:
    """The Gemini thought signature a previous answer attached to this tool call
    (`extra_content.google.thought_signature`, as responses carry it)."""
    extra = call.get("extra_content")
    google = extra.get("google") if isinstance(extra, dict) else None
    signature = google.get("thought_signature") if isinstance(google, dict) else None
    return signature if isinstance(signature, str) and signature else None


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
