"""The ledger's HTTP/1.1 Admit (real ledger, in process on free ports) and the
lean HTTP client the router asks it with: same answers as the gRPC Admit,
clear refusals of bad input, and failures the router can act on."""

from __future__ import annotations

import asyncio

import pytest

from lockgate import ledger_admit_http as admit_http
from lockgate.identity import KEY_ID, ROLES, TENANT_ID
from lockgate.lean_http import HttpCallFailed, LeanHttpClient, LeanHttpServer, response
from lockgate.ledger.v1 import ledger_service_pb2 as pb
from tests.conftest import free_port

ADMIN = ((TENANT_ID, "ten_a"), (KEY_ID, "key_admin"), (ROLES, "tenant_admin"))


def admit_request(request_id: str, cost: int) -> pb.AdmitRequest:
    return pb.AdmitRequest(request_id=request_id, tenant_id="ten_a", key_id="key_a",
                           alias="demo", max_cost_micro_usd=cost, estimated_tokens=10,
                           reservation_ttl_seconds=60)


async def ask(client: LeanHttpClient, request: pb.AdmitRequest) -> pb.AdmitResponse:
    reply = await client.post(admit_http.PATH, request.SerializeToString(),
                              admit_http.CONTENT_TYPE, within=5)
    assert reply.status == 200, reply.body
    return pb.AdmitResponse.FromString(reply.body)


async def test_http_and_grpc_admit_reserve_on_the_same_budget(admit_ledger):
    stub, client = admit_ledger
    await stub.SetBudget(pb.SetBudgetRequest(scope="tenant", scope_id="ten_a",
                                             amount_micro_usd=1000, period="day", hard=True),
                         metadata=ADMIN)
    assert (await ask(client, admit_request("r1", 600))).admitted
    # The reservation made over HTTP counts against what gRPC may reserve, and back.
    refused = await stub.Admit(admit_request("r2", 600))
    assert not refused.admitted and refused.code == "budget_exceeded"
    assert (await stub.Admit(admit_request("r3", 300))).admitted
    refused = await ask(client, admit_request("r4", 300))
    assert not refused.admitted and refused.code == "budget_exceeded"
    # Nothing applies to another tenant: the router may skip asking for a while.
    other = admit_request("r5", 10)
    other.tenant_id = "ten_b"
    assert (await ask(client, other)).unrestricted_ttl_ms > 0


async def test_many_concurrent_calls_share_a_bounded_pool(admit_ledger):
    _, client = admit_ledger
    replies = await asyncio.gather(*(ask(client, admit_request(f"c{i}", 1)) for i in range(200)))
    assert all(r.admitted for r in replies)
    assert len(client.idle) <= 32


@pytest.mark.parametrize(("path", "body", "status", "text"), [
    (admit_http.PATH, b"\xff\xff not protobuf", 400, b"not an AdmitRequest"),
    (admit_http.PATH, pb.AdmitRequest(tenant_id="ten_a").SerializeToString(), 400,
     b"request_id is required"),
    ("/lockgate.ledger.v1.LedgerService/RecordUsage", b"", 404, b"unknown path"),
])
async def test_bad_requests_are_refused_clearly(admit_ledger, path, body, status, text):
    _, client = admit_ledger
    reply = await client.post(path, body, admit_http.CONTENT_TYPE, within=5)
    assert reply.status == status
    assert text in reply.body


async def test_an_unreachable_server_fails_fast_and_clearly():
    client = LeanHttpClient("127.0.0.1", free_port())
    with pytest.raises(HttpCallFailed, match="cannot reach"):
        await client.post("/x", b"", "text/plain", within=2)


async def test_a_slow_server_times_out_and_its_connection_is_not_reused():
    release = asyncio.Event()
    calls = 0

    async def handler(request):
        nonlocal calls
        calls += 1
        if calls == 1:
            await release.wait()
        return response(200, body=b"ok")

    server = LeanHttpServer("slow", handler, "127.0.0.1", 0, 1024)
    port = await server.listen()
    client = LeanHttpClient("127.0.0.1", port)
    try:
        with pytest.raises(HttpCallFailed, match="no answer within"):
            await client.post("/x", b"", "text/plain", within=0.2)
        assert client.idle == []  # the late answer can never be read as the next one's
        release.set()
        reply = await client.post("/x", b"", "text/plain", within=2)
        assert (reply.status, reply.body) == (200, b"ok")
    finally:
        client.close()
        await server.close()
