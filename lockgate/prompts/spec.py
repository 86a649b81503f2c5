"""A published prompt API version, checked as a whole at publish time.

The stored form of a version is a JSON object::

    {
      "model": "support-default",               # a model alias (required)
      "system": "You are … {{ product }} …",     # message templates: at least one
      "user": "Customer {{ customer.name }} asks: {{ question }}",
      "input_schema": {"type": "object", …},     # Draft 2020-12 (required)
      "output_schema": {"type": "object", …},    # optional: strict structured output
      "parameters": {"temperature": 0.2, "max_completion_tokens": 500}
    }

``compile_version_spec`` checks every part (schemas, templates against the input schema,
parameters against ``PARAMETERS``) and returns an immutable ``PromptVersionSpec`` ready
for ``render.build_chat_request``. Whether the model alias belongs to the API is the
registry's business, not checked here.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from lockgate.errors import InvalidRequest
from lockgate.prompts.compat import parse_version
from lockgate.prompts.schema import InputSchema, check_output_schema
from lockgate.prompts.template import Template, compile_template

MAX_MODEL_LENGTH = 256
MAX_STOP_SEQUENCES = 4
MAX_STOP_LENGTH = 256
MAX_COMPLETION_TOKENS = 1_000_000
_KEYS = ("model", "system", "user", "input_schema", "output_schema", "parameters")


def _number(low: float, high: float) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a number"
        if not low <= value <= high:
            return f"must be between {low} and {high}"
        return None

    return check


def _integer(low: int, high: int) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be an integer"
        if not low <= value <= high:
            return f"must be between {low} and {high}"
        return None

    return check


def _stop(value: Any) -> str | None:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not 1 <= len(values) <= MAX_STOP_SEQUENCES:
        return f"must be a string or a list of 1 to {MAX_STOP_SEQUENCES} strings"
    if not all(isinstance(v, str) and 0 < len(v) <= MAX_STOP_LENGTH for v in values):
        return f"stop sequences must be 1 to {MAX_STOP_LENGTH} characters"
    return None


#: The model parameters a version may bind, with their checks. The invoking caller can
#: set none of them: the request body is built from the version alone.
PARAMETERS: Mapping[str, Callable[[Any], str | None]] = MappingProxyType({
    "temperature": _number(0, 2),
    "top_p": _number(0, 1),
    "max_completion_tokens": _integer(1, MAX_COMPLETION_TOKENS),
    "stop": _stop,
    "seed": _integer(-(2**63), 2**63 - 1),
})


@dataclass(frozen=True, slots=True)
class PromptVersionSpec:
    """One version of a prompt API, checked; immutable and shareable."""

    api: str
    version: str
    model: str
    system: Template | None
    user: Template | None
    input_schema: InputSchema
    output_schema: Mapping[str, Any] | None
    parameters: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The stored form (what ``compile_version_spec`` takes back)."""
        out: dict[str, Any] = {"model": self.model}
        if self.system is not None:
            out["system"] = self.system.source
        if self.user is not None:
            out["user"] = self.user.source
        out["input_schema"] = copy.deepcopy(self.input_schema.schema)
        if self.output_schema is not None:
            out["output_schema"] = copy.deepcopy(dict(self.output_schema))
        out["parameters"] = copy.deepcopy(dict(self.parameters))
        return out


def check_parameters(parameters: Any) -> dict[str, Any]:
    """The bound model parameters, checked against ``PARAMETERS``."""
    if parameters is None:
        return {}
    if not isinstance(parameters, Mapping):
        raise InvalidRequest("parameters must be an object", param="parameters")
    out: dict[str, Any] = {}
    for name, value in parameters.items():
        check = PARAMETERS.get(name)
        if check is None:
            raise InvalidRequest(
                f"parameter {name!r} cannot be bound; allowed: " + ", ".join(PARAMETERS),
                param=f"parameters.{name}" if isinstance(name, str) else "parameters",
            )
        problem = check(value)
        if problem:
            raise InvalidRequest(f"parameters.{name} {problem}", param=f"parameters.{name}")
        out[name] = list(value) if isinstance(value, list) else value
    return out


def compile_version_spec(api: str, version: str, spec: Mapping[str, Any]) -> PromptVersionSpec:
    """Check a version's stored form and compile its templates and schemas.

    Raises an ``InvalidRequest`` (``SchemaError``, ``TemplateError``, ``VersionError``…)
    whose ``param`` names the offending field.
    """
    if not isinstance(spec, Mapping):
        raise InvalidRequest("the version must be an object", param="spec")
    unknown = [k for k in spec if k not in _KEYS]
    if unknown:
        raise InvalidRequest(f"unknown field {unknown[0]!r}; fields: " + ", ".join(_KEYS),
                             param=str(unknown[0]))
    parse_version(version)
    model = spec.get("model")
    if not isinstance(model, str) or not 0 < len(model) <= MAX_MODEL_LENGTH:
        raise InvalidRequest(f"model must be a model alias of 1 to {MAX_MODEL_LENGTH} "
                             "characters", param="model")
    if "input_schema" not in spec:
        raise InvalidRequest("input_schema is required", param="input_schema")
    input_schema = InputSchema(spec["input_schema"])
    templates: dict[str, Template | None] = {}
    for role in ("system", "user"):
        text = spec.get(role)
        templates[role] = None if text is None else compile_template(
            text, input_schema=input_schema.schema, param=role
        )
    if templates["system"] is None and templates["user"] is None:
        raise InvalidRequest("a version needs a system or a user template (or both)",
                             param="user")
    output_schema = spec.get("output_schema")
    if output_schema is not None:
        check_output_schema(output_schema)
        output_schema = MappingProxyType(copy.deepcopy(dict(output_schema)))
    return PromptVersionSpec(
        api=api,
        version=version,
        model=model,
        system=templates["system"],
        user=templates["user"],
        input_schema=input_schema,
        output_schema=output_schema,
        parameters=MappingProxyType(check_parameters(spec.get("parameters"))),
    )
