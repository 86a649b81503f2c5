"""Ledger over gRPC (in-process server on port 0) on SQLite and PostgreSQL."""

from __future__ import annotations

import grpc
import pytest

from lockgate.common.v1 import common_pb2
from lockgate.identity import KEY_ID, TENANT_ID
from lockgate.ledger.v1 import ledger_service_pb2 as pb
from lockgate.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from services.ledger.app import LedgerSettings, build


@pytest.fixture
async def ledger(database_url, tmp_path):
    settings = LedgerSettings(database_url=database_url, data_dir=tmp_path, grpc_port=0)
    server, _service, engine = await build(settings)
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield pb_grpc.LedgerServiceStub(channel)
    await channel.close()
    await server.stop(0)
    await engine.dispose()


def entry(request_id: str, tenant: str = "ten_a", tokens: int = 5) -> pb.UsageEntry:
    return pb.UsageEntry(
        request_id=request_id,
        tenant_id=tenant,
        key_id="key_1",
        alias="demo",
        provider="openai",
        provider_model="sim-small",
        usage=common_pb2.TokenUsage(input_tokens=tokens, output_tokens=2 * tokens),
        latency_ms=12,
        status="ok",
    )


def as_tenant(tenant: str):
    return ((TENANT_ID, tenant), (KEY_ID, "key_1"))


async def test_record_is_idempotent_on_request_id(ledger):
    first = await ledger.RecordUsage(pb.RecordUsageRequest(entries=[entry("r1"), entry("r2")]))
    assert (first.inserted, first.duplicates) == (2, 0)
    again = await ledger.RecordUsage(
        pb.RecordUsageRequest(entries=[entry("r2"), entry("r3"), entry("r3")])
    )
    assert (again.inserted, again.duplicates) == (1, 2)
    listed = await ledger.ListUsage(pb.ListUsageRequest(), metadata=as_tenant("ten_a"))
    assert [e.request_id for e in listed.entries] == ["r3", "r2", "r1"]
    assert listed.entries[0].usage.output_tokens == 10
    assert listed.entries[0].usage.total_tokens == 15
    assert listed.entries[0].create_time.seconds > 0


async def test_list_is_scoped_to_callers_tenant_and_paginated(ledger):
    await ledger.RecordUsage(
        pb.RecordUsageRequest(entries=[entry(f"a{i}") for i in range(5)] + [entry("b1", "ten_b")])
    )
    page = await ledger.ListUsage(pb.ListUsageRequest(page_size=2), metadata=as_tenant("ten_a"))
    assert [e.request_id for e in page.entries] == ["a4", "a3"]
    seen = [e.request_id for e in page.entries]
    while page.next_page_token:
        page = await ledger.ListUsage(
            pb.ListUsageRequest(page_size=2, page_token=page.next_page_token),
            metadata=as_tenant("ten_a"),
        )
        seen += [e.request_id for e in page.entries]
    assert seen == ["a4", "a3", "a2", "a1", "a0"]
    other = await ledger.ListUsage(pb.ListUsageRequest(), metadata=as_tenant("ten_b"))
    assert [e.request_id for e in other.entries] == ["b1"]


async def test_bad_input_gets_invalid_argument(ledger):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await ledger.RecordUsage(pb.RecordUsageRequest(entries=[pb.UsageEntry(tenant_id="t")]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await ledger.ListUsage(pb.ListUsageRequest(page_token="%%%"), metadata=as_tenant("t"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await ledger.ListUsage(pb.ListUsageRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
