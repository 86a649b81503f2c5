"""Envoy ext_authz Check against hostile requests (real auth server, SQLite):
identity headers sent by clients, malformed credentials, and API scopes."""

from __future__ import annotations

import base64

import grpc
import orjson
import pytest
import pytest_asyncio
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2_grpc as authz_grpc
from google.rpc import code_pb2

from lockgate import identity
from lockgate.auth.v1 import auth_service_pb2 as pb
from lockgate.auth.v1 import auth_service_pb2_grpc as pb_grpc
from services.auth.app import AuthSettings, build
from tests.integration.auth_harness import CHAT, admin_call, check_request

AUTH = "/lockgate.auth.v1.AuthService/"
REGISTRY = "/lockgate.registry.v1.RegistryService/ListApis"
ROUTER_ADMIN = "/lockgate.router.v1.RouterAdminService/ReloadConfig"
#: Every identity header the gateway sets (lockgate/identity.py).
IDENTITY_HEADERS = sorted(
    value for name, value in vars(identity).items()
    if name.isupper() and isinstance(value, str) and value.startswith(identity.PREFIX)
    and value != identity.PREFIX
)


# Nothing here changes state (Check only reads): one server for the module.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gate(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("check-hardening")
    server, _service, engine = await build(AuthSettings(data_dir=tmp_path, grpc_port=0))
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    check, admin = authz_grpc.AuthorizationStub(channel), pb_grpc.AuthServiceStub(channel)
    root = (tmp_path / "admin.key").read_text().strip()
    await admin_call(check, admin, root, "CreateServiceAccount", pb.CreateServiceAccountRequest(
        tenant="default", team="platform", name="bot", roles=["developer"]))
    keys = {}
    for name, scopes, models in (("plain", [], []), ("inference", ["inference"], ["demo"]),
                                 ("admin", ["admin"], []), ("registry", ["registry"], []),
                                 ("both", ["inference", "admin"], [])):
        created = await admin_call(check, admin, root, "CreateApiKey", pb.CreateApiKeyRequest(
            tenant="default", name=name, owner="service-accounts/bot", scopes=scopes,
            models=models))
        keys[name] = created.secret
    yield check, admin, keys
    await channel.close()
    await server.stop(0)
    await engine.dispose()


def raw_check(headers: dict[str, str], path: str = CHAT, rest: bool = True):
    """A Check request with exactly these client headers."""
    request = check_request(None, path=path, rest=rest)
    request.attributes.request.http.headers.update(headers)
    return request


def forwarded(sent: dict[str, str], reply) -> dict[str, str]:
    """The headers the upstream receives once Envoy applied an allowed Check."""
    assert reply.status.code == code_pb2.OK, reply.denied_response.body
    ok = reply.ok_response
    set_ = {h.header.key for h in ok.headers}
    # No header is both set and removed, so the order Envoy applies them in is moot.
    assert not set_ & set(ok.headers_to_remove)
    out = dict(sent)
    for option in ok.headers:
        assert option.append_action == base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
        out[option.header.key] = option.header.value
    for name in ok.headers_to_remove:
        out.pop(name, None)
    return out


def lockgate_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.startswith(identity.PREFIX)}


def denial(reply) -> tuple[int, str, str]:
    assert reply.status.code != code_pb2.OK, "expected a denial"
    body = orjson.loads(reply.denied_response.body)
    return reply.denied_response.status.code, body["error"]["code"], body["error"]["type"]


# -- identity headers -------------------------------------------------------------------


async def test_the_identity_header_list_is_not_empty():
    assert {"x-lockgate-tenant-id", "x-lockgate-roles", "x-lockgate-principal",
            "x-lockgate-scopes", "x-lockgate-team-id"} <= set(IDENTITY_HEADERS)


@pytest.mark.parametrize("path", [CHAT, AUTH + "ListTeams"])
async def test_spoofed_identity_headers_never_reach_the_upstream(gate, path):
    check, admin, keys = gate
    key = keys["both"]
    rest = path == CHAT
    clean_headers = {"authorization": f"Bearer {key}"}
    truth = lockgate_headers(forwarded(clean_headers, await check.Check(
        raw_check(clean_headers, path, rest))))
    assert truth[identity.ROLES] == "developer"
    assert truth[identity.SCOPES] == "admin,inference"

    spoofed = {h: "spoofed" for h in IDENTITY_HEADERS}
    spoofed.update({
        identity.TENANT_ID: "ten_other", identity.ROLES: "platform_admin",
        identity.SCOPES: "", identity.MODELS: "", identity.TEAM_ID: "team_other",
        identity.PRINCIPAL: "user:usr_root", "x-lockgate-invented": "1",
        "x-lockgate-": "x", "x-api-key": "lg_spoofed", **clean_headers,
    })
    reply = await check.Check(raw_check(spoofed, path, rest))
    upstream = forwarded(spoofed, reply)
    assert lockgate_headers(upstream) == truth
    assert "authorization" not in upstream and "x-api-key" not in upstream

    if path != CHAT:  # and the admin API reads the true identity from them
        metadata = tuple(lockgate_headers(upstream).items())
        caller = await admin.GetCaller(pb.GetCallerRequest(), metadata=metadata)
        assert list(caller.roles) == ["developer"]
        assert caller.tenant_id == truth[identity.TENANT_ID]
        assert caller.principal_id == truth[identity.PRINCIPAL].split(":", 1)[1]


async def test_spoofed_roles_do_not_sway_the_decision(gate):
    check, _, keys = gate
    reply = await check.Check(raw_check({
        "authorization": f"Bearer {keys['plain']}", identity.ROLES: "platform_admin",
        identity.SCOPES: "admin",
    }, ROUTER_ADMIN, rest=False))
    assert reply.denied_response.status.code == 403
    assert "platform_admin" in reply.denied_response.body


async def test_identity_headers_alone_are_no_credential(gate):
    check, *_ = gate
    reply = await check.Check(raw_check({h: "x" for h in IDENTITY_HEADERS}))
    assert denial(reply) == (401, "missing_api_key", "authentication_error")


# -- malformed credentials --------------------------------------------------------------

MALFORMED = {
    "no scheme": lambda key: {"authorization": key},
    "basic": lambda key: {"authorization": "Basic " + base64.b64encode(b"user:pw").decode()},
    "basic with the key": lambda key: {"authorization": f"Basic {key}"},
    "empty bearer": lambda key: {"authorization": "Bearer "},
    "bare scheme": lambda key: {"authorization": "Bearer"},
    "empty header": lambda key: {"authorization": ""},
    "10 KB bearer": lambda key: {"authorization": "Bearer " + "A" * 10_240},
    "10 KB after the key": lambda key: {"authorization": f"Bearer {key}{'A' * 10_240}"},
    "non-ASCII": lambda key: {"authorization": "Bearer lg_ÄÖÜäöüßé_" + "é" * 32},
    "non-ASCII look-alike": lambda key: {"authorization": "Bearer " + key[:-1] + "а"},
    "NUL byte": lambda key: {"authorization": f"Bearer {key[:20]}\x00{key[21:]}"},
    "NUL-like escapes": lambda key: {"authorization": f"Bearer {key[:20]}%00{key[23:]}"},
    "SQL": lambda key: {"authorization": "Bearer ' OR '1'='1' --"},
    "SQL after a prefix": lambda key: {"authorization": f"Bearer {key[:12]}' OR 1=1 --"},
    "truncated": lambda key: {"authorization": f"Bearer {key[:-1]}"},
    "two keys": lambda key: {"authorization": f"Bearer {key} {key}"},
    "tab instead of space": lambda key: {"authorization": f"Bearer\t{key}"},
    "empty x-api-key": lambda key: {"x-api-key": ""},
    "SQL x-api-key": lambda key: {"x-api-key": "lg_' OR 1=1 --"},
    "10 KB x-api-key": lambda key: {"x-api-key": "lg_" + "x" * 10_240},
    "bad bearer, good x-api-key": lambda key: {"authorization": "Bearer nope", "x-api-key": key},
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_malformed_credentials_are_401_invalid_api_key(gate, case):
    check, _, keys = gate
    headers = MALFORMED[case](keys["plain"])
    reply = await check.Check(raw_check(headers))
    assert denial(reply) == (401, "invalid_api_key", "authentication_error")
    body = reply.denied_response.body
    assert keys["plain"] not in body
    for value in headers.values():
        assert len(value) < 8 or value not in body
    # gRPC clients: the plain reason as grpc-message, UNAUTHENTICATED.
    grpc_reply = await check.Check(raw_check(headers, rest=False))
    assert grpc_reply.status.code == code_pb2.UNAUTHENTICATED
    assert not grpc_reply.denied_response.body.startswith("{")
    assert keys["plain"] not in grpc_reply.denied_response.body


@pytest.mark.parametrize("header", [
    lambda key: {"authorization": f"bearer {key}"},
    lambda key: {"authorization": f"BEARER   {key}  "},
    lambda key: {"x-api-key": key},
])
async def test_tolerated_credential_spellings(gate, header):
    check, _, keys = gate
    reply = await check.Check(raw_check(header(keys["plain"])))
    assert reply.status.code == code_pb2.OK


# -- API scopes -------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "path", "allowed"), [
    ("inference", CHAT, True),
    ("inference", AUTH + "ListApiKeys", False),
    ("inference", AUTH + "GetCaller", False),
    ("inference", REGISTRY, False),
    ("admin", AUTH + "ListApiKeys", True),
    ("admin", CHAT, False),
    ("admin", REGISTRY, False),
    ("registry", REGISTRY, True),
    ("registry", CHAT, False),
    ("registry", AUTH + "ListApiKeys", False),
    ("both", CHAT, True),
    ("both", AUTH + "ListApiKeys", True),
    ("plain", REGISTRY, True),
])
async def test_api_scopes(gate, key, path, allowed):
    check, _, keys = gate
    rest = path == CHAT
    reply = await check.Check(check_request(keys[key], path=path, rest=rest,
                                            model="demo" if rest else ""))
    if allowed:
        assert reply.status.code == code_pb2.OK, reply.denied_response.body
        return
    assert reply.denied_response.status.code == 403
    if rest:
        assert denial(reply) == (403, "scope_not_allowed", "permission_error")
    service = path.split("/")[1]
    assert f"not scoped for {service}" in reply.denied_response.body


async def test_admin_scoped_key_uses_the_admin_api_and_inference_key_cannot(gate):
    check, admin, keys = gate
    mine = await admin_call(check, admin, keys["admin"], "ListApiKeys",
                            pb.ListApiKeysRequest(tenant="default"))
    assert {k.name for k in mine.keys} == {"plain", "inference", "admin", "registry", "both"}
    with pytest.raises(PermissionError, match="not scoped for lockgate.auth.v1.AuthService"):
        await admin_call(check, admin, keys["inference"], "ListApiKeys",
                         pb.ListApiKeysRequest(tenant="default"))
    # Without Check's identity the admin API refuses outright.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await admin.ListApiKeys(pb.ListApiKeysRequest(tenant="default"))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
