"""Invoking a prompt API version: the registry's published template, schemas,
model and parameters, filled with the caller's input, sent through the router
like any chat call (routing, retries, metering).

The version comes from the router's copy of the registry's watch stream, never
from the request; compiled versions are cached by the exact route they came
from, so a new version or a changed route is compiled afresh.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema
import orjson

from lockgate.errors import FailedPrecondition, NotFound, ServiceUnavailable, UpstreamError
from lockgate.governance_view import GovernanceView
from lockgate.lru import BoundedLRU
from lockgate.prompts.proto import prompt_from_proto
from lockgate.prompts.render import build_chat_request
from lockgate.prompts.spec import PromptVersionSpec, compile_version_spec
from lockgate.registry.v1 import registry_service_pb2 as reg_pb

#: States a prompt version can be invoked in (retired ones answer at the edge with 410).
INVOCABLE = ("published", "deprecated")


@dataclass(frozen=True, slots=True)
class Invocation:
    route: reg_pb.PromptRoute
    body: dict[str, Any]
    #: The version's output schema (None: the answer is text).
    output_schema: Mapping[str, Any] | None


class PromptApis:
    def __init__(self, view: GovernanceView | None, max_compiled: int = 1000):
        self.view = view
        self._compiled: BoundedLRU[bytes, PromptVersionSpec] = BoundedLRU(max_compiled)

    def prepare(self, tenant_id: str, api_ref: str, version: str, input: Any) -> Invocation:
        """The chat request for one invocation; NotFound for unknown (or draft) versions,
        InvalidRequest naming the field for input the schema refuses."""
        if self.view is None:
            raise NotFound("prompt APIs are not available: the router has no registry",
                           param="api")
        if not self.view.ready.is_set():
            raise ServiceUnavailable("the router has not loaded the registry's prompt APIs yet; "
                                     "retry shortly")
        route = self.view.prompt(api_ref, version, tenant_id) if api_ref and version else None
        if route is None:
            raise NotFound("API version not found", param="api")
        if route.state not in INVOCABLE:
            raise FailedPrecondition(f"version {route.version} of {route.api_name} is "
                                     f"{route.state}", param="version")
        spec = self._spec(route)
        return Invocation(route, build_chat_request(spec, input), spec.output_schema)

    def _spec(self, route: reg_pb.PromptRoute) -> PromptVersionSpec:
        key = route.SerializeToString(deterministic=True)
        spec = self._compiled.get(key)
        if spec is None:
            spec = compile_version_spec(route.api_name, route.version,
                                        prompt_from_proto(route.prompt))
            self._compiled.put(key, spec)
        return spec


def answer_of(reply: dict, output_schema: Mapping[str, Any] | None) -> tuple[Any, str, str]:
    """(output, text, finish_reason) from a chat completion: with an output schema,
    the parsed JSON object, checked against it (a provider that ignores strict
    structured outputs must not hand callers a document the API does not promise)."""
    choices = reply.get("choices") or [{}]
    message = choices[0].get("message") or {}
    text = message.get("content") or ""
    finish = choices[0].get("finish_reason") or ""
    if output_schema is None:
        return text, text, finish
    try:
        output = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise UpstreamError("the model's answer is not the JSON the output schema asks for",
                            code="invalid_structured_output") from None
    problem = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(output_schema).iter_errors(output))
    if problem is not None:
        raise UpstreamError("the model's answer does not fit the output schema",
                            code="invalid_structured_output")
    return output, text, finish
