"""auth's ext_authz Check over gRPC (in-process server on port 0), with the real
policy: what Envoy sees for allowed, denied and spoofed requests."""

from __future__ import annotations

import grpc
import orjson
import pytest
from envoy.service.auth.v3 import attribute_context_pb2, external_auth_pb2
from envoy.service.auth.v3 import external_auth_pb2_grpc as authz_grpc
from google.api import httpbody_pb2
from google.rpc import code_pb2

from lockgate.auth.v1 import auth_service_pb2 as pb
from lockgate.auth.v1 import auth_service_pb2_grpc as pb_grpc
from lockgate.policy import PolicyEngine
from lockgate.router.v1 import router_service_pb2 as router_pb
from services.auth.app import AuthSettings, build
from services.auth.check import Checker

CHAT = "/lockgate.router.v1.RouterService/OpenAIChatCompletions"


@pytest.fixture
async def auth(tmp_path):
    settings = AuthSettings(data_dir=tmp_path, grpc_port=0)
    server, service, engine = await build(settings)
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    admin_key = (tmp_path / "admin.key").read_text().strip()
    yield authz_grpc.AuthorizationStub(channel), pb_grpc.AuthServiceStub(channel), admin_key, tmp_path
    await channel.close()
    await server.stop(0)
    await engine.dispose()


def grpc_frame(message) -> bytes:
    data = message.SerializeToString()
    return b"\0" + len(data).to_bytes(4, "big") + data


def check_request(key: str | None, *, path=CHAT, model="demo", rest=True, extra=None):
    headers = {"content-type": "application/grpc"}
    if rest:
        headers["x-envoy-original-path"] = "/v1/chat/completions"
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    headers.update(extra or {})
    body = router_pb.OpenAIChatCompletionsRequest(
        http_body=httpbody_pb2.HttpBody(
            content_type="application/json",
            data=orjson.dumps({"model": model, "messages": [{"role": "user", "content": "x"}]}),
        )
    )
    http = attribute_context_pb2.AttributeContext.HttpRequest(
        method="POST", path=path, headers=headers, raw_body=grpc_frame(body)
    )
    return external_auth_pb2.CheckRequest(
        attributes=attribute_context_pb2.AttributeContext(
            request=attribute_context_pb2.AttributeContext.Request(http=http)
        )
    )


def admin_metadata(tenant_id: str):
    return (("x-lockgate-tenant-id", tenant_id), ("x-lockgate-roles", "platform_admin"))


async def test_admin_key_file_is_private(auth):
    *_, data_dir = auth
    assert (data_dir / "admin.key").stat().st_mode & 0o777 == 0o600


async def test_allowed_request_gets_identity_and_loses_credential_and_spoofs(auth):
    check, _, admin_key, _ = auth
    reply = await check.Check(
        check_request(admin_key, extra={"x-lockgate-tenant-id": "evil", "x-lockgate-x": "1"})
    )
    assert reply.status.code == code_pb2.OK
    added = {h.header.key: h.header.value for h in reply.ok_response.headers}
    assert added["x-lockgate-tenant-id"].startswith("ten_")
    assert added["x-lockgate-key-id"].startswith("key_")
    assert added["x-lockgate-roles"] == "platform_admin"
    assert "authorization" in reply.ok_response.headers_to_remove
    assert "x-lockgate-x" in reply.ok_response.headers_to_remove


@pytest.mark.parametrize(
    ("key", "status", "code"),
    [
        (None, 401, "missing_api_key"),
        ("lg_unknown1_" + "a" * 32, 401, "invalid_api_key"),
        ("' OR '1'='1", 401, "invalid_api_key"),
        ("x" * 5000, 401, "invalid_api_key"),
    ],
)
async def test_denials_are_openai_shaped(auth, key, status, code):
    check, *_ = auth
    reply = await check.Check(check_request(key))
    assert reply.denied_response.status.code == status
    body = orjson.loads(reply.denied_response.body)
    assert body["error"]["code"] == code
    assert body["error"]["type"] == "authentication_error"
    assert key is None or key not in reply.denied_response.body


async def test_model_scoped_key_is_403_for_other_models(auth):
    check, admin, admin_key, _ = auth
    tenants = await admin.ListTenants(pb.ListTenantsRequest(), metadata=admin_metadata("x"))
    tenant_id = tenants.tenants[0].id
    created = await admin.CreateApiKey(
        pb.CreateApiKeyRequest(tenant="default", name="scoped", models=["other"]),
        metadata=admin_metadata(tenant_id),
    )
    denied = await check.Check(check_request(created.secret, model="demo"))
    assert denied.denied_response.status.code == 403
    assert orjson.loads(denied.denied_response.body)["error"]["code"] == "model_not_allowed"
    allowed = await check.Check(check_request(created.secret, model="other"))
    assert allowed.status.code == code_pb2.OK

    await admin.RevokeApiKey(
        pb.RevokeApiKeyRequest(tenant="default", key_id=created.key.id),
        metadata=admin_metadata(tenant_id),
    )
    revoked = await check.Check(check_request(created.secret, model="other"))
    assert revoked.denied_response.status.code == 401


async def test_grpc_callers_get_plain_messages(auth):
    check, *_ = auth
    reply = await check.Check(check_request(None, rest=False))
    assert reply.status.code == code_pb2.UNAUTHENTICATED
    assert not reply.denied_response.body.startswith("{")


async def test_internal_methods_are_denied_at_the_edge(auth):
    check, _, admin_key, _ = auth
    reply = await check.Check(
        check_request(admin_key, path="/lockgate.ledger.v1.LedgerService/RecordUsage")
    )
    assert reply.denied_response.status.code == 403


async def test_decisions_are_cached_per_principal_request_and_policy_revision(tmp_path):
    settings = AuthSettings(data_dir=tmp_path, grpc_port=0)
    _server, service, engine = await build(settings)
    checker = Checker(service, PolicyEngine())
    evaluations = []
    evaluate = checker.policy.evaluate
    checker.policy.evaluate = lambda entry, inp: evaluations.append(inp) or evaluate(entry, inp)
    admin_key = (tmp_path / "admin.key").read_text().strip()
    try:
        for _ in range(3):
            assert (await checker.check(check_request(admin_key))).status.code == code_pb2.OK
        assert len(evaluations) == 1
        await checker.check(check_request(admin_key, model="other"))  # another request
        assert len(evaluations) == 2
        checker.policy.revision = "edited"  # a policy or data edit: decide again
        await checker.check(check_request(admin_key))
        assert len(evaluations) == 3
    finally:
        await engine.dispose()
