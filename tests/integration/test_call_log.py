"""Call log: Envoy's access log stream into an in-process ledger (SQLite and
PostgreSQL), batching, backpressure, retention, ListCalls isolation and the
link to usage entries, logged bodies."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from envoy.data.accesslog.v3 import accesslog_pb2 as log_pb
from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc
from sqlalchemy import event, text

from lockgate.db import open_database
from lockgate.edge_access import METADATA_NAMESPACE
from lockgate.grpc_server import GrpcService
from lockgate.identity import KEY_ID, ROLES, TENANT_ID
from lockgate.ledger.v1 import ledger_service_pb2 as pb
from lockgate.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from lockgate.settings import ServiceSettings
from services.ledger import als
from services.ledger.app import MIGRATIONS, LedgerSettings, build
from services.ledger.call_log_retention import CallLogRetention
from services.ledger.call_log_writer import CallLogWriter


def access_entry(request_id: str, tenant: str = "", key: str = "", *, path: str = "/x",
                 original_path: str = "", code: int = 200, started: datetime | None = None,
                 cluster: str = "router", denied: bool = False) -> log_pb.HTTPAccessLogEntry:
    entry = log_pb.HTTPAccessLogEntry()
    common = entry.common_properties
    common.start_time.FromDatetime(started or datetime.now(UTC))
    common.duration.FromMilliseconds(42)
    common.upstream_cluster = cluster
    common.upstream_remote_address.socket_address.address = "127.0.0.1"
    common.upstream_remote_address.socket_address.port_value = 50062
    if denied:
        common.response_flags.unauthorized_details.reason = (
            log_pb.ResponseFlags.Unauthorized.EXTERNAL_SERVICE
        )
    entry.request.request_id = request_id
    entry.request.request_method = 3  # POST
    entry.request.path = path
    entry.request.original_path = original_path
    entry.request.request_body_bytes = 120
    if tenant:
        entry.request.request_headers[TENANT_ID] = tenant
    if key:
        entry.request.request_headers[KEY_ID] = key
    entry.response.response_code.value = code
    entry.response.response_body_bytes = 345
    return entry


async def stream_entries(stub, entries, per_message: int = 100):
    async def messages():
        for start in range(0, len(entries), per_message):
            message = als_pb2.StreamAccessLogsMessage()
            message.identifier.log_name = "lockgate"
            message.http_logs.log_entry.extend(entries[start:start + per_message])
            yield message

    await stub.StreamAccessLogs(messages())


def identity(tenant: str, key: str = "key_1", roles: str = "developer"):
    return ((TENANT_ID, tenant), (KEY_ID, key), (ROLES, roles))


@pytest.fixture
def ledger_settings() -> dict:
    """Extra LedgerSettings of the `ledger` fixture (parametrize to change)."""
    return {}


@pytest.fixture
async def ledger(ledger_settings, database_url, tmp_path):
    settings = LedgerSettings(database_url=database_url, data_dir=tmp_path, grpc_port=0,
                              **ledger_settings)
    server, _service, engine = await build(settings)
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")

    class Ledger:
        stub = pb_grpc.LedgerServiceStub(channel)
        als = als_pb2_grpc.AccessLogServiceStub(channel)

    Ledger.engine = engine
    yield Ledger
    await channel.close()
    await server.stop(0)
    await engine.dispose()


async def calls_of(ledger, tenant: str, *, want: int, key="key_1", roles="developer",
                   request_id: str = "", within: float = 10.0) -> list[pb.CallRecord]:
    """ListCalls until `want` records show (the writer batches every 200 ms)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        reply = await ledger.stub.ListCalls(
            pb.ListCallsRequest(page_size=1000, request_id=request_id),
            metadata=identity(tenant, key, roles))
        if len(reply.calls) >= want or asyncio.get_running_loop().time() > deadline:
            return list(reply.calls)
        await asyncio.sleep(0.05)


async def stored_calls(engine, *, want: int, within: float = 10.0) -> int:
    """Rows in call_log, once there are `want` (or the timeout passed)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        async with engine.connect() as conn:
            found = (await conn.execute(text("SELECT count(*) FROM call_log"))).scalar()
        if found >= want or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.05)


async def test_access_log_entries_become_call_records(ledger):
    await stream_entries(ledger.als, [
        access_entry("r1", "ten_a", "key_1", path="/lockgate.router.v1.RouterService/Chat",
                     original_path="/v1/chat/completions?api_key=sk-secretsecretsecret0&x=1"),
    ])
    [call] = await calls_of(ledger, "ten_a", want=1)
    assert call.request_id == "r1"
    assert (call.http_method, call.response_code, call.duration_ms) == ("POST", 200, 42)
    # The client's path, not the transcoded one; the credential in it is gone.
    assert call.path == "/v1/chat/completions?api_key=[REDACTED]&x=1"
    assert (call.request_bytes, call.response_bytes) == (120, 345)
    assert (call.upstream_cluster, call.upstream_host) == ("router", "127.0.0.1:50062")
    assert (call.tenant_id, call.key_id) == ("ten_a", "key_1")
    assert not call.HasField("usage")  # nothing metered for it


async def test_denied_calls_are_logged_but_listed_to_no_tenant(ledger):
    await stream_entries(ledger.als, [
        access_entry("denied-1", code=401, cluster="", denied=True),
        access_entry("ok-1", "ten_a"),
    ])
    assert [c.request_id for c in await calls_of(ledger, "ten_a", want=1)] == ["ok-1"]
    async with ledger.engine.connect() as conn:
        row = (await conn.execute(text(
            "SELECT tenant_id, response_code, response_flags FROM call_log"
            " WHERE request_id = 'denied-1'"))).one()
    assert tuple(row) == ("", 401, "UAEX")
    # An empty tenant in the caller's identity is no way in either.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await ledger.stub.ListCalls(pb.ListCallsRequest(), metadata=((TENANT_ID, ""),))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def checked_by_router(entry, tenant: str = "", key: str = "", denied: bool = False):
    """The entry of a call the router checked itself: identity in the metadata."""
    fields = entry.common_properties.metadata.filter_metadata[METADATA_NAMESPACE].fields
    if tenant:
        fields["tenant_id"].string_value = tenant
    if key:
        fields["key_id"].string_value = key
    if denied:
        fields["denied"].string_value = "1"
    return entry


async def test_calls_the_router_checked_are_logged_as_ext_authz_ones(ledger):
    await stream_entries(ledger.als, [
        checked_by_router(access_entry("in-1"), "ten_a", "key_1"),
        checked_by_router(access_entry("in-denied", code=401), denied=True),
        # The metadata is the router's word: a request header copy does not count.
        checked_by_router(access_entry("in-2", "ten_spoofed", "key_spoofed"), "ten_a", "key_2"),
    ])
    calls = {c.request_id: c for c in await calls_of(ledger, "ten_a", want=2)}
    assert (calls["in-1"].tenant_id, calls["in-1"].key_id) == ("ten_a", "key_1")
    assert calls["in-1"].upstream_cluster == "router" and calls["in-1"].response_flags == ""
    assert (calls["in-2"].tenant_id, calls["in-2"].key_id) == ("ten_a", "key_2")
    async with ledger.engine.connect() as conn:
        row = (await conn.execute(text(
            "SELECT tenant_id, key_id, response_code, response_flags, upstream_cluster,"
            " upstream_host FROM call_log WHERE request_id = 'in-denied'"))).one()
    # As Envoy logs a denial of its own access check.
    assert tuple(row) == ("", "", 401, "UAEX", "", "")


async def test_many_entries_are_written_in_batches(ledger):
    inserts = []

    def count(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("INSERT INTO CALL_LOG"):
            inserts.append(statement)

    event.listen(ledger.engine.sync_engine, "before_cursor_execute", count)
    try:
        await stream_entries(ledger.als, [access_entry(f"b{i}", "ten_a") for i in range(1200)],
                             per_message=50)
        assert await stored_calls(ledger.engine, want=1200) == 1200
    finally:
        event.remove(ledger.engine.sync_engine, "before_cursor_execute", count)
    assert len(await calls_of(ledger, "ten_a", want=1000)) == 1000  # one full page
    # 500 rows per INSERT at most, at least one per 200 ms: never one per entry.
    assert 3 <= len(inserts) <= 30, len(inserts)


async def test_list_calls_tenant_isolation_pages_filter_and_usage_link(ledger):
    await stream_entries(ledger.als, [
        *(access_entry(f"a{i}", "ten_a") for i in range(5)),
        access_entry("shared-id", "ten_b"),
        access_entry("b1", "ten_b"),
    ])
    # Usage of a1 (tenant A), and an entry with B's request id recorded for tenant A:
    # a call is linked to usage of the same request id *and* tenant only.
    await ledger.stub.RecordUsage(pb.RecordUsageRequest(entries=[
        pb.UsageEntry(request_id="a1", tenant_id="ten_a", alias="demo", status="ok"),
        pb.UsageEntry(request_id="shared-id", tenant_id="ten_a", alias="demo", status="ok"),
    ]))
    await calls_of(ledger, "ten_a", want=5)
    page = await ledger.stub.ListCalls(pb.ListCallsRequest(page_size=2),
                                       metadata=identity("ten_a"))
    seen = [c.request_id for c in page.calls]
    while page.next_page_token:
        page = await ledger.stub.ListCalls(
            pb.ListCallsRequest(page_size=2, page_token=page.next_page_token),
            metadata=identity("ten_a"))
        seen += [c.request_id for c in page.calls]
    assert seen == ["a4", "a3", "a2", "a1", "a0"]

    [a1] = await calls_of(ledger, "ten_a", want=1, request_id="a1")
    assert a1.usage.request_id == "a1" and a1.usage.alias == "demo"
    b_calls = await calls_of(ledger, "ten_b", want=2)
    assert [c.request_id for c in b_calls] == ["b1", "shared-id"]
    assert not any(c.HasField("usage") for c in b_calls)  # A's entry is not B's usage
    # Another tenant's request id answers like a missing one.
    assert await calls_of(ledger, "ten_a", want=1, request_id="b1", within=0.3) == []
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await ledger.stub.ListCalls(pb.ListCallsRequest(page_token="garbage"),
                                    metadata=identity("ten_a"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_logged_bodies_go_to_call_bodies_and_only_to_their_readers(ledger):
    bodied = pb.UsageEntry(request_id="r-body", tenant_id="ten_a", key_id="key_owner",
                           alias="demo", request_body='{"q": "[REDACTED:email]"}',
                           response_body="hello")
    result = await ledger.stub.RecordUsage(pb.RecordUsageRequest(entries=[bodied]))
    assert result.inserted == 1
    # A resend (the router's retry) keeps the first bodies.
    resent = pb.UsageEntry()
    resent.CopyFrom(bodied)
    resent.response_body = "changed"
    assert (await ledger.stub.RecordUsage(pb.RecordUsageRequest(entries=[resent]))).duplicates == 1
    await stream_entries(ledger.als, [access_entry("r-body", "ten_a", "key_owner")])

    [own] = await calls_of(ledger, "ten_a", want=1, key="key_owner")
    assert (own.request_body, own.response_body) == ('{"q": "[REDACTED:email]"}', "hello")
    [admin] = await calls_of(ledger, "ten_a", want=1, key="key_admin", roles="tenant_admin")
    assert admin.response_body == "hello"
    [other] = await calls_of(ledger, "ten_a", want=1, key="key_other")
    assert (other.request_body, other.response_body) == ("", "")
    assert other.usage.request_id == "r-body"  # the usage is still the tenant's to see
    # Another tenant's admin sees neither the call nor its bodies.
    assert await calls_of(ledger, "ten_b", want=1, roles="tenant_admin", within=0.3) == []
    async with ledger.engine.connect() as conn:
        bodies = (await conn.execute(text(
            "SELECT tenant_id, response_body FROM call_bodies"))).all()
    assert [tuple(b) for b in bodies] == [("ten_a", "hello")]


@pytest.mark.parametrize("ledger_settings", [{"call_log_retention_days": 0}])  # no own pruning
async def test_retention_deletes_old_calls_and_bodies_in_chunks(ledger, database_url):
    now = datetime.now(UTC)
    await stream_entries(ledger.als, [
        *(access_entry(f"old{i}", "ten_a", started=now - timedelta(days=40)) for i in range(7)),
        access_entry("new", "ten_a"),
    ])
    await ledger.stub.RecordUsage(pb.RecordUsageRequest(entries=[
        pb.UsageEntry(request_id="new", tenant_id="ten_a", request_body="q", response_body="a"),
    ]))
    await calls_of(ledger, "ten_a", want=8)
    _engine, sessions = await open_database(database_url, MIGRATIONS, "alembic_version_ledger")
    try:
        retention = CallLogRetention(sessions, timedelta(days=30), chunk=3, pause=0)
        pruned = await retention.prune(now)
        assert (pruned.calls, pruned.bodies) == (7, 0)
        assert [c.request_id for c in await calls_of(ledger, "ten_a", want=1)] == ["new"]
        later = await retention.prune(now + timedelta(days=31))
        assert (later.calls, later.bodies) == (1, 1)
    finally:
        await _engine.dispose()


@pytest.mark.parametrize("ledger_settings", [
    {"call_log_retention_days": 1, "call_log_prune_interval_seconds": 0.2}])
async def test_the_ledger_prunes_on_its_own_with_a_short_retention(ledger):
    await stream_entries(ledger.als, [
        access_entry("stale", "ten_a", started=datetime.now(UTC) - timedelta(days=2)),
        access_entry("fresh", "ten_a"),
    ])
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        ids = [c.request_id for c in await calls_of(ledger, "ten_a", want=1)]
        if ids == ["fresh"] or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.1)
    assert ids == ["fresh"]


async def _als_server(writer: CallLogWriter) -> tuple[GrpcService, als_pb2_grpc.AccessLogServiceStub,
                                                      grpc.aio.Channel]:
    server = GrpcService("ledger-als-test", ServiceSettings(grpc_port=0),
                         lambda s: als.add_to_server(writer, s))
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    return server, als_pb2_grpc.AccessLogServiceStub(channel), channel


async def test_a_full_queue_stops_reading_the_stream(database_url, tmp_path):
    engine, sessions = await open_database(database_url, MIGRATIONS, "alembic_version_ledger")
    writer = CallLogWriter(sessions, max_queue=10, batch_rows=4, flush_interval=0.05)
    server, stub, channel = await _als_server(writer)
    try:
        sent = 0

        async def messages():
            nonlocal sent
            for i in range(40):
                message = als_pb2.StreamAccessLogsMessage()
                message.http_logs.log_entry.append(access_entry(f"q{i}", "ten_a"))
                sent += 1
                yield message

        call = stub.StreamAccessLogs(messages())
        await asyncio.sleep(0.5)
        # The writer is not running: the queue filled up and the stream stopped being read.
        assert writer.queued == 10
        assert not call.done()
        writer.start()  # the database catches up; the rest of the stream is read
        await asyncio.wait_for(call, 10)
        await writer.close()
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM call_log"))).scalar() == 40
        assert sent == 40
    finally:
        await channel.close()
        await server.stop(0)
        await engine.dispose()


async def test_close_writes_what_is_queued(database_url):
    engine, sessions = await open_database(database_url, MIGRATIONS, "alembic_version_ledger")
    # A long flush interval and big batches: only close() can get these written now.
    writer = CallLogWriter(sessions, batch_rows=10_000, flush_interval=60)
    writer.start()
    try:
        for i in range(25):
            await writer.put(als.call_record(access_entry(f"c{i}", "ten_a")))
        await asyncio.wait_for(writer.close(), 10)
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM call_log"))).scalar() == 25
    finally:
        await engine.dispose()
