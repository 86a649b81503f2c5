"""Budgets over gRPC (in-process ledger on port 0) on SQLite and PostgreSQL:
admin use cases and their permissions, admission (reserve), settlement by
usage entries, threshold webhooks, concurrency, and Redis-shared counters."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from lockgate.common.v1 import common_pb2
from lockgate.identity import KEY_ID, PRINCIPAL, ROLES, TEAM_ID, TENANT_ID
from lockgate.ledger.v1 import ledger_service_pb2 as pb
from lockgate.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from lockgate.timestamps import to_timestamp
from services.ledger.app import LedgerSettings, build
from tests.integration.webhook_receiver import WEBHOOK_SECRET, serving_receiver

REDIS_URL = "redis://127.0.0.1:6379/0"


def caller(tenant="ten_a", roles="tenant_admin", team="team_a", key="key_admin"):
    return ((TENANT_ID, tenant), (KEY_ID, key), (ROLES, roles), (TEAM_ID, team),
            (PRINCIPAL, "user:usr_1"))


ADMIN = caller()


async def start_ledger(database_url, tmp_path, **settings):
    config = LedgerSettings(database_url=database_url, data_dir=tmp_path, grpc_port=0,
                            budget_refresh_seconds=0.2, **settings)
    server, _service, engine = await build(config)
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = pb_grpc.LedgerServiceStub(channel)

    async def stop():
        await channel.close()
        await server.stop(0)
        await engine.dispose()

    return stub, stop


@pytest.fixture
async def ledger(database_url, tmp_path):
    stub, stop = await start_ledger(database_url, tmp_path)
    yield stub
    await stop()


def admit(request_id, cost, *, tenant="ten_a", key="key_1", team="team_a", sub="", alias="demo"):
    return pb.AdmitRequest(request_id=request_id, tenant_id=tenant, team_id=team, key_id=key,
                           subscription_id=sub, alias=alias, max_cost_micro_usd=cost,
                           estimated_tokens=10, reservation_ttl_seconds=60)


def usage(request_id, cost, *, tenant="ten_a", key="key_1", team="team_a", sub="",
          at: datetime | None = None):
    entry = pb.UsageEntry(
        request_id=request_id, tenant_id=tenant, key_id=key, team_id=team, subscription_id=sub,
        alias="demo", provider="openai", provider_model="gpt-4o-mini",
        usage=common_pb2.TokenUsage(input_tokens=10, output_tokens=5), status="ok",
        cost_micro_usd=cost,
    )
    if at is not None:
        entry.create_time.CopyFrom(to_timestamp(at))
    return entry


async def set_budget(stub, metadata=ADMIN, **fields):
    fields.setdefault("period", "day")
    reply = await stub.SetBudget(pb.SetBudgetRequest(**fields), metadata=metadata)
    return reply.budget


async def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value.code()


# -- admin ----------------------------------------------------------------------------------------


async def test_set_list_replace_and_delete(ledger):
    budget = await set_budget(ledger, scope="key", scope_id="key_1", amount_micro_usd=5_000_000,
                              period="month", timezone="Europe/Berlin", hard=True)
    assert budget.budget_id.startswith("bgt_")
    assert (budget.scope, budget.scope_id, budget.period, budget.timezone, budget.hard) == (
        "key", "key_1", "month", "Europe/Berlin", True)
    assert budget.period_start.ToDatetime(tzinfo=UTC) < datetime.now(UTC)
    assert budget.period_end.ToDatetime(tzinfo=UTC) > datetime.now(UTC)
    assert (budget.spent_micro_usd, budget.reserved_micro_usd) == (0, 0)
    # the same scope and period again: replaced, same id
    again = await set_budget(ledger, scope="key", scope_id="key_1", amount_micro_usd=7_000_000,
                             period="month", hard=False)
    assert again.budget_id == budget.budget_id
    assert (again.amount_micro_usd, again.hard, again.timezone) == (7_000_000, False, "UTC")
    daily = await set_budget(ledger, scope="key", scope_id="key_1", amount_micro_usd=1, period="day")
    tenant = await set_budget(ledger, scope="tenant", amount_micro_usd=100, period="total")
    assert tenant.scope_id == "ten_a" and not tenant.HasField("period_end")
    listed = (await ledger.ListBudgets(pb.ListBudgetsRequest(), metadata=ADMIN)).budgets
    assert {b.budget_id for b in listed} == {budget.budget_id, daily.budget_id, tenant.budget_id}
    only_keys = (await ledger.ListBudgets(pb.ListBudgetsRequest(scope="key"), metadata=ADMIN))
    assert {b.budget_id for b in only_keys.budgets} == {budget.budget_id, daily.budget_id}
    await ledger.DeleteBudget(pb.DeleteBudgetRequest(budget_id=daily.budget_id), metadata=ADMIN)
    listed = (await ledger.ListBudgets(pb.ListBudgetsRequest(), metadata=ADMIN)).budgets
    assert daily.budget_id not in {b.budget_id for b in listed}


async def test_tenants_are_isolated(ledger):
    mine = await set_budget(ledger, scope="team", scope_id="team_a", amount_micro_usd=10)
    other = caller(tenant="ten_b")
    assert (await ledger.ListBudgets(pb.ListBudgetsRequest(), metadata=other)).budgets == []
    assert await code_of(ledger.DeleteBudget(
        pb.DeleteBudgetRequest(budget_id=mine.budget_id), metadata=other)
    ) == grpc.StatusCode.NOT_FOUND
    assert await code_of(ledger.DeleteBudget(
        pb.DeleteBudgetRequest(budget_id="bgt_missing"), metadata=ADMIN)
    ) == grpc.StatusCode.NOT_FOUND
    # tenant B's calls never count against tenant A's budget on the same team id
    await ledger.RecordUsage(pb.RecordUsageRequest(entries=[usage("b1", 9, tenant="ten_b")]))
    listed = (await ledger.ListBudgets(pb.ListBudgetsRequest(), metadata=ADMIN)).budgets
    assert listed[0].spent_micro_usd == 0


async def test_team_admins_manage_only_their_team(ledger):
    team_admin = caller(roles="team_admin", team="team_a")
    ok = await set_budget(ledger, team_admin, scope="team", scope_id="team_a", amount_micro_usd=5)
    assert ok.scope_id == "team_a"
    for scope, scope_id in (("team", "team_b"), ("key", "key_1"), ("tenant", "")):
        assert await code_of(set_budget(
            ledger, team_admin, scope=scope, scope_id=scope_id, amount_micro_usd=5)
        ) == grpc.StatusCode.PERMISSION_DENIED
    developer = caller(roles="developer")
    assert await code_of(set_budget(
        ledger, developer, scope="team", scope_id="team_a", amount_micro_usd=5)
    ) == grpc.StatusCode.PERMISSION_DENIED
    # but anyone in the tenant may read them
    assert len((await ledger.ListBudgets(pb.ListBudgetsRequest(), metadata=developer)).budgets) == 1


@pytest.mark.parametrize(("fields", "param"), [
    ({"scope": "planet", "scope_id": "x", "amount_micro_usd": 1}, "scope"),
    ({"scope": "key", "scope_id": "", "amount_micro_usd": 1}, "scope_id"),
    ({"scope": "tenant", "scope_id": "ten_b", "amount_micro_usd": 1}, "scope_id"),
    ({"scope": "key", "scope_id": "k", "amount_micro_usd": 0}, "amount"),
    ({"scope": "key", "scope_id": "k", "amount_micro_usd": -5}, "amount"),
    ({"scope": "key", "scope_id": "k", "amount_micro_usd": 10**16}, "amount"),
    ({"scope": "key", "scope_id": "k", "amount_micro_usd": 1, "period": "year"}, "period"),
    ({"scope": "key", "scope_id": "k", "amount_micro_usd": 1, "timezone": "Mars/Base"}, "time zone"),
])
async def test_bad_budgets_are_invalid_argument(ledger, fields, param):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await set_budget(ledger, **fields)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert param in err.value.details()


async def test_set_needs_a_caller_identity(ledger):
    assert await code_of(ledger.SetBudget(pb.SetBudgetRequest(
        scope="tenant", amount_micro_usd=1, period="day"))) == grpc.StatusCode.UNAUTHENTICATED


# -- admission and settlement ---------------------------------------------------------------------


async def test_hard_budget_reserves_settles_and_refuses_by_name(ledger):
    budget = await set_budget(ledger, scope="key", scope_id="key_1", amount_micro_usd=1000,
                              hard=True)
    first = await ledger.Admit(admit("r1", 600))
    assert first.admitted and first.unrestricted_ttl_ms == 0
    refused = await ledger.Admit(admit("r2", 600))
    assert not refused.admitted and refused.code == "budget_exceeded"
    assert budget.budget_id in refused.message and "key key_1" in refused.message
    assert "$0.0006 spent or reserved" in refused.message and "resets at" in refused.message
    assert 0 < refused.retry_after_seconds <= 86_400 + 3600
    listed = (await ledger.ListBudgets(pb.ListBudgetsRequest(), metadata=ADMIN)).budgets[0]
    assert (listed.spent_micro_usd, listed.reserved_micro_usd) == (0, 600)
    # r1 costs 150 in the end: its reservation goes, its cost stays
    await ledger.RecordUsage(pb.RecordUsageRequest(entries=[usage("r1", 150)]))
    listed = (await ledger.ListBudgets(pb.ListBudgetsRequest(), metadata=ADMIN)).budgets[0]
    assert (listed.spent_micro_usd, listed.reserved_micro_usd) == (150, 0)
    assert (await ledger.Admit(admit("r2", 600))).admitted
    # a failed call's entry (cost 0) releases its reservation
    await ledger.RecordUsage(pb.RecordUsageRequest(entries=[usage("r2", 0)]))
    # a duplicate entry is not settled twice
    await ledger.RecordUsage(pb.RecordUsageRequest(entries=[usage("r1", 150)]))
    listed = (await ledger.ListBudgets(pb.ListBudgetsRequest(), metadata=ADMIN)).budgets[0]
    assert (listed.spent_micro_usd, listed.reserved_micro_usd) == (150, 0)
    # other keys of the tenant are not bound by key_1's budget
    assert (await ledger.Admit(admit("r3", 10**9, key="key_2"))).admitted


async def test_every_applicable_budget_counts_and_the_tightest_refuses(ledger):
    await set_budget(ledger, scope="tenant", amount_micro_usd=10_000)
    team = await set_budget(ledger, scope="team", scope_id="team_a", amount_micro_usd=500,
                            hard=True)
    await set_budget(ledger, scope="subscription", scope_id="sub_1", amount_micro_usd=10_000)
    assert (await ledger.Admit(admit("r1", 400, sub="sub_1"))).admitted
    refused = await ledger.Admit(admit("r2", 400, sub="sub_1"))
    assert not refused.admitted and team.budget_id in refused.message
    listed = {b.scope: b for b in
              (await ledger.ListBudgets(pb.ListBudgetsRequest(), metadata=ADMIN)).budgets}
    assert {s: b.reserved_micro_usd for s, b in listed.items()} == {
        "tenant": 400, "team": 400, "subscription": 400}
    await ledger.RecordUsage(pb.RecordUsageRequest(entries=[usage("r1", 300, sub="sub_1")]))
    listed = {b.scope: b for b in
              (await ledger.ListBudgets(pb.ListBudgetsRequest(), metadata=ADMIN)).budgets}
    assert {s: b.spent_micro_usd for s, b in listed.items()} == {
        "tenant": 300, "team": 300, "subscription": 300}


async def test_soft_budgets_never_refuse(ledger):
    await set_budget(ledger, scope="key", scope_id="key_1", amount_micro_usd=10, hard=False)
    assert (await ledger.Admit(admit("r1", 10**6))).admitted
    assert (await ledger.Admit(admit("r2", 10**6))).admitted


async def test_no_budget_means_unrestricted_for_a_while(ledger):
    reply = await ledger.Admit(admit("r1", 10**9))
    assert reply.admitted and reply.unrestricted_ttl_ms > 0


async def test_spend_before_the_budget_existed_counts_within_the_period(ledger):
    now = datetime.now(UTC)
    await ledger.RecordUsage(pb.RecordUsageRequest(entries=[
        usage("old", 700, at=now - timedelta(days=40)),  # another month
        usage("today", 300, at=now),
    ]))
    month = await set_budget(ledger, scope="key", scope_id="key_1", amount_micro_usd=1000,
                             period="month")
    total = await set_budget(ledger, scope="key", scope_id="key_1", amount_micro_usd=1000,
                             period="total", hard=True)
    listed = {b.budget_id: b for b in
              (await ledger.ListBudgets(pb.ListBudgetsRequest(), metadata=ADMIN)).budgets}
    assert listed[month.budget_id].spent_micro_usd == 300
    assert listed[total.budget_id].spent_micro_usd == 1000
    assert not (await ledger.Admit(admit("r1", 1))).admitted  # the total budget is spent


async def test_concurrent_admissions_never_overspend(ledger):
    await set_budget(ledger, scope="key", scope_id="key_1", amount_micro_usd=1000, hard=True)
    replies = await asyncio.gather(*(ledger.Admit(admit(f"r{i}", 100)) for i in range(60)))
    assert sum(r.admitted for r in replies) == 10


async def test_bad_admit_is_invalid_argument(ledger):
    assert await code_of(ledger.Admit(pb.AdmitRequest(tenant_id="t"))) == (
        grpc.StatusCode.INVALID_ARGUMENT)
    assert await code_of(ledger.Admit(admit("r", -1))) == grpc.StatusCode.INVALID_ARGUMENT


# -- thresholds ----------------------------------------------------------------------------------


async def test_threshold_events_once_each_with_retry(database_url, tmp_path):
    async with serving_receiver() as receiver:
        stub, stop = await start_ledger(database_url, tmp_path,
                                        budget_webhook_url=receiver.url,
                                        budget_webhook_secret=WEBHOOK_SECRET)
        try:
            budget = await set_budget(stub, scope="key", scope_id="key_1", amount_micro_usd=1000,
                                      hard=False)
            await stub.RecordUsage(pb.RecordUsageRequest(entries=[usage("r1", 400)]))
            assert receiver.events == []
            receiver.fail = 1  # the 50 % event is retried after a 500
            await stub.RecordUsage(pb.RecordUsageRequest(entries=[usage("r2", 150)]))
            events = await receiver.wait_for(1)
            await stub.RecordUsage(pb.RecordUsageRequest(entries=[usage("r3", 600)]))
            events = await receiver.wait_for(3)
            await stub.RecordUsage(pb.RecordUsageRequest(entries=[usage("r4", 600)]))
            await asyncio.sleep(0.3)
            assert [e["data"]["threshold_percent"] for e in receiver.events] == [50, 80, 100]
            assert all(e["type"] == "budget.threshold" for e in events)
            assert events[0]["data"]["budget_id"] == budget.budget_id
            assert events[0]["data"]["spent_micro_usd"] == 550
            assert events[2]["data"]["spent_micro_usd"] == 1150
            assert receiver.bad_signatures == 0 and len(receiver.attempts) == 4
        finally:
            await stop()


# -- Redis: counters shared by two ledger replicas ----------------------------------------------------


async def test_two_ledger_replicas_share_budget_counters_through_redis(database_url, tmp_path):
    first, stop_first = await start_ledger(database_url, tmp_path / "a", redis_url=REDIS_URL)
    second, stop_second = await start_ledger(database_url, tmp_path / "b", redis_url=REDIS_URL)
    try:
        key = f"key_{uuid.uuid4().hex[:8]}"
        budget = await set_budget(first, scope="key", scope_id=key, amount_micro_usd=1000,
                                  hard=True)
        # the second replica learns the budget from the database
        for _ in range(50):
            listed = (await second.ListBudgets(pb.ListBudgetsRequest(), metadata=ADMIN)).budgets
            reply = await second.Admit(admit("probe", 0, key=key))
            if listed and reply.unrestricted_ttl_ms == 0:
                break
            await asyncio.sleep(0.1)
        replies = await asyncio.gather(*(
            (first if i % 2 else second).Admit(admit(f"r{i}", 100, key=key)) for i in range(40)
        ))
        assert sum(r.admitted for r in replies) == 10
        admitted = [f"r{i}" for i, r in enumerate(replies) if r.admitted]
        # settled through one replica, seen by the other
        await first.RecordUsage(pb.RecordUsageRequest(
            entries=[usage(r, 50, key=key) for r in admitted]))
        listed = (await second.ListBudgets(pb.ListBudgetsRequest(), metadata=ADMIN)).budgets
        mine = next(b for b in listed if b.budget_id == budget.budget_id)
        assert (mine.spent_micro_usd, mine.reserved_micro_usd) == (500, 0)
    finally:
        await stop_first()
        await stop_second()
