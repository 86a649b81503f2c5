"""The request checks of the simulator's Gemini dialect.

The request is checked the way Google's JSON parser checks it: unknown fields
(camelCase or snake_case names) are a 400 ``Invalid JSON payload received.
Unknown name …``, including unknown keywords in function-declaration
``parameters`` (Gemini's Schema is an OpenAPI subset: no
``additionalProperties``, no ``$ref``) and an OBJECT without properties; a part
must hold exactly one kind of data; inline data must be valid base64.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any

from lockgate.sim import tools
from lockgate.sim.gemini.errors import GoogleError, _bad

MAX_CANDIDATES = 8
MAX_STOP_SEQUENCES = 5


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

