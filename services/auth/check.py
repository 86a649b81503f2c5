"""Envoy ext_authz Check: who is calling, and may they? (policy decides)

Envoy runs the gRPC-JSON transcoder before ext_authz, so the path here is
always the gRPC method ("/lockgate.router.v1.RouterService/OpenAIChatCompletions")
and the body (packed as bytes) is the gRPC frame — whether the client used REST
or gRPC. The policy input is documented in policies/lockgate/access/access.rego.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import orjson
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2 as authz
from envoy.type.v3 import http_status_pb2
from google.rpc import code_pb2, status_pb2

from lockgate.decision_log import DecisionLog
from lockgate.identity import KEY_ID, MODELS, PREFIX, ROLES, TENANT_ID, TENANT_NAME
from lockgate.lru import BoundedLRU
from lockgate.policy import Evaluator
from lockgate.router.v1 import router_service_pb2 as router_pb
from services.auth.principals import Principal
from services.auth.secrets import MAX_KEY_LEN
from services.auth.service import AuthService

log = logging.getLogger("lockgate.auth.check")

ACCESS_DECISION = "lockgate/access/decision"
_ROUTER = "/lockgate.router.v1.RouterService/"
# Methods whose request names a model alias, and how to read it from the body.
_MODEL_READERS = {
    _ROUTER + "OpenAIChatCompletions": lambda raw: _json_model(
        router_pb.OpenAIChatCompletionsRequest.FromString(raw).http_body.data
    ),
    _ROUTER + "AnthropicMessages": lambda raw: _json_model(
        router_pb.AnthropicMessagesRequest.FromString(raw).http_body.data
    ),
    _ROUTER + "OpenAIEmbeddings": lambda raw: _json_model(
        router_pb.OpenAIEmbeddingsRequest.FromString(raw).http_body.data
    ),
    _ROUTER + "CreateChatCompletion": lambda raw: router_pb.CreateChatCompletionRequest.FromString(
        raw
    ).model,
    _ROUTER + "StreamChatCompletion": lambda raw: router_pb.StreamChatCompletionRequest.FromString(
        raw
    ).model,
}
# Never forwarded upstream: the services get identity headers instead.
_CREDENTIAL_HEADERS = ("authorization", "x-api-key")


def _json_model(data: bytes) -> str:
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        return ""
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else ""


def requested_model(method: str, raw_body: bytes) -> str:
    """The model alias named by the request body, or "" (the router validates bodies)."""
    reader = _MODEL_READERS.get(method)
    if reader is None or len(raw_body) < 5:
        return ""
    length = int.from_bytes(raw_body[1:5], "big")
    try:
        return reader(raw_body[5 : 5 + length])
    except Exception:  # noqa: BLE001 - a malformed body is the router's 400, not ours
        return ""


def presented_key(headers: dict[str, str]) -> str | None:
    """The API key from `Authorization: Bearer …` (OpenAI) or `x-api-key` (Anthropic)."""
    auth = headers.get("authorization")
    if auth is not None:
        scheme, _, value = auth.strip().partition(" ")
        return value.strip() if scheme.lower() == "bearer" else ""
    return headers.get("x-api-key")


@dataclass(frozen=True, slots=True)
class Decision:
    allow: bool
    status: int
    code: str
    reason: str


class Checker:
    def __init__(
        self, service: AuthService, policy: Evaluator, decision_log: DecisionLog | None = None
    ):
        self.service = service
        self.policy = policy
        #: Every decision, cached or not, in OPA's decision-log format.
        self.decision_log = decision_log
        # Keys hold everything a decision depends on (principal with its status
        # and scopes, request, policy revision), so an entry never goes stale.
        self.decisions: BoundedLRU[tuple, Decision] = BoundedLRU()

    async def check(self, request: authz.CheckRequest) -> authz.CheckResponse:
        http = request.attributes.request.http
        headers = dict(http.headers)
        method = http.path.split("?", 1)[0]
        key = presented_key(headers)
        principal: Principal | None = None
        if key and len(key) <= MAX_KEY_LEN:
            principal = await self.service.resolve(key)
        path = headers.get("x-envoy-original-path", http.path)
        model = requested_model(method, http.raw_body)
        # Everything the decision depends on: the input, and the policy + data revision.
        revision = self.policy.revision
        cache_key = (principal, bool(key), method, http.method, path, model, revision)
        decision = self.decisions.get(cache_key)
        if decision is None or self.decision_log is not None:
            policy_input = {
                "principal": principal.as_policy_input() if principal else None,
                "credential": {"present": bool(key)},
                "request": {
                    "method": method,
                    "http_method": http.method,
                    "path": path,
                    "model": model,
                },
            }
            if decision is None:
                decision = self._decide(policy_input)
                if decision.code != "policy_error":  # an engine failure is not an answer
                    self.decisions.put(cache_key, decision)
            if self.decision_log is not None:
                self.decision_log.record(
                    ACCESS_DECISION, policy_input, dataclasses.asdict(decision), revision
                )
        # The transcoder rewrote REST requests to gRPC (and left the original path).
        grpc_client = "x-envoy-original-path" not in headers
        if not decision.allow:
            return _denied(decision, grpc_client, method == _ROUTER + "AnthropicMessages")
        assert principal is not None, "policy allowed a request without a principal"
        return _allowed(principal, headers)

    def _decide(self, policy_input: dict) -> Decision:
        try:
            result = self.policy.evaluate(ACCESS_DECISION, policy_input)
        except Exception:  # noqa: BLE001 - fail closed, and say so
            log.exception("access policy evaluation failed")
            return Decision(False, 503, "policy_error", "access policy evaluation failed")
        if not isinstance(result, dict):
            return Decision(False, 403, "access_denied", "access denied by policy")
        return Decision(
            allow=bool(result.get("allow")),
            status=int(result.get("status", 403)),
            code=str(result.get("code", "access_denied")),
            reason=str(result.get("reason", "access denied by policy")),
        )


def _header(key: str, value: str) -> base_pb2.HeaderValueOption:
    return base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key=key, value=value),
        append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
    )


def _allowed(principal: Principal, headers: dict[str, str]) -> authz.CheckResponse:
    identity = {
        TENANT_ID: principal.tenant_id,
        KEY_ID: principal.key_id,
        ROLES: ",".join(principal.roles),
        TENANT_NAME: principal.tenant_name,
        MODELS: ",".join(principal.models),
    }
    # Strip every client-sent identity header we do not overwrite, and the credential.
    spoofed = [h for h in headers if h.startswith(PREFIX) and h not in identity]
    remove = spoofed + [h for h in _CREDENTIAL_HEADERS if h in headers]
    return authz.CheckResponse(
        status=status_pb2.Status(code=code_pb2.OK),
        ok_response=authz.OkHttpResponse(
            headers=[_header(k, v) for k, v in identity.items()],
            headers_to_remove=remove,
        ),
    )


_OPENAI_TYPE = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}
_RPC_CODE = {401: code_pb2.UNAUTHENTICATED, 403: code_pb2.PERMISSION_DENIED}


def _denied(decision: Decision, grpc_client: bool, anthropic: bool) -> authz.CheckResponse:
    if grpc_client:
        # Envoy turns a denial of a gRPC call into grpc-status + grpc-message.
        body, content_type = decision.reason, "text/plain"
    elif anthropic:
        # Anthropic's SDK reads {"type": "error", "error": {"type", "message"}}.
        error = {"type": _OPENAI_TYPE.get(decision.status, "api_error"),
                 "message": decision.reason}
        body = orjson.dumps({"type": "error", "error": error}).decode()
        content_type = "application/json"
    else:
        error = {
            "message": decision.reason,
            "type": _OPENAI_TYPE.get(decision.status, "api_error"),
            "param": None,
            "code": decision.code,
        }
        body, content_type = orjson.dumps({"error": error}).decode(), "application/json"
    return authz.CheckResponse(
        status=status_pb2.Status(code=_RPC_CODE.get(decision.status, code_pb2.PERMISSION_DENIED)),
        denied_response=authz.DeniedHttpResponse(
            status=http_status_pb2.HttpStatus(code=decision.status),
            headers=[_header("content-type", content_type)],
            body=body,
        ),
    )
