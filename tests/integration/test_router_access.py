"""The access check in the router's process (services/router/access.py): a real
auth (its checker, SQLite, the shipped policies) hosted with a real router,
ledger and simulator, called over raw HTTP as Envoy forwards the hot REST
calls when it does not check them itself.

What Envoy's ext_authz did must still happen: identity from the verdict, never
from the client; denials in the caller's dialect with the decision's status;
503 `access_check_unavailable` when no decision can be had; the tenant and key
(or the denial) handed back for the call log, for Envoy to strip."""

from __future__ import annotations

import asyncio
import sqlite3

import orjson
import pytest

from lockgate import edge_access
from lockgate.identity import KEY_ID, TENANT_ID
from lockgate.lean_http import HttpRequest
from lockgate.ledger.v1 import ledger_service_pb2 as ledger_pb
from lockgate.sim.config import SimConfig
from services.auth.app import AuthSettings, assemble
from services.auth.check import Allowed
from services.router.access import InProcessAccess, forwarded_headers
from services.router.app import AccessCheckUnavailable, RouterApp, RouterSettings
from tests.integration.http_wire import exchange, request
from tests.integration.router_harness import running_router, simulators
from tests.integration.test_router_http_edge import CHAT, GATEWAY

MESSAGES = {"model": "demo", "max_tokens": 16,
            "messages": [{"role": "user", "content": "hello"}]}


async def auth_parts(tmp_path, **settings):
    parts = await assemble(AuthSettings(data_dir=tmp_path / "auth", grpc_port=0, **settings))
    return parts, (tmp_path / "auth" / "admin.key").read_text().strip()


@pytest.fixture
async def stack(tmp_path):
    parts, admin_key = await auth_parts(tmp_path)
    async with (
        simulators({"sim": SimConfig(reply_words=10)}) as ports,
        running_router(tmp_path, GATEWAY.format(**ports), access_checker=parts.checker,
                       http_port=0, check_access=True) as rut,
    ):
        yield rut, admin_key
    await parts.engine.dispose()


def post(path: str, body: dict, **headers: str) -> bytes:
    return request("POST", path, orjson.dumps(body),
                   {"content-type": "application/json", **headers})


async def usage_of(rut, tenant: str, request_id: str):
    metadata = ((TENANT_ID, tenant), (KEY_ID, "key_reader"), ("x-lockgate-roles", "tenant_admin"))
    for _ in range(100):
        entries = (await rut.ledger.ListUsage(ledger_pb.ListUsageRequest(),
                                              metadata=metadata)).entries
        found = [e for e in entries if e.request_id == request_id]
        if found:
            return found
        await asyncio.sleep(0.05)
    return []


async def test_an_allowed_call_is_served_as_the_verdicts_identity(stack):
    rut, admin_key = stack
    # The client's own identity headers count for nothing: the verdict's replace them.
    [reply] = await exchange(rut.app.http_edge.port, post(
        "/v1/chat/completions", CHAT, authorization=f"Bearer {admin_key}",
        **{"x-request-id": "acc-1", TENANT_ID: "ten_spoofed", "x-lockgate-roles": "x"}))
    assert reply.status == 200, reply.body
    tenant, key = reply.headers[TENANT_ID], reply.headers[KEY_ID]
    assert tenant.startswith("ten_") and tenant != "ten_spoofed" and key.startswith("key_")
    assert edge_access.DENIED_HEADER not in reply.headers
    [entry] = await usage_of(rut, tenant, "acc-1")  # metered as the key's tenant
    assert entry.key_id == key
    assert await usage_of(rut, "ten_spoofed", "acc-1") == []


@pytest.mark.parametrize(("path", "body", "headers", "code"), [
    ("/v1/chat/completions", CHAT, {}, "missing_api_key"),
    ("/v1/chat/completions", CHAT, {"authorization": "Bearer lg_nope_nope"}, "invalid_api_key"),
    ("/v1/messages", MESSAGES, {"x-api-key": "lg_nope_nope"}, "anthropic"),
])
async def test_a_denial_is_the_decisions_answer_marked_for_the_call_log(
        stack, path, body, headers, code):
    rut, _ = stack
    [reply] = await exchange(rut.app.http_edge.port, post(path, body, **headers))
    assert reply.status == 401
    assert reply.headers["content-type"] == "application/json"
    assert reply.headers[edge_access.DENIED_HEADER]
    assert TENANT_ID not in reply.headers
    error = orjson.loads(reply.body)
    if code == "anthropic":  # in the caller's dialect
        assert error["type"] == "error" and error["error"]["type"] == "authentication_error"
    else:
        assert (error["error"]["type"], error["error"]["code"]) == ("authentication_error", code)


async def test_no_decision_is_503_access_check_unavailable(tmp_path):
    # A registry that never answers: governance is not loaded, so the policy has
    # no decision to give (a 503 decision, which Envoy would turn into its own 503).
    parts, admin_key = await auth_parts(tmp_path, registry_address="127.0.0.1:9")
    try:
        async with (
            simulators({"sim": SimConfig()}) as ports,
            running_router(tmp_path, GATEWAY.format(**ports), access_checker=parts.checker,
                           http_port=0, check_access=True) as rut,
        ):
            [reply] = await exchange(rut.app.http_edge.port, post(
                "/v1/chat/completions", CHAT, authorization=f"Bearer {admin_key}"))
    finally:
        await parts.engine.dispose()
    assert reply.status == 503
    assert orjson.loads(reply.body) == {"error": {
        "message": edge_access.UNAVAILABLE_MESSAGE, "type": "api_error", "param": None,
        "code": "access_check_unavailable"}}
    assert reply.headers[edge_access.DENIED_HEADER]


#: Well formed, never issued: resolving it has to ask auth's database.
UNKNOWN_KEY = "lg_abcdefgh_" + "a" * 32


def unavailable_answer(answer) -> bool:
    return (isinstance(answer, bytes) and answer.startswith(b"HTTP/1.1 503 ")
            and edge_access.UNAVAILABLE_CODE.encode() in answer)


def chat_request(key: str) -> HttpRequest:
    return HttpRequest("POST", "/v1/chat/completions",
                       {"authorization": f"Bearer {key}"}, orjson.dumps(CHAT))


async def test_a_check_stuck_on_auths_database_fails_closed_in_time(tmp_path, caplog):
    parts, _ = await auth_parts(tmp_path)
    await parts.engine.dispose()  # its pooled connections would keep the lock away
    # Another connection holds auth's database exclusively: reads wait for it.
    locker = sqlite3.connect(tmp_path / "auth" / "auth.db", isolation_level=None)
    locker.execute("PRAGMA locking_mode=EXCLUSIVE")
    locker.execute("BEGIN EXCLUSIVE")
    try:
        access = InProcessAccess(parts.checker, timeout_seconds=0.2)
        started = asyncio.get_running_loop().time()
        answer = await access.check(chat_request(UNKNOWN_KEY))
        assert asyncio.get_running_loop().time() - started < 2
    finally:
        locker.execute("ROLLBACK")
        locker.close()
        await parts.engine.dispose()
    assert unavailable_answer(answer)
    assert "access check timed out" in caplog.text  # waited, did not fail at once


async def test_a_check_that_fails_fails_closed(tmp_path, caplog):
    parts, _ = await auth_parts(tmp_path)
    # Auth's database is gone: the key lookup raises.
    await parts.engine.dispose()
    for path in (tmp_path / "auth").glob("auth.db*"):
        path.unlink()
    try:
        answer = await InProcessAccess(parts.checker).check(chat_request(UNKNOWN_KEY))
    finally:
        await parts.engine.dispose()
    assert unavailable_answer(answer)
    assert "access check failed" in caplog.text


async def test_the_check_comes_before_the_routers_own_404(stack):
    # Envoy routes by path alone: any method may arrive. No key, no answer but 401.
    rut, admin_key = stack
    port = rut.app.http_edge.port
    [denied] = await exchange(port, request("GET", "/v1/chat/completions"))
    assert denied.status == 401 and denied.headers[edge_access.DENIED_HEADER]
    [allowed] = await exchange(port, request("GET", "/v1/chat/completions", b"",
                                             {"authorization": f"Bearer {admin_key}"}))
    # Allowed (the admin may call anything), then unknown: logged with its tenant.
    assert allowed.status == 404 and allowed.headers[TENANT_ID].startswith("ten_")


def test_forwarded_headers_apply_the_verdict_as_ext_authz_does():
    verdict = Allowed(upstream_headers={TENANT_ID: "ten_a", KEY_ID: "key_a"},
                      remove=("authorization", "x-lockgate-roles"), client_headers=())
    headers = {"authorization": "Bearer lg_secret", TENANT_ID: "ten_spoofed",
               "x-lockgate-roles": "platform_admin", "content-type": "application/json"}
    assert dict(forwarded_headers(headers, verdict)) == {
        "content-type": "application/json", TENANT_ID: "ten_a", KEY_ID: "key_a"}


async def test_a_router_told_to_check_access_without_auth_will_not_start(tmp_path):
    config = tmp_path / "gateway.yaml"
    config.write_text(GATEWAY.format(sim=1))
    app = RouterApp(RouterSettings(data_dir=tmp_path, grpc_port=0, http_port=0,
                                   gateway_config=config, check_access=True))
    try:
        with pytest.raises(AccessCheckUnavailable, match="auth is not hosted"):
            await app.build_server()
        assert app.http_edge is None  # nothing listens unchecked
    finally:
        await app.close()
