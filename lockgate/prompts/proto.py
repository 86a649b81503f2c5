"""A prompt version's stored form (lockgate/prompts/spec.py) <-> the PromptSpec
message the registry and the watch stream carry."""

from __future__ import annotations

from typing import Any

from google.protobuf import struct_pb2

from lockgate.registry.v1 import registry_service_pb2 as pb
from lockgate.structs import dict_to_struct, struct_to_dict


def _struct(value: Any) -> struct_pb2.Struct | None:
    return dict_to_struct(value) if isinstance(value, dict) else None


def prompt_to_proto(prompt: dict[str, Any]) -> pb.PromptSpec | None:
    if not prompt:
        return None
    return pb.PromptSpec(
        system_template=prompt.get("system", ""), user_template=prompt.get("user", ""),
        input_schema=_struct(prompt.get("input_schema")),
        output_schema=_struct(prompt.get("output_schema")), model=prompt.get("model", ""),
        parameters=_struct(prompt.get("parameters")),
    )


def prompt_from_proto(message: pb.PromptSpec) -> dict[str, Any]:
    """The stored form (lockgate/prompts/spec.py); unset parts are left out."""
    prompt: dict[str, Any] = {}
    if message.model:
        prompt["model"] = message.model
    if message.system_template:
        prompt["system"] = message.system_template
    if message.user_template:
        prompt["user"] = message.user_template
    for field in ("input_schema", "output_schema", "parameters"):
        if message.HasField(field):
            prompt[field] = struct_to_dict(getattr(message, field))
    return prompt
