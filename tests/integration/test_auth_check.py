"""auth's ext_authz Check over gRPC (in-process server on port 0), with the real
policy: what Envoy sees for allowed, denied and spoofed requests."""

from __future__ import annotations

import grpc
import orjson
import pytest
from envoy.service.auth.v3 import external_auth_pb2_grpc as authz_grpc
from google.rpc import code_pb2

from lockgate.auth.v1 import auth_service_pb2 as pb
from lockgate.auth.v1 import auth_service_pb2_grpc as pb_grpc
from lockgate.policy import PolicyEngine
from services.auth.app import AuthSettings, build
from services.auth.check import Checker
from tests.integration.auth_harness import admin_call, check_request


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


@pytest.mark.parametrize(("model", "sent"), [
    ("demo", "demo"),
    ("gpt-4o:2024-08-06", "gpt-4o:2024-08-06"),
    ("demo\r\nx-evil: 1", None),
    ("modèle", None),
    ("m" * 300, None),
])
async def test_the_model_header_carries_only_header_safe_names(auth, model, sent):
    """x-lockgate-model (for the edge rate limiter) comes from the client's body."""
    check, _, admin_key, _ = auth
    reply = await check.Check(check_request(admin_key, model=model))
    assert reply.status.code == code_pb2.OK
    added = {h.header.key: h.header.value for h in reply.ok_response.headers}
    assert added.get("x-lockgate-model") == sent


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
    created = await admin_call(
        check, admin, admin_key, "CreateApiKey",
        pb.CreateApiKeyRequest(tenant="default", name="scoped", models=["other"]),
    )
    denied = await check.Check(check_request(created.secret, model="demo"))
    assert denied.denied_response.status.code == 403
    assert orjson.loads(denied.denied_response.body)["error"]["code"] == "model_not_allowed"
    allowed = await check.Check(check_request(created.secret, model="other"))
    assert allowed.status.code == code_pb2.OK

    await admin_call(
        check, admin, admin_key, "RevokeApiKey",
        pb.RevokeApiKeyRequest(tenant="default", key_id=created.key.id),
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


async def test_a_failing_policy_engine_fails_closed_and_is_not_cached(tmp_path):
    settings = AuthSettings(data_dir=tmp_path, grpc_port=0)
    _server, service, engine = await build(settings)
    checker = Checker(service, PolicyEngine())
    working = checker.policy.evaluate_async

    async def broken(entrypoint, policy_input):
        raise RuntimeError("engine crashed")

    admin_key = (tmp_path / "admin.key").read_text().strip()
    try:
        checker.policy.evaluate_async = broken
        reply = await checker.check(check_request(admin_key))
        assert reply.status.code != code_pb2.OK
        assert reply.denied_response.status.code == 503
        assert orjson.loads(reply.denied_response.body)["error"]["code"] == "policy_error"
        checker.policy.evaluate_async = working  # the engine recovers: the failure was not cached
        assert (await checker.check(check_request(admin_key))).status.code == code_pb2.OK
    finally:
        await engine.dispose()


async def test_cached_decisions_are_logged_with_their_full_input(tmp_path):
    """A decision cache hit is still one decision-log entry, with the same input
    and result as the evaluated one (kept with the cached decision), and its own id."""
    import json

    from lockgate.decision_log import DecisionLog

    settings = AuthSettings(data_dir=tmp_path, grpc_port=0)
    _server, service, engine = await build(settings)
    log = DecisionLog(tmp_path / "decisions.jsonl", "auth", mask=("/principal/key_id",))
    log.start()
    checker = Checker(service, PolicyEngine(), log)
    admin_key = (tmp_path / "admin.key").read_text().strip()
    try:
        for _ in range(3):
            assert (await checker.check(check_request(admin_key))).status.code == code_pb2.OK
        await checker.check(check_request(None))
    finally:
        await log.close()
        await engine.dispose()
    entries = [json.loads(line) for line in (tmp_path / "decisions.jsonl").read_text().splitlines()]
    assert len(entries) == 4
    first, *hits, denied = entries
    assert all(e["input"] == first["input"] and e["result"] == first["result"] for e in hits)
    assert first["result"]["allow"] is True and denied["result"]["code"] == "missing_api_key"
    assert len({e["decision_id"] for e in entries}) == 4
    # masking copies: the cached input keeps its key id for the next hits and decisions
    assert "key_id" not in first["input"]["principal"]
    assert first["erased"] == ["/input/principal/key_id"]
    cached = next(iter(checker.decisions._entries.values()))
    assert cached.input["principal"]["key_id"].startswith("key_")
