"""The ``response_format`` parameter of a chat request, checked with OpenAI's 400s:
text (None), json_object, or json_schema with a name, a schema and strictness.
The documents themselves are built by lockgate/sim/structured.py."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lockgate.sim import replies
from lockgate.sim.errors import bad_type, invalid, missing
from lockgate.sim.structured import SchemaProblem, document, dumps

_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_KINDS = ("text", "json_object", "json_schema")


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """A checked ``response_format`` asking for JSON."""

    name: str | None  # json_schema's name; None for json_object
    schema: dict[str, Any] | None  # None: any JSON object ({"text": ...})
    strict: bool

    def text(self, key: bytes, words: int, choice: int = 0) -> str:
        """The JSON text of one choice (``words``: the reply words of json_object)."""
        if self.schema is None:
            return dumps({"text": "".join(replies.reply_pieces(key, words, choice))})
        try:
            return dumps(document(self.schema, key, choice, strict=self.strict))
        except SchemaProblem as exc:
            raise invalid(
                f"Invalid schema for response_format '{self.name}': {exc}", "response_format"
            ) from None


def parse_response_format(body: dict[str, Any]) -> ResponseFormat | None:
    """The ``response_format`` of a chat body (None: text), with OpenAI's 400s."""
    fmt = body.get("response_format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        raise bad_type("response_format", "object", fmt)
    kind = fmt.get("type")
    if kind is None:
        raise missing("response_format.type")
    if kind not in _KINDS:
        raise invalid(
            f"Invalid value: {str(kind)[:40]!r}. Supported values are: 'json_object', "
            "'json_schema', and 'text'.",
            "response_format.type",
            "invalid_value",
        )
    if kind == "text":
        return None
    if kind == "json_object":
        return ResponseFormat(None, None, False)
    spec = fmt.get("json_schema")
    if spec is None:
        raise missing("response_format.json_schema")
    if not isinstance(spec, dict):
        raise bad_type("response_format.json_schema", "object", spec)
    name = spec.get("name")
    if name is None:
        raise missing("response_format.json_schema.name")
    if not isinstance(name, str):
        raise bad_type("response_format.json_schema.name", "string", name)
    if not _NAME.fullmatch(name):
        raise invalid(
            "Invalid 'response_format.json_schema.name': string does not match pattern. "
            "Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$' of at most 64 "
            "characters.",
            "response_format.json_schema.name",
            "invalid_value",
        )
    for field, expected, kind_type in (
        ("description", "string", str),
        ("schema", "object", dict),
        ("strict", "boolean", bool),
    ):
        value = spec.get(field)
        if value is not None and not isinstance(value, kind_type):
            raise bad_type(f"response_format.json_schema.{field}", expected, value)
    return ResponseFormat(name, spec.get("schema"), spec.get("strict") is True)
