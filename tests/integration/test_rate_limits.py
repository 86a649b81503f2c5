"""Rate limits in the ledger over gRPC (in-process server on port 0), on SQLite and
PostgreSQL: the admin RPCs with their permissions and tenant wall, Envoy's
ShouldRateLimit, token counting from recorded usage, replicas picking up each
other's changes; and the Redis counters against the local Redis (two limiter
instances sharing counts, failing open when Redis is gone)."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from datetime import UTC, datetime

import grpc
import orjson
import pytest
import redis.asyncio as aioredis
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2 as rl_common
from envoy.service.ratelimit.v3 import rls_pb2 as rls
from envoy.service.ratelimit.v3 import rls_pb2_grpc as rls_grpc
from prometheus_client import REGISTRY

from lockgate.common.v1 import common_pb2
from lockgate.identity import KEY_ID, ROLES, TEAM_ID, TENANT_ID
from lockgate.ledger.v1 import ledger_service_pb2 as pb
from lockgate.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from services.ledger.app import LedgerSettings, build
from services.ledger.limits import LimitRule, RateLimitService
from services.ledger.rate_counters import WINDOW_MS, MemoryCounters, RedisCounters, Window
from services.ledger.scopes import CallScopes

REDIS_URL = os.environ.get("LOCKGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CLOSED_PORT_URL = "redis://127.0.0.1:9/0"  # discard port: nothing listens there


def who(tenant: str = "ten_a", roles: str = "tenant_admin", team: str = ""):
    metadata = [(TENANT_ID, tenant), (KEY_ID, "key_admin"), (ROLES, roles)]
    if team:
        metadata.append((TEAM_ID, team))
    return tuple(metadata)


ADMIN_A, ADMIN_B = who("ten_a"), who("ten_b")


async def fresh_window(min_left_ms: int = 5000) -> None:
    """Counting tests must not straddle a minute boundary (the windows reset there)."""
    left = WINDOW_MS - time.time_ns() // 1_000_000 % WINDOW_MS
    if left < min_left_ms:
        await asyncio.sleep(left / 1000 + 0.05)


class Ledger:
    def __init__(self, server, service, engine, channel):
        self.server, self.service, self.engine, self.channel = server, service, engine, channel
        self.api = pb_grpc.LedgerServiceStub(channel)
        self.rls = rls_grpc.RateLimitServiceStub(channel)
        (self.limits,) = [x for x in service.listeners if isinstance(x, RateLimitService)]

    async def close(self):
        await self.channel.close()
        await self.server.stop(0)
        await self.engine.dispose()


async def start_ledger(database_url, tmp_path, **settings) -> Ledger:
    server, service, engine = await build(
        LedgerSettings(database_url=database_url, data_dir=tmp_path, grpc_port=0, **settings)
    )
    port = await server.start()
    return Ledger(server, service, engine, grpc.aio.insecure_channel(f"127.0.0.1:{port}"))


@pytest.fixture
async def ledger(database_url, tmp_path):
    running = await start_ledger(database_url, tmp_path)
    yield running
    await running.close()


async def set_limit(ledger, scope, scope_id="", rpm=0, tpm=0, metadata=ADMIN_A):
    reply = await ledger.api.SetRateLimit(
        pb.SetRateLimitRequest(scope=scope, scope_id=scope_id, requests_per_minute=rpm,
                               tokens_per_minute=tpm),
        metadata=metadata,
    )
    return reply.rate_limit


async def listed(ledger, metadata=ADMIN_A, **filters):
    reply = await ledger.api.ListRateLimits(pb.ListRateLimitsRequest(**filters),
                                            metadata=metadata)
    return [(r.scope, r.scope_id, r.requests_per_minute, r.tokens_per_minute)
            for r in reply.rate_limits]


async def refused(call, code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == code, err.value.details()
    return err.value.details()


# -- admin RPCs ------------------------------------------------------------------------


async def test_set_upserts_list_filters_and_delete_removes(ledger):
    first = await set_limit(ledger, "key", "key_1", rpm=5)
    assert first.rate_limit_id.startswith("rl_") and first.tokens_per_minute == 0
    again = await set_limit(ledger, "key", "key_1", rpm=7, tpm=900)
    assert again.rate_limit_id == first.rate_limit_id  # one limit per scope: replaced
    assert again.create_time == first.create_time
    assert again.update_time.ToNanoseconds() > first.update_time.ToNanoseconds()
    tenant = await set_limit(ledger, "tenant", tpm=100_000)
    assert tenant.scope_id == "ten_a"
    await set_limit(ledger, "alias", "demo", rpm=60)
    await set_limit(ledger, "team", "team_1", rpm=30)

    assert await listed(ledger) == [
        ("alias", "demo", 60, 0), ("key", "key_1", 7, 900), ("team", "team_1", 30, 0),
        ("tenant", "ten_a", 0, 100_000),
    ]
    assert await listed(ledger, scope="key") == [("key", "key_1", 7, 900)]
    assert await listed(ledger, scope="alias", scope_id="nope") == []

    await ledger.api.DeleteRateLimit(
        pb.DeleteRateLimitRequest(rate_limit_id=first.rate_limit_id), metadata=ADMIN_A)
    assert [s for s, *_ in await listed(ledger)] == ["alias", "team", "tenant"]
    assert [r.scope for r in ledger.limits.index.applying(CallScopes("ten_a", key_id="key_1"))
            ] == ["tenant"]
    await refused(ledger.api.DeleteRateLimit(
        pb.DeleteRateLimitRequest(rate_limit_id=first.rate_limit_id), metadata=ADMIN_A),
        grpc.StatusCode.NOT_FOUND)


async def test_tenants_never_see_each_others_limits(ledger):
    mine = await set_limit(ledger, "key", "key_1", rpm=5)
    theirs = await set_limit(ledger, "key", "key_1", rpm=9, metadata=ADMIN_B)
    assert theirs.rate_limit_id != mine.rate_limit_id
    assert await listed(ledger, metadata=ADMIN_B) == [("key", "key_1", 9, 0)]
    # Another tenant's id answers exactly like a missing one.
    missing = await refused(ledger.api.DeleteRateLimit(
        pb.DeleteRateLimitRequest(rate_limit_id="rl_000000000000000000000000"),
        metadata=ADMIN_B), grpc.StatusCode.NOT_FOUND)
    foreign = await refused(ledger.api.DeleteRateLimit(
        pb.DeleteRateLimitRequest(rate_limit_id=mine.rate_limit_id), metadata=ADMIN_B),
        grpc.StatusCode.NOT_FOUND)
    assert foreign == missing.replace("rl_000000000000000000000000", mine.rate_limit_id)
    assert await listed(ledger) == [("key", "key_1", 5, 0)]
    # A tenant limit is always the caller's own tenant.
    await refused(set_limit(ledger, "tenant", "ten_b", rpm=1), grpc.StatusCode.INVALID_ARGUMENT)
    index = ledger.limits.index
    assert [r.requests_per_minute for r in index.applying(CallScopes("ten_b", key_id="key_1"))
            ] == [9]


async def test_permissions(ledger):
    team_admin = who(roles="team_admin", team="team_1")
    own = await set_limit(ledger, "team", "team_1", rpm=10, metadata=team_admin)
    for scope, scope_id in [("team", "team_2"), ("key", "key_1"), ("alias", "demo"),
                            ("tenant", "")]:
        await refused(set_limit(ledger, scope, scope_id, rpm=1, metadata=team_admin),
                      grpc.StatusCode.PERMISSION_DENIED)
    other = await set_limit(ledger, "team", "team_2", rpm=10)
    await refused(ledger.api.DeleteRateLimit(
        pb.DeleteRateLimitRequest(rate_limit_id=other.rate_limit_id), metadata=team_admin),
        grpc.StatusCode.PERMISSION_DENIED)
    assert len(await listed(ledger, metadata=team_admin)) == 2  # reading is tenant-wide
    await ledger.api.DeleteRateLimit(
        pb.DeleteRateLimitRequest(rate_limit_id=own.rate_limit_id), metadata=team_admin)
    for roles in ("developer", "viewer", ""):
        await refused(set_limit(ledger, "key", "key_1", rpm=1, metadata=who(roles=roles)),
                      grpc.StatusCode.PERMISSION_DENIED)
    await set_limit(ledger, "key", "key_1", rpm=1, metadata=who(roles="platform_admin"))
    await refused(ledger.api.ListRateLimits(pb.ListRateLimitsRequest()),
                  grpc.StatusCode.UNAUTHENTICATED)


@pytest.mark.parametrize(("fields", "param"), [
    ({"scope": "subscription", "scope_id": "sub_1", "requests_per_minute": 1}, "scope"),
    ({"scope": "key", "requests_per_minute": 1}, "scope_id"),
    ({"scope": "key", "scope_id": "team_1", "requests_per_minute": 1}, "scope_id"),
    ({"scope": "alias", "scope_id": "has space", "requests_per_minute": 1}, "scope_id"),
    ({"scope": "key", "scope_id": "key_1"}, ""),
    ({"scope": "key", "scope_id": "key_1", "requests_per_minute": -1}, ""),
    ({"scope": "key", "scope_id": "key_1", "tokens_per_minute": 10**12}, "tokens_per_minute"),
])
async def test_bad_input_is_invalid_argument(ledger, fields, param):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await ledger.api.SetRateLimit(pb.SetRateLimitRequest(**fields), metadata=ADMIN_A)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Traceback" not in err.value.details()
    if param:
        assert param.split("_")[0] in err.value.details()
    await refused(ledger.api.ListRateLimits(pb.ListRateLimitsRequest(scope="nope"),
                                            metadata=ADMIN_A), grpc.StatusCode.INVALID_ARGUMENT)
    await refused(ledger.api.DeleteRateLimit(pb.DeleteRateLimitRequest(), metadata=ADMIN_A),
                  grpc.StatusCode.INVALID_ARGUMENT)


# -- the edge: ShouldRateLimit -------------------------------------------------------------


def edge_request(domain: str = "lockgate", **entries: str) -> rls.RateLimitRequest:
    descriptor = rl_common.RateLimitDescriptor(
        entries=[rl_common.RateLimitDescriptor.Entry(key=k, value=v) for k, v in entries.items()]
    )
    return rls.RateLimitRequest(domain=domain, descriptors=[descriptor])


def headers_of(reply) -> dict[str, str]:
    return {h.key: h.value for h in reply.response_headers_to_add}


async def test_should_rate_limit_counts_and_answers_like_openai(ledger):
    await set_limit(ledger, "key", "key_1", rpm=2)
    await set_limit(ledger, "alias", "demo", rpm=100)
    call = {"tenant": "ten_a", "team": "team_1", "key": "key_1", "alias": "demo",
            "path": "/v1/chat/completions"}
    await fresh_window()
    first = await ledger.rls.ShouldRateLimit(edge_request(**call))
    assert first.overall_code == rls.RateLimitResponse.OK
    headers = headers_of(first)
    assert headers["x-ratelimit-limit-requests"] == "2"  # the tightest of key and alias
    assert headers["x-ratelimit-remaining-requests"] == "1"
    assert headers["x-ratelimit-reset-requests"].endswith("s")
    assert first.statuses[0].current_limit.requests_per_unit == 2
    second = await ledger.rls.ShouldRateLimit(edge_request(**call))
    assert headers_of(second)["x-ratelimit-remaining-requests"] == "0"

    over = await ledger.rls.ShouldRateLimit(edge_request(**call))
    assert over.overall_code == rls.RateLimitResponse.OVER_LIMIT
    assert over.statuses[0].code == rls.RateLimitResponse.OVER_LIMIT
    headers = headers_of(over)
    assert headers["content-type"] == "application/json"
    assert 1 <= int(headers["retry-after"]) <= 60
    assert headers["x-ratelimit-limit-requests"] == "2"
    error = orjson.loads(over.raw_body)["error"]
    assert error["type"] == "requests" and error["code"] == "rate_limit_exceeded"
    assert error["param"] is None
    assert "key key_1" in error["message"] and "requests per minute" in error["message"]

    # The refused calls did not count against the alias: 2 of 100 used.
    other_key = {**call, "key": "key_2"}
    alias_only = headers_of(await ledger.rls.ShouldRateLimit(edge_request(**other_key)))
    assert alias_only["x-ratelimit-limit-requests"] == "100"
    assert alias_only["x-ratelimit-remaining-requests"] == "97"
    # A gRPC client (no REST path) gets the message as text (Envoy's grpc-message).
    grpc_call = {k: v for k, v in call.items() if k != "path"}
    text = await ledger.rls.ShouldRateLimit(edge_request(**grpc_call))
    assert text.raw_body.decode().startswith("Rate limit reached for key key_1")
    assert "content-type" not in headers_of(text)


async def test_should_rate_limit_lets_through_what_it_does_not_limit(ledger):
    await set_limit(ledger, "key", "key_1", rpm=1)
    await fresh_window()
    for request in (
        edge_request(tenant="ten_b", key="key_1"),  # another tenant's key of that id
        edge_request(key="key_1", alias="demo"),  # no tenant: nothing to count against
        edge_request(domain="other", tenant="ten_a", key="key_1"),
        edge_request(tenant="ten_a", key="key_2"),
    ):
        for _ in range(3):
            reply = await ledger.rls.ShouldRateLimit(request)
            assert reply.overall_code == rls.RateLimitResponse.OK
            assert not reply.response_headers_to_add
    limited = edge_request(tenant="ten_a", key="key_1")
    assert (await ledger.rls.ShouldRateLimit(limited)).overall_code == rls.RateLimitResponse.OK
    assert (await ledger.rls.ShouldRateLimit(limited)).overall_code == (
        rls.RateLimitResponse.OVER_LIMIT)


# -- requests counted by admission (the router's HTTP listener) ------------------------


def admit(request_id: str, count: int = 1, key: str = "key_1", **fields) -> pb.AdmitRequest:
    return pb.AdmitRequest(request_id=request_id, tenant_id="ten_a", key_id=key, alias="demo",
                           count_requests=count, **fields)


async def test_admit_counts_requests_against_the_same_limits_as_the_edge(ledger):
    await set_limit(ledger, "key", "key_1", rpm=3)
    await set_limit(ledger, "tenant", rpm=100)
    await fresh_window()
    first = await ledger.api.Admit(admit("r1"))
    assert first.admitted and not first.unrestricted_ttl_ms  # a limit applies: ask every call
    assert (first.request_limit, first.request_remaining) == (3, 2)  # the tightest
    assert 0 < first.request_reset_ms <= WINDOW_MS
    # The edge limiter counts in the same counters: one of each makes three.
    await ledger.rls.ShouldRateLimit(edge_request(tenant="ten_a", key="key_1", alias="demo"))
    cached = await ledger.api.Admit(admit("r2", cache_hit=True))  # a cache hit still counts
    assert cached.admitted and cached.request_remaining == 0

    over = await ledger.api.Admit(admit("r3"))
    assert not over.admitted and over.code == "request_rate_limited"
    assert "key key_1" in over.message and "limit 3" in over.message
    assert 1 <= over.retry_after_seconds <= 60
    assert (over.request_limit, over.request_remaining) == (3, 0)
    # The refused request counted nowhere: the tenant's limit has 3 of 100 used.
    other = await ledger.api.Admit(admit("r4", key="key_2"))
    assert (other.request_limit, other.request_remaining) == (100, 96)


async def test_admit_counts_nothing_unless_asked(ledger):
    await set_limit(ledger, "key", "key_1", rpm=1)
    await fresh_window()
    for i in range(3):  # calls the edge counted (gRPC): only budgets and token limits
        reply = await ledger.api.Admit(admit(f"e{i}", count=0))
        assert reply.admitted and reply.unrestricted_ttl_ms > 0 and not reply.request_limit
    assert (await ledger.api.Admit(admit("h1"))).admitted
    assert not (await ledger.api.Admit(admit("h2"))).admitted
    await refused(ledger.api.Admit(admit("bad", count=-1)), grpc.StatusCode.INVALID_ARGUMENT)


async def test_a_counted_cache_hit_reserves_nothing(ledger):
    await ledger.api.SetBudget(pb.SetBudgetRequest(
        scope="key", scope_id="key_1", amount_micro_usd=1_000, period="day", hard=True),
        metadata=ADMIN_A)
    # Far over the budget, but a cache hit calls no provider: admitted, held nowhere.
    reply = await ledger.api.Admit(admit("c1", cache_hit=True, max_cost_micro_usd=10**9))
    assert reply.admitted
    (budget,) = (await ledger.api.ListBudgets(pb.ListBudgetsRequest(),
                                              metadata=ADMIN_A)).budgets
    assert budget.reserved_micro_usd == 0
    assert not (await ledger.api.Admit(admit("c2", max_cost_micro_usd=10**9))).admitted


# -- tokens: counted from recorded usage ---------------------------------------------------


def usage(request_id: str, tokens_in: int, tokens_out: int, key: str = "key_1",
          **fields) -> pb.UsageEntry:
    entry = pb.UsageEntry(
        request_id=request_id, tenant_id="ten_a", key_id=key, alias="demo", status="ok",
        usage=common_pb2.TokenUsage(input_tokens=tokens_in, output_tokens=tokens_out), **fields,
    )
    entry.create_time.FromDatetime(datetime.now(UTC))
    return entry


async def test_recorded_usage_counts_against_token_limits_once(ledger):
    await set_limit(ledger, "key", "key_1", tpm=1000)
    call = CallScopes("ten_a", key_id="key_1", alias="demo")
    assert ledger.limits.has_token_limits(call)
    assert not ledger.limits.has_token_limits(CallScopes("ten_a", key_id="key_2"))
    await fresh_window()
    await ledger.api.RecordUsage(pb.RecordUsageRequest(entries=[
        usage("r1", 100, 200), usage("r2", 50, 50), usage("r3", 500, 0, key="key_2"),
        usage("r4", 400, 0, cache_hit=True),
    ]))
    # A retried batch is recorded once, and counted once.
    await ledger.api.RecordUsage(pb.RecordUsageRequest(entries=[usage("r1", 100, 200)]))
    verdict = await ledger.limits.check_tokens(call, 100)
    assert (verdict.allowed, verdict.limit, verdict.remaining) == (True, 1000, 1000 - 400 - 100)
    over = await ledger.limits.check_tokens(call, 601)
    assert not over.allowed and "used 400, requested 601" in over.message


# -- replicas ------------------------------------------------------------------------------


async def test_replicas_pick_up_each_others_changes(database_url, tmp_path):
    one = await start_ledger(database_url, tmp_path, rate_limit_refresh_seconds=0.1)
    two = await start_ledger(database_url, tmp_path, rate_limit_refresh_seconds=0.1)
    call = CallScopes("ten_a", key_id="key_1")

    async def seen_by_two(expected: list[int]) -> None:
        for _ in range(100):
            if [r.requests_per_minute for r in two.limits.index.applying(call)] == expected:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"replica two never saw {expected}")

    try:
        created = await set_limit(one, "key", "key_1", rpm=3)
        assert [r.requests_per_minute for r in one.limits.index.applying(call)] == [3]
        await seen_by_two([3])
        await set_limit(one, "key", "key_1", rpm=4)
        await seen_by_two([4])
        await one.api.DeleteRateLimit(
            pb.DeleteRateLimitRequest(rate_limit_id=created.rate_limit_id), metadata=ADMIN_A)
        await seen_by_two([])
        # A replica started later loads the limits before it serves.
        await set_limit(two, "alias", "demo", rpm=9)
        three = await start_ledger(database_url, tmp_path)
        try:
            found = three.limits.index.applying(CallScopes("ten_a", alias="demo"))
            assert [r.requests_per_minute for r in found] == [9]
        finally:
            await three.close()
    finally:
        await one.close()
        await two.close()


# -- Redis -------------------------------------------------------------------------------


@pytest.fixture
async def redis_prefix():
    """A key prefix of this test's own; its keys are deleted afterwards."""
    value = f"lgtest:rl:{secrets.token_hex(6)}:"
    yield value
    client = aioredis.Redis.from_url(REDIS_URL)
    keys = [k async for k in client.scan_iter(match=value + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


RULES = [
    LimitRule("rl_1", "ten_a", "key", "key_1", 20, 1000),
    LimitRule("rl_2", "ten_a", "tenant", "ten_a", 30, 0),
]


def limiter(counters) -> RateLimitService:
    service = RateLimitService(None, counters)
    service.index.replace_all(RULES)
    return service


async def test_two_limiters_share_counts_in_redis(redis_prefix):
    a = limiter(RedisCounters(REDIS_URL, key_prefix=redis_prefix, timeout=1.0))
    b = limiter(RedisCounters(REDIS_URL, key_prefix=redis_prefix, timeout=1.0))
    key_1, key_2 = CallScopes("ten_a", key_id="key_1"), CallScopes("ten_a", key_id="key_2")
    try:
        await fresh_window()
        # 50 concurrent requests over both replicas: exactly the limit gets through.
        verdicts = await asyncio.gather(*(
            (a if i % 2 else b).acquire_requests(key_1) for i in range(50)))
        assert sum(v.allowed for v in verdicts) == 20
        refusal = next(v for v in verdicts if not v.allowed)
        assert "key key_1" in refusal.message and refusal.retry_after_seconds >= 1
        # Refused calls counted nowhere: the tenant has 10 left for other keys, on
        # either replica.
        assert (await b.acquire_requests(key_2)).remaining == 9
        assert (await a.acquire_requests(key_2)).remaining == 8

        # Tokens recorded through one replica limit calls admitted by the other.
        now = datetime.now(UTC)
        await a.usage_recorded([{"tenant_id": "ten_a", "key_id": "key_1", "input_tokens": 300,
                                 "output_tokens": 300, "created_at": now}])
        await b.usage_recorded([{"tenant_id": "ten_a", "key_id": "key_1", "input_tokens": 100,
                                 "output_tokens": 0, "created_at": now}])
        verdict = await a.check_tokens(key_1, 200)
        assert (verdict.allowed, verdict.remaining) == (True, 1000 - 700 - 200)
        assert not (await b.check_tokens(key_1, 301)).allowed

        # The keys expire shortly after their window.
        raw = aioredis.Redis.from_url(REDIS_URL)
        keys = [k async for k in raw.scan_iter(match=redis_prefix + "*")]
        assert len(keys) == 3  # key_1 requests and tokens, the tenant's requests
        now_ms = time.time_ns() // 1_000_000
        for k in keys:  # (Redis's clock may lag ours by a few ms)
            assert 0 < await raw.pttl(k) <= Window.at(now_ms).reset_ms(now_ms) + 5_000 + 100
        await raw.aclose()
    finally:
        await a.counters.close()
        await b.counters.close()


def errors_counted(kind: str) -> float:
    return REGISTRY.get_sample_value("lockgate_ledger_rate_limit_checks_total",
                                     {"kind": kind, "outcome": "error"}) or 0.0


async def test_an_unreachable_redis_fails_open_fast():
    service = limiter(RedisCounters(CLOSED_PORT_URL, timeout=0.5, down_seconds=30))
    call = CallScopes("ten_a", key_id="key_1")
    before = errors_counted("requests"), errors_counted("tokens")
    try:
        first = await service.acquire_requests(call)
        assert first.allowed and first.limit == 0  # allowed, without headers
        started = time.monotonic()
        for _ in range(20):  # Redis is left alone for down_seconds: no wait per call
            assert (await service.acquire_requests(call)).allowed
        assert time.monotonic() - started < 0.1
        assert (await service.check_tokens(call, 10**6)).allowed
        await service.usage_recorded([{"tenant_id": "ten_a", "key_id": "key_1",
                                       "input_tokens": 5, "created_at": datetime.now(UTC)}])
    finally:
        await service.counters.close()
    assert errors_counted("requests") == before[0] + 21
    assert errors_counted("tokens") >= before[1] + 2


async def test_the_ledger_uses_redis_when_configured(tmp_path):
    db = f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
    running = await start_ledger(db, tmp_path, redis_url=REDIS_URL)
    try:
        assert isinstance(running.limits.counters, RedisCounters)
    finally:
        await running.close()
    running = await start_ledger(db, tmp_path)
    try:
        assert isinstance(running.limits.counters, MemoryCounters)
    finally:
        await running.close()
