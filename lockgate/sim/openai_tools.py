"""The OpenAI dialect's tool calls: ``tools`` on ``POST /v1/chat/completions``.

Requests with ``tools`` (function tools only) are checked as OpenAI checks
them, with OpenAI's 400s: the tools, ``tool_choice`` (none / auto / required /
a named function), ``parallel_tool_calls`` and the tool-calling turns of
``messages`` (a ``tool`` message answers a preceding assistant ``tool_calls``).
The decision and the arguments come from :func:`lockgate.sim.tools.choose_call`
(after a ``tool`` message the model answers in text unless forced).

A call is answered as OpenAI does: ``content: null`` with ``tool_calls`` (id
``call_…``) and finish_reason ``tool_calls``; streamed, the id, type and name
come first with empty ``arguments``, then the arguments in fragments (the
content chunks the pacing and drop knobs act on). The arguments count as
completion tokens and are never cut by ``max_tokens`` (as in the other
dialects). Ids, usage, the response envelope and the chunk framing are the
plain chat path's (:mod:`lockgate.sim.server`); requests without tools never
get here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from lockgate.sim import replies
from lockgate.sim.errors import bad_type, invalid, missing
from lockgate.sim.tools import ToolSpec, choose_call

_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_MAX_TOOLS = 128
_TOOL_CHOICES = ("none", "auto", "required")


def check_tool_turn(message: dict[str, Any], i: int, calls: set[str] | None) -> set[str] | None:
    """Checks tool-calling turns as OpenAI does; returns the tool call ids a
    following `tool` message may answer (None: no tool message may follow)."""
    role = message["role"]
    if role == "tool":
        call_id = message.get("tool_call_id")
        if call_id is None:
            raise missing(f"messages[{i}].tool_call_id")
        if not isinstance(call_id, str):
            raise bad_type(f"messages[{i}].tool_call_id", "string", call_id)
        if calls is None or call_id not in calls:
            raise invalid(
                "Invalid parameter: messages with role 'tool' must be a response to a "
                "preceeding message with 'tool_calls'.",
                f"messages[{i}].role",
            )
        return calls
    tool_calls = message.get("tool_calls") if role == "assistant" else None
    if tool_calls is None:
        return None
    if not isinstance(tool_calls, list):
        raise bad_type(f"messages[{i}].tool_calls", "array", tool_calls)
    ids = set()
    for j, call in enumerate(tool_calls):
        if not isinstance(call, dict):
            raise bad_type(f"messages[{i}].tool_calls[{j}]", "object", call)
        if not isinstance(call.get("id"), str):
            raise missing(f"messages[{i}].tool_calls[{j}].id")
        ids.add(call["id"])
    return ids


def parse_tools(body: dict[str, Any]) -> tuple[list[ToolSpec] | None, str | None, str | None]:
    """(tools or None, tool choice "auto"/"none"/"required" or None, forced function name)."""
    tools = body.get("tools")
    choice = body.get("tool_choice")
    parallel = body.get("parallel_tool_calls")
    if tools is None:
        for name, value in (("tool_choice", choice), ("parallel_tool_calls", parallel)):
            if value is not None:
                raise invalid(
                    f"Invalid value for '{name}': '{name}' is only allowed when 'tools' "
                    "are specified.",
                    name,
                )
        return None, None, None
    if not isinstance(tools, list):
        raise bad_type("tools", "array", tools)
    if not tools:
        raise invalid(
            "Invalid 'tools': empty array. Expected an array with minimum length 1, but "
            "got an empty array instead.",
            "tools",
            "empty_array",
        )
    if len(tools) > _MAX_TOOLS:
        raise invalid(
            f"Invalid 'tools': array too long. Expected an array with maximum length "
            f"{_MAX_TOOLS}, but got an array with length {len(tools)} instead.",
            "tools",
            "array_above_max_length",
        )
    specs = [_tool_spec(tool, f"tools[{i}]") for i, tool in enumerate(tools)]
    if parallel is not None and not isinstance(parallel, bool):
        raise bad_type("parallel_tool_calls", "boolean", parallel)

    if choice is None:
        return specs, None, None
    if isinstance(choice, str):
        if choice not in _TOOL_CHOICES:
            raise invalid(
                f"Invalid value: {choice[:40]!r}. Supported values are: 'none', 'auto', "
                "and 'required'.",
                "tool_choice",
                "invalid_value",
            )
        return specs, choice, None
    if not isinstance(choice, dict):
        raise bad_type("tool_choice", "string or object", choice)
    if choice.get("type") != "function":
        if choice.get("type") is None:
            raise missing("tool_choice.type")
        raise invalid(
            f"Invalid value: {str(choice['type'])[:40]!r}. Supported values are: 'function'.",
            "tool_choice.type",
            "invalid_value",
        )
    function = choice.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise missing("tool_choice.function.name")
    name = function["name"]
    if all(spec.name != name for spec in specs):
        raise invalid(
            f"Invalid value for 'tool_choice': function {name[:64]!r} was not found in "
            "'tools'.",
            "tool_choice",
            "invalid_value",
        )
    return specs, None, name


def _tool_spec(tool: Any, path: str) -> ToolSpec:
    if not isinstance(tool, dict):
        raise bad_type(path, "object", tool)
    kind = tool.get("type")
    if kind is None:
        raise missing(f"{path}.type")
    if kind != "function":
        raise invalid(
            f"Invalid value: {str(kind)[:40]!r}. Supported values are: 'function' "
            "(the simulator has no custom tools).",
            f"{path}.type",
            "invalid_value",
        )
    function = tool.get("function")
    if function is None:
        raise missing(f"{path}.function")
    if not isinstance(function, dict):
        raise bad_type(f"{path}.function", "object", function)
    name = function.get("name")
    if name is None:
        raise missing(f"{path}.function.name")
    if not isinstance(name, str):
        raise bad_type(f"{path}.function.name", "string", name)
    if not _TOOL_NAME.match(name):
        raise invalid(
            f"Invalid '{path}.function.name': string does not match pattern. Expected a "
            "string that matches the pattern '^[a-zA-Z0-9_-]{1,64}$'.",
            f"{path}.function.name",
            "invalid_value",
        )
    for field, kind_name, kind_type in (
        ("description", "string", str),
        ("parameters", "object", dict),
        ("strict", "boolean", bool),
    ):
        value = function.get(field)
        if value is not None and not isinstance(value, kind_type):
            raise bad_type(f"{path}.function.{field}", kind_name, value)
    return ToolSpec(name=name, parameters=function.get("parameters") or {})


def _argument_fragments(arguments: str) -> list[str]:
    """The arguments as streamed: cut after each comma. A cut next to a
    punctuation character never splits a token, so the fragments' tokens add
    up to the tokens of the whole."""
    parts = arguments.split(",")
    return [p + "," for p in parts[:-1]] + [parts[-1]]


@dataclass(frozen=True, slots=True)
class ToolReply:
    """The call the simulated model makes, in OpenAI's terms."""

    name: str
    call_id: str
    #: The arguments as OpenAI sends them: a JSON text.
    arguments: str
    finish_reason: ClassVar[str] = "tool_calls"

    @property
    def tokens(self) -> int:
        """Completion tokens of one choice."""
        return replies.count_tokens(self.arguments)

    def message(self) -> dict[str, Any]:
        """The assistant message of a non-streamed reply."""
        function = {"name": self.name, "arguments": self.arguments}
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": self.call_id, "type": "function", "function": function}],
            "refusal": None,
        }

    def stream_deltas(self, chunk_count: int | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """(the first delta: role, id, type, name and empty arguments; the
        deltas carrying the arguments, grouped into ``chunk_count`` chunks)."""
        start = {
            "index": 0,
            "id": self.call_id,
            "type": "function",
            "function": {"name": self.name, "arguments": ""},
        }
        first = {"role": "assistant", "content": None, "tool_calls": [start], "refusal": None}
        pieces = replies.group_pieces(_argument_fragments(self.arguments), chunk_count)
        return first, [{"tool_calls": [{"index": 0, "function": {"arguments": p}}]} for p in pieces]


def tool_reply(
    tools: list[ToolSpec],
    tool_choice: str | None,
    forced_tool: str | None,
    messages: list[dict[str, Any]],
    key: bytes,
) -> ToolReply | None:
    """The call for a conversation with tools (see :func:`parse_tools`), or None
    for a text answer."""
    ends_with_result = messages[-1].get("role") == "tool"
    call = choose_call(tools, tool_choice, forced_tool, ends_with_result, key)
    if call is None:
        return None
    return ToolReply(call.name, call.call_id("call_"), orjson.dumps(call.arguments).decode())
