"""auth's HTTP access check (what Envoy's ext_authz http_service calls), served
in process on port 0 by the real auth service: the same verdicts as the gRPC
Check, and an HTTP/1.1 server that holds up to bad and pipelined input."""

from __future__ import annotations

import asyncio

import grpc
import orjson
import pytest
from envoy.service.auth.v3 import external_auth_pb2_grpc as authz_grpc
from google.rpc import code_pb2

from services.auth.app import AuthSettings, build
from services.auth.check import Allowed, Checker, Denied
from services.auth.check_http import encode_verdict
from tests.integration.auth_harness import CHAT, check_request
from tests.integration.http_wire import exchange

INTERNAL = "/lockgate.ledger.v1.LedgerService/RecordUsage"


@pytest.fixture
async def auth(tmp_path):
    settings = AuthSettings(data_dir=tmp_path, grpc_port=0, check_port=0,
                            check_max_body_bytes=64 * 1024)
    server, service, engine = await build(settings)
    grpc_port = await server.start()
    http_port = next(t for t in server.background if hasattr(t, "listen")).port
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}")
    admin_key = (tmp_path / "admin.key").read_text().strip()
    yield authz_grpc.AuthorizationStub(channel), http_port, admin_key
    await channel.close()
    await server.stop(0)
    await engine.dispose()


def as_http(check) -> bytes:
    """The request Envoy's http_service sends for a CheckRequest."""
    http = check.attributes.request.http
    lines = [f"{http.method} {http.path} HTTP/1.1", "host: auth-check",
             f"content-length: {len(http.raw_body)}"]
    lines += [f"{k}: {v}" for k, v in http.headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + http.raw_body


async def test_allowed_sets_identity_and_removes_credential_and_spoofs(auth):
    _, port, admin_key = auth
    request = check_request(admin_key, extra={"x-lockgate-tenant-id": "evil", "x-lockgate-x": "1"})
    [reply] = await exchange(port, as_http(request))
    assert reply.status == 200
    assert reply.headers["x-lockgate-tenant-id"].startswith("ten_")
    assert reply.headers["x-lockgate-roles"] == "platform_admin"
    removed = {h.strip() for h in reply.headers["x-envoy-auth-headers-to-remove"].split(",")}
    assert {"authorization", "x-lockgate-x"} <= removed
    assert reply.headers["content-length"] == "0"


@pytest.mark.parametrize("case", ["no key", "bad key", "gRPC client", "internal", "admin",
                                  "anthropic"])
async def test_same_verdict_as_the_grpc_check(auth, case):
    """Envoy must see the same decision whichever transport asks for it."""
    check, port, admin_key = auth
    request = {
        "no key": lambda: check_request(None),
        "bad key": lambda: check_request("lg_unknown1_" + "a" * 32),
        "gRPC client": lambda: check_request("lg_unknown1_" + "a" * 32, rest=False),
        "internal": lambda: check_request(admin_key, path=INTERNAL, model="", rest=False),
        "admin": lambda: check_request(admin_key),
        "anthropic": lambda: check_request(
            None, path="/lockgate.router.v1.RouterService/AnthropicMessages"),
    }[case]()
    grpc_reply = await check.Check(request)
    [http_reply] = await exchange(port, as_http(request))
    if grpc_reply.status.code == code_pb2.OK:
        assert http_reply.status == 200
        expected = {h.header.key: h.header.value for h in grpc_reply.ok_response.headers}
        assert {k: v for k, v in http_reply.headers.items() if k.startswith("x-lockgate-")} \
            == expected
        return
    denied = grpc_reply.denied_response
    assert http_reply.status == denied.status.code
    assert http_reply.body.decode() == denied.body
    assert http_reply.headers["content-type"] == denied.headers[0].header.value


@pytest.mark.parametrize("key", ["admin", None, "lg_unknown1_" + "a" * 32])
async def test_an_untranscoded_rest_call_is_decided_as_its_grpc_method(auth, key):
    """Envoy sends POST /v1/chat/completions to the router as it is: the check sees
    the client's path and JSON body, and must decide as for the transcoded call."""
    check, port, admin_key = auth
    key = admin_key if key == "admin" else key
    transcoded = check_request(key, model="demo")
    direct = ("POST /v1/chat/completions HTTP/1.1\r\nhost: auth-check\r\n"
              + (f"authorization: Bearer {key}\r\n" if key else "")
              + "content-type: application/json\r\ncontent-length: {n}\r\n\r\n")
    body = orjson.dumps({"model": "demo", "messages": [{"role": "user", "content": "x"}]})
    [direct_reply] = await exchange(port, direct.format(n=len(body)).encode() + body)
    [transcoded_reply] = await exchange(port, as_http(transcoded))
    assert direct_reply.status == transcoded_reply.status
    assert direct_reply.body == transcoded_reply.body  # OpenAI JSON, not a gRPC message
    lockgate = {k: v for k, v in direct_reply.headers.items() if k.startswith("x-lockgate-")}
    assert lockgate == {k: v for k, v in transcoded_reply.headers.items()
                        if k.startswith("x-lockgate-")}
    if key == admin_key:
        assert lockgate["x-lockgate-model"] == "demo"


async def test_keep_alive_and_pipelined_requests_are_answered_in_order(auth):
    _, port, admin_key = auth
    allowed, denied = as_http(check_request(admin_key)), as_http(check_request(None))
    replies = await exchange(port, allowed + denied + allowed, expect=3)
    assert [r.status for r in replies] == [200, 401, 200]
    assert orjson.loads(replies[1].body)["error"]["code"] == "missing_api_key"


@pytest.mark.parametrize("payload", [
    b"NOT HTTP AT ALL\r\n\r\n",
    b"POST / HTTP/1.1\r\ncontent-length: 100000\r\n\r\n" + b"x" * 100000,
    b"POST / HTTP/1.1\r\n" + b"".join(b"x-h%d: v\r\n" % i for i in range(200)) + b"\r\n",
    b"POST / HTTP/1.1\r\nx-big: " + b"v" * 70000 + b"\r\n\r\n",
])
async def test_bad_requests_get_400_and_the_connection_closes(auth, payload):
    _, port, _ = auth
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)  # EOF: the server closed
    writer.close()
    assert data.startswith(b"HTTP/1.1 400 ")
    # The server is still there for the next connection.
    [reply] = await exchange(port, as_http(check_request(None)))
    assert reply.status == 401


async def test_a_failing_check_answers_503(tmp_path, monkeypatch):
    settings = AuthSettings(data_dir=tmp_path, grpc_port=0, check_port=0)
    server, _service, engine = await build(settings)
    await server.start()
    http_check = next(t for t in server.background if hasattr(t, "listen"))

    async def broken(_request):
        raise RuntimeError("boom")

    monkeypatch.setattr(Checker, "decide", broken)
    try:
        [reply] = await exchange(http_check.port, as_http(check_request(None, path=CHAT)))
        assert reply.status == 503  # Envoy: failure of the access check, fail closed
        assert b"boom" not in reply.body
    finally:
        await server.stop(0)
        await engine.dispose()


def test_an_identity_value_cannot_split_the_response():
    verdict = Allowed(upstream_headers={"x-lockgate-tenant-name": "a\r\nx-evil: 1"},
                      remove=(), client_headers=())
    with pytest.raises(ValueError, match="control character"):
        encode_verdict(verdict)


def test_denials_keep_status_type_and_body():
    raw = encode_verdict(Denied(410, "application/json", '{"error":{}}'))
    assert raw.startswith(b"HTTP/1.1 410 Gone\r\n")
    assert b"content-type: application/json\r\n" in raw
    assert raw.endswith(b'\r\n\r\n{"error":{}}')
