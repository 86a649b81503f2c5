"""google.protobuf.Struct <-> JSON documents, keeping whole numbers whole.

Struct stores every number as a double: read back, 500 is 500.0. JSON does not
tell them apart, but JSON Schema does (`integer`, `maxLength`, `seed`), so whole
numbers come back as ints.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format, struct_pb2


def integral(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, dict):
        return {k: integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [integral(v) for v in value]
    return value


def struct_to_dict(message: struct_pb2.Struct) -> dict[str, Any]:
    return integral(json_format.MessageToDict(message))


def dict_to_struct(value: dict[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(value)
    return out
