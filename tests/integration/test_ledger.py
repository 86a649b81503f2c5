"""Ledger over gRPC (in-process server on port 0) on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from sqlalchemy import event

from lockgate.common.v1 import common_pb2
from lockgate.db import INSERT_SHAPES
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


async def test_batches_of_any_size_insert_through_a_few_statements(database_url, tmp_path):
    """Every distinct SQL text is prepared and cached per connection by the driver:
    batches of every size must not each bring their own (the ledger grew ~3 KB
    per call when they did)."""
    settings = LedgerSettings(database_url=database_url, data_dir=tmp_path, grpc_port=0)
    server, _service, engine = await build(settings)
    seen: set[str] = set()

    def remember(_conn, _cursor, statement, *_):
        if "INSERT INTO usage_entries" in statement:
            seen.add(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", remember)
    port = await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        api = pb_grpc.LedgerServiceStub(channel)
        n = 0
        for size in range(1, 80):
            batch = [entry(f"s{n + i}") for i in range(size)]
            n += size
            reply = await api.RecordUsage(pb.RecordUsageRequest(entries=batch))
            assert reply.inserted == size
    await server.stop(0)
    await engine.dispose()
    assert 1 <= len(seen) <= len(INSERT_SHAPES)


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


# --- QueryUsage (analytics) ---------------------------------------------------
# The same data and the same expected numbers on SQLite and PostgreSQL: the
# percentiles (percentile_cont there, ranked rows + interpolation here) agree.

BASE = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)

# (request id, minutes after BASE, alias, in, out, latency, ttft, status, streamed, cache hit)
SEED = [
    ("d1", 0.1, "demo", 10, 20, 10, 0, "ok", False, False),
    ("d2", 0.5, "demo", 10, 20, 20, 5, "ok", True, False),
    ("d3", 1.2, "demo", 10, 20, 30, 0, "error", False, False),
    ("d4", 65, "demo", 10, 20, 40, 15, "ok", True, False),
    ("d5", 70, "demo", 10, 20, 100, 0, "ok", False, True),
    ("b1", 2, "big", 1000, 500, 200, 0, "ok", False, False),
    ("b2", 75, "big", 1000, 700, 300, 0, "error", False, False),
]


def seeded(tenant: str = "ten_a", base: datetime = BASE, prefix: str = "") -> list:
    out = []
    for rid, minutes, alias, tin, tout, latency, ttft, status, streamed, hit in SEED:
        e = entry(prefix + rid, tenant)
        e.alias = alias
        e.usage.input_tokens, e.usage.output_tokens = tin, tout
        e.usage.estimated = rid == "d1"
        e.usage.cached_input_tokens = 3 if hit else 0
        e.latency_ms, e.ttft_ms, e.status = latency, ttft, status
        e.error_type = "upstream_unavailable" if status == "error" else ""
        e.streamed, e.cache_hit = streamed, hit
        e.create_time.FromDatetime(base + timedelta(minutes=minutes))
        out.append(e)
    return out


def query(**fields) -> pb.QueryUsageRequest:
    request = pb.QueryUsageRequest(**fields)
    if "start_time" not in fields:
        request.start_time.FromDatetime(BASE)
        request.end_time.FromDatetime(BASE + timedelta(days=1))
    return request


def bucket_of(row) -> datetime | None:
    return row.bucket_start.ToDatetime(tzinfo=UTC) if row.HasField("bucket_start") else None


async def test_query_totals_error_rate_and_percentiles(ledger):
    await ledger.RecordUsage(pb.RecordUsageRequest(entries=seeded()))
    totals = await ledger.QueryUsage(query(), metadata=as_tenant("ten_a"))
    assert len(totals.rows) == 1
    row = totals.rows[0]
    assert not row.HasField("bucket_start") and dict(row.group) == {}
    assert (row.requests, row.errors) == (7, 2)
    assert row.error_rate == pytest.approx(2 / 7)
    assert (row.input_tokens, row.output_tokens, row.total_tokens) == (2050, 1300, 3350)
    assert (row.cached_input_tokens, row.estimated_requests, row.cache_hits) == (3, 1, 1)
    # latencies 10 20 30 40 100 200 300: p50 at rank 3, p95 at 5.7, p99 at 5.94
    assert (row.latency_p50_ms, row.latency_p95_ms, row.latency_p99_ms) == (40.0, 270.0, 294.0)
    assert row.ttft_p50_ms == 10.0  # 5 and 15; entries without a first token do not count
    assert totals.start_time.ToDatetime(tzinfo=UTC) == BASE

    by_alias = await ledger.QueryUsage(query(group_by=["alias"]), metadata=as_tenant("ten_a"))
    rows = {r.group["alias"]: r for r in by_alias.rows}
    assert list(rows) == ["big", "demo"]  # without order_by: by group value
    demo = rows["demo"]
    assert (demo.requests, demo.errors, demo.error_rate) == (5, 1, 0.2)
    # 10 20 30 40 100: p95 at position 3.8 -> 40 + 0.8 * 60
    assert (demo.latency_p50_ms, demo.latency_p95_ms, demo.latency_p99_ms) == (30.0, 88.0, 97.6)
    big = rows["big"]
    assert (big.latency_p50_ms, big.latency_p99_ms, big.ttft_p50_ms) == (250.0, 299.0, 0.0)


async def test_query_buckets_and_top_consumers(ledger):
    await ledger.RecordUsage(pb.RecordUsageRequest(entries=seeded()))
    hourly = await ledger.QueryUsage(
        query(bucket="hour", group_by=["alias"]), metadata=as_tenant("ten_a")
    )
    got = [(bucket_of(r), r.group["alias"], r.requests, r.total_tokens) for r in hourly.rows]
    ten, eleven = BASE, BASE + timedelta(hours=1)
    assert got == [
        (ten, "big", 1, 1500), (ten, "demo", 3, 90), (eleven, "big", 1, 1700),
        (eleven, "demo", 2, 60),
    ]
    minutes = await ledger.QueryUsage(query(bucket="minute"), metadata=as_tenant("ten_a"))
    assert [(bucket_of(r) - BASE, r.requests) for r in minutes.rows] == [
        (timedelta(minutes=0), 2), (timedelta(minutes=1), 1), (timedelta(minutes=2), 1),
        (timedelta(minutes=65), 1), (timedelta(minutes=70), 1), (timedelta(minutes=75), 1),
    ]
    daily = await ledger.QueryUsage(query(bucket="day"), metadata=as_tenant("ten_a"))
    assert [(bucket_of(r), r.requests) for r in daily.rows] == [(BASE.replace(hour=0), 7)]

    top = await ledger.QueryUsage(
        query(group_by=["alias"], order_by="total_tokens", limit=1), metadata=as_tenant("ten_a")
    )
    assert [(r.group["alias"], r.total_tokens) for r in top.rows] == [("big", 3200)]
    by_requests = await ledger.QueryUsage(
        query(group_by=["alias", "status"], order_by="requests"), metadata=as_tenant("ten_a")
    )
    assert [(r.group["alias"], r.group["status"], r.requests) for r in by_requests.rows] == [
        ("demo", "ok", 4), ("big", "error", 1), ("big", "ok", 1), ("demo", "error", 1),
    ]
    flags = await ledger.QueryUsage(
        query(group_by=["streamed", "cache_hit"], order_by="requests"),
        metadata=as_tenant("ten_a"),
    )
    assert [(dict(r.group), r.requests) for r in flags.rows] == [
        ({"streamed": "false", "cache_hit": "false"}, 4),
        ({"streamed": "true", "cache_hit": "false"}, 2),
        ({"streamed": "false", "cache_hit": "true"}, 1),
    ]


async def test_query_is_scoped_to_callers_tenant(ledger):
    now = datetime.now(UTC) - timedelta(hours=2)
    await ledger.RecordUsage(
        pb.RecordUsageRequest(
            entries=seeded("ten_a", now, "a-") + seeded("ten_b", now, "b-")[:2]
        )
    )
    # default range: the last 24 hours
    mine = await ledger.QueryUsage(pb.QueryUsageRequest(), metadata=as_tenant("ten_a"))
    theirs = await ledger.QueryUsage(
        pb.QueryUsageRequest(group_by=["key_id"]), metadata=as_tenant("ten_b")
    )
    assert [r.requests for r in mine.rows] == [7]
    assert [(dict(r.group), r.requests, r.total_tokens) for r in theirs.rows] == [
        ({"key_id": "key_1"}, 2, 60)
    ]
    nobody = await ledger.QueryUsage(pb.QueryUsageRequest(), metadata=as_tenant("ten_c"))
    assert list(nobody.rows) == []
    older = await ledger.QueryUsage(
        query(start_time=stamp(now - timedelta(days=3)), end_time=stamp(now)),
        metadata=as_tenant("ten_a"),
    )
    assert list(older.rows) == []


def stamp(value: datetime):
    from google.protobuf.timestamp_pb2 import Timestamp

    out = Timestamp()
    out.FromDatetime(value)
    return out


@pytest.mark.parametrize(
    "fields",
    [
        {"bucket": "week"},
        {"group_by": ["tenant_id"]},
        {"group_by": ["alias; DROP TABLE usage_entries"]},
        {"group_by": ["alias", "alias"]},
        {"order_by": "latency"},
        {"limit": -1},
        {"limit": 10_001},
        {"start_time": stamp(BASE), "end_time": stamp(BASE - timedelta(hours=1))},
        {"start_time": stamp(BASE), "end_time": stamp(BASE + timedelta(days=91))},
    ],
)
async def test_query_bad_input_gets_invalid_argument(ledger, fields):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await ledger.QueryUsage(query(**fields), metadata=as_tenant("ten_a"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_query_refuses_too_many_rows_and_needs_identity(ledger, monkeypatch):
    import services.ledger.store as store

    await ledger.RecordUsage(pb.RecordUsageRequest(entries=seeded()))
    monkeypatch.setattr(store, "MAX_ROWS", 3)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await ledger.QueryUsage(query(bucket="minute"), metadata=as_tenant("ten_a"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "more than" in err.value.details()
    limited = await ledger.QueryUsage(
        query(bucket="minute", order_by="requests", limit=2), metadata=as_tenant("ten_a")
    )
    assert [r.requests for r in limited.rows] == [2, 1]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await ledger.QueryUsage(query())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_query_sums_cost_and_orders_by_it(ledger):
    entries = seeded(prefix="c-")
    for e in entries:  # priced like the cost the router computes: micro-USD per entry
        e.cost_micro_usd = e.usage.input_tokens * 3 + e.usage.output_tokens * 15
        e.price_source = "config" if e.alias == "big" else ""
        if e.cache_hit:
            e.cost_micro_usd, e.price_source = 0, ""
    await ledger.RecordUsage(pb.RecordUsageRequest(entries=entries), metadata=as_tenant("ten_a"))
    rows = (await ledger.QueryUsage(query(group_by=["alias"], order_by="cost"),
                                    metadata=as_tenant("ten_a"))).rows
    assert [r.group["alias"] for r in rows] == ["big", "demo"]
    assert rows[0].cost_micro_usd == 2000 * 3 + 1200 * 15
    assert rows[1].cost_micro_usd == 4 * (10 * 3 + 20 * 15)  # the cache hit cost nothing
    assert (rows[0].unpriced_requests, rows[1].unpriced_requests) == (0, 4)
    listed = await ledger.ListUsage(pb.ListUsageRequest(page_size=100), metadata=as_tenant("ten_a"))
    big = next(e for e in listed.entries if e.request_id == "c-b1")
    assert (big.cost_micro_usd, big.price_source) == (1000 * 3 + 500 * 15, "config")


# --- Tenancy and governance dimensions; GetLastCall ----------------------------


def governed(request_id: str, tenant: str, team: str, principal: str, api: str, version: str,
             at: datetime, status: str = "ok") -> pb.UsageEntry:
    e = entry(request_id, tenant)
    e.team_id, e.principal, e.api_id, e.api_version = team, principal, api, version
    e.status = status
    e.create_time.FromDatetime(at)
    return e


GOVERNED = [
    governed("g1", "ten_a", "team_x", "user:usr_1", "api_1", "v1", BASE),
    governed("g2", "ten_a", "team_x", "user:usr_2", "api_1", "v1", BASE + timedelta(minutes=5)),
    governed("g3", "ten_a", "team_y", "service_account:sa_1", "api_1", "v2",
             BASE + timedelta(minutes=7)),
    governed("g4", "ten_a", "", "user:usr_1", "", "", BASE + timedelta(minutes=9)),
    # another tenant calling the same API version, later, and failing
    governed("g5", "ten_b", "team_z", "user:usr_9", "api_1", "v1", BASE + timedelta(minutes=30),
             status="error"),
]


async def test_tenancy_and_governance_fields_round_trip(ledger):
    await ledger.RecordUsage(pb.RecordUsageRequest(entries=GOVERNED))
    listed = await ledger.ListUsage(pb.ListUsageRequest(), metadata=as_tenant("ten_a"))
    got = {
        e.request_id: (e.team_id, e.principal, e.api_id, e.api_version) for e in listed.entries
    }
    assert got == {
        "g1": ("team_x", "user:usr_1", "api_1", "v1"),
        "g2": ("team_x", "user:usr_2", "api_1", "v1"),
        "g3": ("team_y", "service_account:sa_1", "api_1", "v2"),
        "g4": ("", "user:usr_1", "", ""),
    }
    # entries written without the fields (older routers) read back as ""
    await ledger.RecordUsage(pb.RecordUsageRequest(entries=[entry("plain")]))
    listed = await ledger.ListUsage(pb.ListUsageRequest(page_size=1), metadata=as_tenant("ten_a"))
    plain = listed.entries[0]
    assert plain.request_id == "plain"
    assert (plain.team_id, plain.principal, plain.api_id, plain.api_version) == ("", "", "", "")


async def test_query_groups_by_tenancy_and_governance_dimensions(ledger):
    await ledger.RecordUsage(pb.RecordUsageRequest(entries=GOVERNED))
    by_team = await ledger.QueryUsage(query(group_by=["team_id"]), metadata=as_tenant("ten_a"))
    assert [(r.group["team_id"], r.requests) for r in by_team.rows] == [
        ("", 1), ("team_x", 2), ("team_y", 1),
    ]
    by_principal = await ledger.QueryUsage(
        query(group_by=["principal"], order_by="requests"), metadata=as_tenant("ten_a")
    )
    assert [(r.group["principal"], r.requests) for r in by_principal.rows] == [
        ("user:usr_1", 2), ("service_account:sa_1", 1), ("user:usr_2", 1),
    ]
    by_api = await ledger.QueryUsage(
        query(group_by=["api_id", "api_version"]), metadata=as_tenant("ten_a")
    )
    assert [(dict(r.group), r.requests) for r in by_api.rows] == [
        ({"api_id": "", "api_version": ""}, 1),
        ({"api_id": "api_1", "api_version": "v1"}, 2),  # ten_b's call is not ten_a's
        ({"api_id": "api_1", "api_version": "v2"}, 1),
    ]
    theirs = await ledger.QueryUsage(
        query(group_by=["team_id", "principal", "api_id", "api_version"]),
        metadata=as_tenant("ten_b"),
    )
    assert [(dict(r.group), r.requests, r.errors) for r in theirs.rows] == [
        ({"team_id": "team_z", "principal": "user:usr_9", "api_id": "api_1",
          "api_version": "v1"}, 1, 1),
    ]


async def test_get_last_call_is_the_latest_entry_of_the_version_in_any_tenant(ledger):
    never = await ledger.GetLastCall(pb.GetLastCallRequest(api_id="api_1", api_version="v1"))
    assert not never.HasField("last_call_time")
    await ledger.RecordUsage(pb.RecordUsageRequest(entries=GOVERNED))

    async def last(api: str, version: str) -> datetime | None:
        reply = await ledger.GetLastCall(pb.GetLastCallRequest(api_id=api, api_version=version))
        return (
            reply.last_call_time.ToDatetime(tzinfo=UTC)
            if reply.HasField("last_call_time") else None
        )

    # ten_b's failed call (g5) is the latest call of api_1 v1: it counts
    assert await last("api_1", "v1") == BASE + timedelta(minutes=30)
    assert await last("api_1", "v2") == BASE + timedelta(minutes=7)
    assert await last("api_1", "v3") is None
    assert await last("api_2", "v1") is None
    # an older entry arriving late does not move the last call back
    await ledger.RecordUsage(pb.RecordUsageRequest(entries=[
        governed("late", "ten_c", "", "user:usr_3", "api_1", "v2", BASE - timedelta(days=1)),
        governed("new", "ten_c", "", "user:usr_3", "api_1", "v2",
                 BASE + timedelta(days=2, microseconds=250)),
    ]))
    assert await last("api_1", "v2") == BASE + timedelta(days=2, microseconds=250)


@pytest.mark.parametrize(
    "fields", [{}, {"api_id": "api_1"}, {"api_version": "v1"}],
)
async def test_get_last_call_needs_api_and_version(ledger, fields):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await ledger.GetLastCall(pb.GetLastCallRequest(**fields))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# --- Migrations -----------------------------------------------------------------

NEW_COLUMNS = {"team_id", "principal", "api_id", "api_version"}

LAST_CALL_INDEX = "ix_usage_entries_api_id_api_version_created_at"


async def test_migrations_match_models_and_downgrade(database_url):
    import asyncio

    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import inspect, text
    from sqlmodel import SQLModel

    import services.ledger.models  # noqa: F401  (the table in SQLModel.metadata)
    from lockgate.db import _alembic_config, make_engine
    from services.ledger.app import MIGRATIONS

    version_table = "alembic_version_ledger"
    cfg = _alembic_config(database_url, MIGRATIONS, version_table)
    engine = make_engine(database_url)

    def shape(sync_conn):
        found = inspect(sync_conn)
        if "usage_entries" not in found.get_table_names():
            return None, None
        columns = {c["name"] for c in found.get_columns("usage_entries")}
        indexes = {i["name"] for i in found.get_indexes("usage_entries")}
        return columns, indexes

    # Every table of services/ledger/models.py: the migrations must create each as it says.
    ledger_tables = {
        model.__tablename__ for model in vars(services.ledger.models).values()
        if isinstance(model, type) and issubclass(model, SQLModel) and hasattr(model, "__table__")
    }
    assert "usage_entries" in ledger_tables and len(ledger_tables) > 1

    def diff(sync_conn):
        context = MigrationContext.configure(sync_conn, opts={"version_table": version_table})
        return [d for d in compare_metadata(context, SQLModel.metadata)
                if any(name in str(d) for name in ledger_tables)]

    try:
        # a row written before 0005 gets "" for the new columns
        await asyncio.to_thread(command.upgrade, cfg, "ledger_0004")
        async with engine.begin() as conn:
            await conn.execute(text(
                "INSERT INTO usage_entries (request_id, tenant_id, created_at)"
                " VALUES ('old-1', 'ten_a', CURRENT_TIMESTAMP)"
            ))
        await asyncio.to_thread(command.upgrade, cfg, "head")
        async with engine.connect() as conn:
            assert await conn.run_sync(diff) == []
            columns, indexes = await conn.run_sync(shape)
            assert NEW_COLUMNS <= columns and LAST_CALL_INDEX in indexes
            old = (await conn.execute(text(
                "SELECT team_id, principal, api_id, api_version FROM usage_entries"
                " WHERE request_id = 'old-1'"
            ))).one()
            assert tuple(old) == ("", "", "", "")

        await asyncio.to_thread(command.downgrade, cfg, "ledger_0004")
        async with engine.connect() as conn:
            columns, indexes = await conn.run_sync(shape)
        assert not NEW_COLUMNS & columns and LAST_CALL_INDEX not in indexes
        assert "ix_usage_entries_tenant_id_created_at" in indexes  # 0003's index survives

        await asyncio.to_thread(command.downgrade, cfg, "base")
        async with engine.connect() as conn:
            assert (await conn.run_sync(shape)) == (None, None)
        await asyncio.to_thread(command.upgrade, cfg, "head")  # and back up again
        async with engine.connect() as conn:
            assert await conn.run_sync(diff) == []
    finally:
        await engine.dispose()


# Each ledger migration after the usage columns adds its tables, and its downgrade
# removes exactly them (the models-match check above covers their shape).
@pytest.mark.parametrize(("revision", "previous", "tables"), [
    ("ledger_0006", "ledger_0005", {"prices"}),
    ("ledger_0007", "ledger_0006", {"budgets", "budget_alerts"}),
    ("ledger_0008", "ledger_0007", {"rate_limits"}),
    ("ledger_0009", "ledger_0008", {"call_log", "call_bodies"}),
])
async def test_each_migration_adds_and_removes_its_tables(database_url, revision, previous,
                                                          tables):
    import asyncio

    from alembic import command
    from sqlalchemy import inspect

    from lockgate.db import _alembic_config, make_engine
    from services.ledger.app import MIGRATIONS

    cfg = _alembic_config(database_url, MIGRATIONS, "alembic_version_ledger")
    engine = make_engine(database_url)

    async def names() -> set[str]:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))

    try:
        await asyncio.to_thread(command.upgrade, cfg, "head")
        assert tables <= await names()
        await asyncio.to_thread(command.downgrade, cfg, previous)
        left = await names()
        assert not tables & left and "usage_entries" in left
        await asyncio.to_thread(command.upgrade, cfg, revision)
        assert tables <= await names()
        await asyncio.to_thread(command.upgrade, cfg, "head")
    finally:
        await engine.dispose()
