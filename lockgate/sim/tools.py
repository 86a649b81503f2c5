"""Deterministic tool calls for every simulated dialect (OpenAI, Anthropic, Gemini).

The dialects differ only in wire format; the decision and the arguments are
made here, on neutral inputs, so a request routed through any adapter gets
the same tool call:

* The model calls a tool when tools are offered, the tool choice allows it,
  and the conversation does not already end with a tool result (after a
  result it answers in text, as a real model would). A forced choice
  (a named function, or "required" / "any") always calls.
* Under "auto" the first offered tool is called; a forced name picks that one.
* Arguments follow the tool's JSON schema: required properties only (all
  properties when none are marked), strings "sim", integers 1, numbers 1.5,
  booleans true, the first enum value, one-element arrays, nested objects
  built the same way. The call id is derived from the conversation so it is
  stable across runs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

#: Depth bound for nested schemas (a recursive $ref-free schema cannot loop, but
#: a hostile one can be deep).
_MAX_DEPTH = 8


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    id_seed: str
    name: str
    arguments: dict[str, Any]

    def call_id(self, prefix: str) -> str:
        """A stable id in the dialect's style, e.g. `call_…` or `toolu_…`."""
        return prefix + self.id_seed


def choose_call(
    tools: list[ToolSpec],
    choice: str | None,
    forced_name: str | None,
    ends_with_tool_result: bool,
    conversation_key: bytes,
) -> ToolCall | None:
    """The tool call the simulated model makes, or None for a text answer.

    `choice` is the neutral tool choice: "auto", "none", "required" (OpenAI
    "required", Anthropic "any", Gemini "ANY") or None (not given: "auto").
    `forced_name` is a specific tool the caller forced.
    """
    if not tools or choice == "none":
        return None
    forced = forced_name is not None or choice == "required"
    if ends_with_tool_result and not forced:
        return None
    tool = next((t for t in tools if t.name == forced_name), None) if forced_name else tools[0]
    if tool is None:
        return None
    seed = hashlib.blake2b(conversation_key + tool.name.encode(), digest_size=12).hexdigest()
    return ToolCall(id_seed=seed, name=tool.name, arguments=arguments_for(tool.parameters))


def arguments_for(schema: Any, depth: int = 0) -> dict[str, Any]:
    """An object satisfying a JSON schema of type object (see the module docstring)."""
    value = value_for(schema, depth)
    return value if isinstance(value, dict) else {}


def value_for(schema: Any, depth: int = 0) -> Any:
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return "sim"
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for combinator in ("anyOf", "oneOf", "allOf"):
        options = schema.get(combinator)
        if isinstance(options, list) and options:
            return value_for(options[0], depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    kind = str(kind).lower() if kind is not None else None  # Gemini writes "STRING"
    if kind == "object" or (kind is None and isinstance(schema.get("properties"), dict)):
        properties = schema.get("properties")
        if not isinstance(properties, dict):
            return {}
        required = schema.get("required")
        names = [n for n in required if n in properties] if isinstance(required, list) else []
        return {name: value_for(properties[name], depth + 1) for name in names or properties}
    if kind == "array":
        return [value_for(schema.get("items"), depth + 1)]
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return "sim"
