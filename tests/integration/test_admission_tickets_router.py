"""Admission tickets end to end in the router (real router, ledger and simulator):
a busy caller's calls go ahead on tickets, each is told its limits, and every
reservation is settled by the call's usage entry or handed back unused."""

from __future__ import annotations

import asyncio

import pytest

from lockgate.ledger.v1 import ledger_service_pb2 as ledger_pb
from lockgate.sim.config import SimConfig
from services.router.admission import ADMISSIONS, TICKETS
from tests.integration.router_harness import running_router, simulators
from tests.integration.test_router_admission import ADMIN, GATEWAY, chat

CALLS = 40


def count(metric, outcome: str) -> float:
    return metric.labels(outcome)._value.get()


async def govern(rut) -> None:
    await rut.ledger.SetBudget(ledger_pb.SetBudgetRequest(
        scope="tenant", amount_micro_usd=100_000_000, period="day", hard=True), metadata=ADMIN)
    await rut.ledger.SetRateLimit(ledger_pb.SetRateLimitRequest(
        scope="key", scope_id="key_r", tokens_per_minute=10_000_000), metadata=ADMIN)


async def settled(rut) -> ledger_pb.Budget:
    """The budget once nothing is reserved on it any more (usage recorded, unused
    tickets handed back); fails after 10 s."""
    for _ in range(200):
        budget = (await rut.ledger.ListBudgets(ledger_pb.ListBudgetsRequest(),
                                               metadata=ADMIN)).budgets[0]
        if budget.reserved_micro_usd == 0:
            return budget
        await asyncio.sleep(0.05)
    raise AssertionError(f"still reserved: {budget}")


async def spent_by_entries(rut) -> int:
    usage = await rut.ledger.ListUsage(ledger_pb.ListUsageRequest(page_size=1000),
                                       metadata=ADMIN)
    assert len(usage.entries) == CALLS
    return sum(e.cost_micro_usd for e in usage.entries)


@pytest.mark.parametrize("admit_over", ["http", "grpc"])
async def test_a_busy_caller_goes_ahead_on_tickets_and_every_reservation_settles(
        tmp_path, admit_over):
    async with (
        simulators({"sim": SimConfig(reply_words=5)}) as ports,
        running_router(tmp_path, GATEWAY.format(**ports), admit_over=admit_over) as rut,
    ):
        await govern(rut)
        ticketed, granted = count(ADMISSIONS, "ticket"), count(TICKETS, "granted")
        for i in range(CALLS):
            status, headers, body = await chat(rut.router, f"t{i}")
            assert status == 200, body
            # Every call, on a ticket or not, is told its token limit.
            assert headers["x-ratelimit-limit-tokens"] == "10000000"
        used = count(ADMISSIONS, "ticket") - ticketed
        assert used >= CALLS // 2, used
        assert count(TICKETS, "granted") - granted >= used
        budget = await settled(rut)
        assert budget.spent_micro_usd == await spent_by_entries(rut) > 0


async def test_tickets_can_be_turned_off(tmp_path):
    async with (
        simulators({"sim": SimConfig(reply_words=5)}) as ports,
        running_router(tmp_path, GATEWAY.format(**ports), admission_tickets=False) as rut,
    ):
        await govern(rut)
        ticketed, admitted = count(ADMISSIONS, "ticket"), count(ADMISSIONS, "admitted")
        for i in range(CALLS):
            assert (await chat(rut.router, f"t{i}"))[0] == 200
        assert count(ADMISSIONS, "ticket") == ticketed
        assert count(ADMISSIONS, "admitted") - admitted == CALLS
        budget = await settled(rut)
        assert budget.spent_micro_usd == await spent_by_entries(rut) > 0
