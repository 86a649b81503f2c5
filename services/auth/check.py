"""Envoy ext_authz Check: who is calling, and may they? (policy decides)

Envoy runs the gRPC-JSON transcoder before ext_authz, so the path here is the
gRPC method ("/lockgate.router.v1.RouterService/OpenAIChatCompletions") and the
body the gRPC frame — whether the client used REST or gRPC — except for the
hot REST calls Envoy sends to the router untranscoded (lockgate/direct_rest.py):
those come with the client's path and JSON body, and are decided as the gRPC
method they stand for. The policy input is documented in
policies/lockgate/access/access.rego.

`Checker.decide` is transport-neutral (a CheckInput in, an Allowed or Denied
verdict out). Two transports serve it: Envoy's gRPC Authorization/Check
(`Checker.check`, below) and the HTTP/1.1 authorization service Envoy calls on
the hot path (services/auth/check_http.py), which costs a fraction of a
grpc.aio call (docs/performance.md).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from email.utils import formatdate

import orjson
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2 as authz
from envoy.type.v3 import http_status_pb2
from google.rpc import code_pb2, status_pb2

from lockgate.decision_log import DecisionLog
from lockgate.direct_rest import DIRECT_REST
from lockgate.governance_view import GovernanceView
from lockgate.identity import (
    API_ID,
    API_VERSION,
    KEY_ID,
    MODEL,
    MODELS,
    PREFIX,
    PRINCIPAL,
    ROLES,
    SCOPES,
    SUBSCRIPTION_ID,
    TEAM_ID,
    TENANT_ID,
    TENANT_NAME,
)
from lockgate.lru import BoundedLRU
from lockgate.policy import Evaluator
from lockgate.registry.v1 import registry_service_pb2 as reg_pb
from lockgate.router.v1 import router_service_pb2 as router_pb
from services.auth.changes import LastUsed
from services.auth.jwt_tokens import InvalidToken, JwtVerifier, looks_like_jwt
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
#: Which team a user's JWT acts in (name or id); read here, never forwarded.
TEAM_HEADER = "x-lockgate-team"
# Never forwarded upstream: the services get identity headers instead.
_CREDENTIAL_HEADERS = ("authorization", "x-api-key")


def _json_model(data: bytes) -> str:
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        return ""
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else ""


def _grpc_message(raw_body: bytes) -> bytes | None:
    """The first message of a gRPC-framed body (the transcoder's output)."""
    if len(raw_body) < 5:
        return None
    length = int.from_bytes(raw_body[1:5], "big")
    return raw_body[5 : 5 + length]


def requested_prompt(method: str, raw_body: bytes) -> tuple[str, str]:
    """(api, version) of a prompt API invocation, or ("", "")."""
    if method != _ROUTER + "InvokePromptApi":
        return "", ""
    message = _grpc_message(raw_body)
    try:
        request = router_pb.InvokePromptApiRequest.FromString(message or b"")
    except Exception:  # noqa: BLE001 - a malformed body is the router's 400, not ours
        return "", ""
    return request.api, request.version


def requested_model(method: str, raw_body: bytes) -> str:
    """The model alias named by the request body, or "" (the router validates bodies)."""
    reader = _MODEL_READERS.get(method)
    message = _grpc_message(raw_body)
    if reader is None or message is None:
        return ""
    try:
        return reader(message)
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
class Governed:
    """What the registry says of a request's model alias."""

    ready: bool
    #: An AliasBinding, or a PromptRoute for prompt API invocations (same fields).
    binding: reg_pb.AliasBinding | reg_pb.PromptRoute | None = None
    #: The approved subscription of the caller's team ("" when none).
    subscription_id: str = ""

    @property
    def subscribed(self) -> bool:
        return bool(self.subscription_id)

    @property
    def key(self) -> tuple:
        """Everything a decision depends on here (for the decision cache)."""
        if self.binding is None:
            return (self.ready, None, self.subscription_id)
        kind = type(self.binding).__name__
        return (self.ready, kind, self.binding.SerializeToString(deterministic=True),
                self.subscription_id)

    def policy_input(self) -> dict:
        b = self.binding
        api = None if b is None else {
            "id": b.api_id, "name": b.api_name, "tenant_id": b.api_tenant_id,
            "owner_team_id": b.owner_team_id, "version": b.version, "state": b.state,
            "successor": b.successor,
        }
        return {"api": api, "subscription": {"approved": self.subscribed},
                "governance": {"ready": self.ready}}


@dataclass(frozen=True, slots=True)
class Decision:
    allow: bool
    status: int
    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class CachedDecision:
    """A decision with the policy input it was taken on and its result as logged."""

    decision: Decision
    input: dict
    result: dict


@dataclass(frozen=True, slots=True)
class CheckInput:
    """What Envoy tells the authorization service of a request, whatever the transport."""

    #: The request path after the transcoder: the gRPC method for router/admin calls.
    path: str
    http_method: str
    #: Lower-case names; x-envoy-original-path is the client's path before transcoding.
    headers: dict[str, str]
    #: The (gRPC-framed) request body, up to Envoy's with_request_body limit.
    raw_body: bytes


@dataclass(frozen=True, slots=True)
class Allowed:
    #: Identity headers for the upstream service, overwriting any client copy.
    upstream_headers: dict[str, str]
    #: Client-sent headers to drop: credentials and spoofed x-lockgate-* headers.
    remove: tuple[str, ...]
    #: Headers for the client's response (Deprecation, Sunset, Link).
    client_headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Denied:
    status: int
    content_type: str
    body: str


class Checker:
    def __init__(
        self,
        service: AuthService,
        policy: Evaluator,
        decision_log: DecisionLog | None = None,
        last_used: LastUsed | None = None,
        verifier: JwtVerifier | None = None,
        governance: GovernanceView | None = None,
    ):
        self.service = service
        self.policy = policy
        #: Notes every allowed key, for its last-used time (flushed in batches).
        self.last_used = last_used
        #: Verifies users' JWTs (when an identity provider is configured).
        self.verifier = verifier
        #: The registry's enforced state (API versions, subscriptions), when configured.
        self.governance = governance
        #: Every decision, cached or not, in OPA's decision-log format.
        self.decision_log = decision_log
        # Keys hold everything a decision depends on (principal with its status
        # and scopes, request, policy revision), so an entry never goes stale.
        self.decisions: BoundedLRU[tuple, CachedDecision] = BoundedLRU()

    async def check(self, request: authz.CheckRequest) -> authz.CheckResponse:
        """Envoy's gRPC Authorization/Check."""
        http = request.attributes.request.http
        verdict = await self.decide(CheckInput(
            path=http.path, http_method=http.method, headers=dict(http.headers),
            raw_body=http.raw_body,
        ))
        if isinstance(verdict, Denied):
            return _denied_response(verdict)
        return _allowed_response(verdict)

    async def decide(self, request: CheckInput) -> Allowed | Denied:
        """May this request pass, and with which identity headers?"""
        headers = request.headers
        method = request.path.split("?", 1)[0]
        direct = DIRECT_REST.get((request.http_method, method))
        key = presented_key(headers)
        principal, credential_error = await self._principal(key, headers)
        if direct is not None:  # untranscoded: the body is the client's JSON
            method, path, model = direct, request.path, _json_model(request.raw_body)
        else:
            path = headers.get("x-envoy-original-path", request.path)
            model = requested_model(method, request.raw_body)
        # Everything the decision depends on: the input (expiry is a matter of the
        # clock, so the status is judged now), and the policy + data revision.
        now = time.time()
        status = principal.effective_status(now) if principal else ""
        revision = self.policy.revision
        governed = self._governed(principal, model, requested_prompt(method, request.raw_body))
        # An Authorization or x-api-key header, even malformed or of another scheme, is a
        # credential presented (invalid_api_key), not a missing one.
        presented = key is not None
        cache_key = (principal, status, presented, credential_error, method, request.http_method,
                     path,
                     model, revision, governed.key)
        cached = self.decisions.get(cache_key)
        if cached is None:
            policy_input = {
                "principal": principal.as_policy_input(now) if principal else None,
                "credential": {"present": presented, "error": credential_error},
                "request": {
                    "method": method,
                    "http_method": request.http_method,
                    "path": path,
                    "model": model,
                },
                **governed.policy_input(),
            }
            decision = await self._decide(policy_input)
            cached = CachedDecision(decision, policy_input, dataclasses.asdict(decision))
            if decision.code != "policy_error":  # an engine failure is not an answer
                self.decisions.put(cache_key, cached)
        decision = cached.decision
        if self.decision_log is not None:
            # The key holds everything the input is made of, so a hit logs the input
            # and result kept with it (shared, never mutated) instead of rebuilding them.
            self.decision_log.record(ACCESS_DECISION, cached.input, cached.result, revision)
        # The transcoder rewrote REST requests to gRPC (and left the original path).
        grpc_client = direct is None and "x-envoy-original-path" not in headers
        if not decision.allow:
            return _denied(decision, grpc_client, method == _ROUTER + "AnthropicMessages")
        assert principal is not None, "policy allowed a request without a principal"
        if self.last_used is not None and principal.key_id:
            self.last_used.note(principal.key_id)
        return _allowed(principal, headers, governed, model)

    def _governed(self, principal: Principal | None, model: str,
                  prompt: tuple[str, str]) -> Governed:
        """The registry's view of the requested alias (or prompt API): its API version,
        and whether the caller's team is subscribed (nothing without a registry)."""
        if self.governance is None:
            return Governed(ready=True)
        if not self.governance.ready.is_set():
            return Governed(ready=False)
        api_ref, version = prompt
        if api_ref and version:
            home = principal.tenant_id if principal else ""
            binding = self.governance.prompt(api_ref, version, home)
        else:
            binding = self.governance.binding(model) if model else None
        subscription_id = (
            self.governance.subscription_id(principal.team_id, binding.api_id, binding.version)
            if binding is not None and principal is not None and principal.team_id else ""
        )
        return Governed(ready=True, binding=binding, subscription_id=subscription_id)

    async def _principal(self, key: str | None, headers: dict[str, str]
                         ) -> tuple[Principal | None, str]:
        """The principal behind an API key or a user JWT, and why a JWT was refused."""
        if not key:
            return None, ""
        if self.verifier is not None and looks_like_jwt(key):
            try:
                token = await self.verifier.verify(key)
                team = headers.get(TEAM_HEADER, "")
                return await self.service.resolve_token(token, team), ""
            except InvalidToken as exc:
                return None, exc.message
        if len(key) <= MAX_KEY_LEN:
            return await self.service.resolve(key), ""
        return None, ""

    async def _decide(self, policy_input: dict) -> Decision:
        try:
            result = await self.policy.evaluate_async(ACCESS_DECISION, policy_input)
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


def _lifecycle_headers(binding: reg_pb.AliasBinding | reg_pb.PromptRoute
                       ) -> tuple[tuple[str, str], ...]:
    """RFC 9745 Deprecation, RFC 8594 Sunset and the successor link, for clients."""
    out = []
    if binding.HasField("deprecate_time"):
        out.append(("deprecation", f"@{binding.deprecate_time.seconds}"))
    if binding.HasField("sunset_time"):
        out.append(("sunset", formatdate(binding.sunset_time.seconds, usegmt=True)))
    if binding.successor:
        link = f"/registry/v1/apis/{binding.api_id}/versions/{binding.successor}"
        out.append(("link", f'<{link}>; rel="successor-version"'))
    return tuple(out)


def _header_safe(value: str) -> bool:
    """The client chose the model name: only a short printable ASCII one goes into a
    header (anything else would make Envoy refuse the request; the router answers it)."""
    return len(value) <= 256 and value.isascii() and value.isprintable()


def _allowed(principal: Principal, headers: dict[str, str], governed: Governed,
             model: str) -> Allowed:
    binding = governed.binding
    identity = {
        TENANT_ID: principal.tenant_id,
        KEY_ID: principal.key_id,
        ROLES: ",".join(principal.roles),
        TENANT_NAME: principal.tenant_name,
        MODELS: ",".join(principal.models),
        TEAM_ID: principal.team_id,
        PRINCIPAL: f"{principal.owner_kind}:{principal.owner_id}" if principal.owner_id else "",
        SCOPES: ",".join(principal.scopes),
        API_ID: binding.api_id if binding is not None else "",
        API_VERSION: binding.version if binding is not None else "",
        SUBSCRIPTION_ID: governed.subscription_id,
        MODEL: model if _header_safe(model) else "",
    }
    # Set the identity headers that have a value; strip every other client-sent
    # x-lockgate-* header and the credential. Empty values are never sent as
    # overwrites: a proxy that drops empty headers would let a client's copy through.
    present = {k: v for k, v in identity.items() if v}
    spoofed = [h for h in headers if h.startswith(PREFIX) and h not in present]
    return Allowed(
        upstream_headers=present,
        remove=tuple(spoofed + [h for h in _CREDENTIAL_HEADERS if h in headers]),
        client_headers=(
            _lifecycle_headers(binding)
            if binding is not None and binding.state == "deprecated" else ()
        ),
    )


_OPENAI_TYPE = {
    401: "authentication_error",
    403: "permission_error",
    410: "invalid_request_error",
    429: "rate_limit_error",
}


def _denied(decision: Decision, grpc_client: bool, anthropic: bool) -> Denied:
    if grpc_client:
        # Envoy turns a denial of a gRPC call into grpc-status + grpc-message.
        return Denied(decision.status, "text/plain", decision.reason)
    if anthropic:
        # Anthropic's SDK reads {"type": "error", "error": {"type", "message"}}.
        error = {"type": _OPENAI_TYPE.get(decision.status, "api_error"),
                 "message": decision.reason}
        return Denied(decision.status, "application/json",
                      orjson.dumps({"type": "error", "error": error}).decode())
    error = {
        "message": decision.reason,
        "type": _OPENAI_TYPE.get(decision.status, "api_error"),
        "param": None,
        "code": decision.code,
    }
    return Denied(decision.status, "application/json", orjson.dumps({"error": error}).decode())


# -- the gRPC transport (envoy.service.auth.v3) -------------------------------

_RPC_CODE = {
    401: code_pb2.UNAUTHENTICATED,
    403: code_pb2.PERMISSION_DENIED,
    410: code_pb2.FAILED_PRECONDITION,
    503: code_pb2.UNAVAILABLE,
}


def _header(key: str, value: str) -> base_pb2.HeaderValueOption:
    return base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key=key, value=value),
        append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
    )


def _allowed_response(verdict: Allowed) -> authz.CheckResponse:
    return authz.CheckResponse(
        status=status_pb2.Status(code=code_pb2.OK),
        ok_response=authz.OkHttpResponse(
            headers=[_header(k, v) for k, v in verdict.upstream_headers.items()],
            headers_to_remove=verdict.remove,
            response_headers_to_add=[_header(k, v) for k, v in verdict.client_headers],
        ),
    )


def _denied_response(verdict: Denied) -> authz.CheckResponse:
    return authz.CheckResponse(
        status=status_pb2.Status(code=_RPC_CODE.get(verdict.status, code_pb2.PERMISSION_DENIED)),
        denied_response=authz.DeniedHttpResponse(
            status=http_status_pb2.HttpStatus(code=verdict.status),
            headers=[_header("content-type", verdict.content_type)],
            body=verdict.body,
        ),
    )
