"""Both budget counter backends reserve the same way (in process, and one Lua
script in a real Redis): a call all or nothing, admission tickets one by one
until one does not fit, a request id never twice."""

from __future__ import annotations

import uuid

import pytest

from services.ledger.budget_counters import Hold, MemoryCounters, RedisCounters

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["memory", "redis"])
async def counters(request):
    made = MemoryCounters() if request.param == "memory" else RedisCounters(REDIS_URL)
    yield made
    await made.close()


def holds(cap: int) -> list[Hold]:
    """A hard cap and a soft budget, on keys no other run uses (Redis keeps them)."""
    run = uuid.uuid4().hex
    return [Hold(f"hard-{run}", cap), Hold(f"soft-{run}", None)]


async def seeded(counters, keys: list[Hold]) -> list[Hold]:
    for hold in keys:
        await counters.seed(hold.key, 0)
    return keys


async def test_tickets_are_reserved_until_one_does_not_fit(counters):
    keys = await seeded(counters, holds(cap=1000))
    run = uuid.uuid4().hex
    ids = [f"adm_{run}_{i}" for i in range(5)]
    assert await counters.reserve_each(ids, keys, 300, 60) == 3
    assert await counters.level(keys[0].key) == await counters.level(keys[1].key)
    assert (await counters.level(keys[0].key)).reserved == 900
    # Asked again, the three held count as reserved and nothing is added twice.
    assert await counters.reserve_each(ids[:3], keys, 300, 60) == 3
    assert (await counters.level(keys[0].key)).reserved == 900
    # A call that does not fit is refused naming the hard cap.
    assert await counters.reserve(f"call-{run}", keys, 200, 60) == keys[0].key
    await counters.settle(ids[0], [])
    assert await counters.reserve(f"call-{run}", keys, 200, 60) is None
    assert (await counters.level(keys[0].key)).reserved == 800


async def test_nothing_to_hold_reserves_every_ticket(counters):
    assert await counters.reserve_each(["a", "b"], [], 300, 60) == 2
