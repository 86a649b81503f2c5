"""services/auth/principals.py PrincipalCache: one database load per credential
at a time, an expired principal used while it is re-read, and a load
overtaken by a revocation not cached."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from services.auth.principals import Principal, PrincipalCache

ALICE = Principal("key_1", "ten_1", "default", ("developer",), (), "active", owner_id="usr_1")


class Loader:
    """A database read that takes as long as the test says."""

    def __init__(self, result: Principal | None = ALICE):
        self.result = result
        self.calls = 0
        self.release = asyncio.Event()
        self.fail: Exception | None = None

    async def __call__(self) -> Principal | None:
        self.calls += 1
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return self.result


async def loaded_then_expired(cache: PrincipalCache, load: Loader, wait: float) -> None:
    """One load answered at once, then `wait` seconds: the entry has expired, and
    the database is slow again (until the test releases it)."""
    load.release.set()
    await cache.get("h", load)
    await asyncio.sleep(wait)
    load.release.clear()


async def test_concurrent_misses_share_one_load():
    cache, load = PrincipalCache(60), Loader()
    callers = [asyncio.create_task(cache.get("h", load)) for _ in range(50)]
    await asyncio.sleep(0)
    load.release.set()
    assert await asyncio.gather(*callers) == [ALICE] * 50
    assert load.calls == 1
    assert await cache.get("h", load) == ALICE  # cached now
    assert load.calls == 1


async def test_an_expired_entry_is_loaded_again():
    cache, load = PrincipalCache(0.01, stale_seconds=0), Loader()
    await loaded_then_expired(cache, load, 0.02)
    load.release.set()
    await cache.get("h", load)
    assert load.calls == 2


async def test_a_failed_load_fails_every_waiter_and_the_next_call_retries():
    cache, load = PrincipalCache(60), Loader()
    load.fail = OSError("database is locked")
    callers = [asyncio.create_task(cache.get("h", load)) for _ in range(3)]
    await asyncio.sleep(0)
    load.release.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(r, OSError) for r in results)
    load.fail = None
    assert await cache.get("h", load) == ALICE
    assert load.calls == 2


async def test_a_caller_that_goes_away_does_not_cancel_the_load_for_the_others():
    cache, load = PrincipalCache(60), Loader()
    leaving = asyncio.create_task(cache.get("h", load))
    staying = asyncio.create_task(cache.get("h", load))
    await asyncio.sleep(0)
    leaving.cancel()
    load.release.set()
    assert await staying == ALICE
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert load.calls == 1


@pytest.mark.parametrize("change", ["drop_key", "drop_owner", "clear"])
async def test_a_load_overtaken_by_a_revocation_is_answered_but_not_cached(change):
    cache, load = PrincipalCache(60), Loader()
    caller = asyncio.create_task(cache.get("h", load))
    await asyncio.sleep(0)
    # The key is revoked while its (pre-revocation) row is being read.
    {"drop_key": lambda: cache.drop_key("key_1"),
     "drop_owner": lambda: cache.drop(owner_ids={"usr_1"}),
     "clear": cache.clear}[change]()
    load.release.set()
    assert await caller == ALICE
    load.result = None  # what the database says now
    assert await cache.get("h", load) is None
    assert load.calls == 2


async def test_unknown_keys_are_cached_briefly():
    cache, load = PrincipalCache(60, negative_ttl=0.01), Loader(result=None)
    load.release.set()
    assert await cache.get("h", load) is None
    assert await cache.get("h", load) is None
    assert load.calls == 1
    await asyncio.sleep(0.02)
    await cache.get("h", load)
    assert load.calls == 2


async def test_an_expired_principal_is_used_while_it_is_read_again():
    cache, load = PrincipalCache(0.2, stale_seconds=60), Loader()
    await loaded_then_expired(cache, load, 0.25)
    load.result = dataclasses.replace(ALICE, roles=("viewer",))
    # Answered at once, from the expired entry; one re-read started for all.
    answers = await asyncio.gather(*(cache.get("h", load) for _ in range(10)))
    assert answers == [ALICE] * 10
    assert load.calls == 2
    load.release.set()
    await asyncio.sleep(0.01)  # the re-read lands
    assert (await cache.get("h", load)).roles == ("viewer",)
    assert load.calls == 2


async def test_past_the_stale_window_callers_wait_for_the_database():
    cache, load = PrincipalCache(0.01, stale_seconds=0.01), Loader()
    await loaded_then_expired(cache, load, 0.05)
    waiting = asyncio.create_task(cache.get("h", load))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    load.release.set()
    assert await waiting == ALICE


async def test_an_unknown_key_is_never_answered_stale():
    cache, load = PrincipalCache(60, negative_ttl=0.01, stale_seconds=60), Loader(result=None)
    load.release.set()
    assert await cache.get("h", load) is None
    await asyncio.sleep(0.02)
    load.result = ALICE  # the key exists now
    assert await cache.get("h", load) == ALICE


async def test_a_failed_re_read_is_logged_and_the_expired_principal_kept(caplog):
    cache, load = PrincipalCache(0.01, stale_seconds=60), Loader()
    await loaded_then_expired(cache, load, 0.02)
    load.release.set()
    load.fail = OSError("database is locked")
    assert await cache.get("h", load) == ALICE
    await asyncio.sleep(0.01)  # the re-read fails
    assert "key lookup failed" in caplog.text
    assert await cache.get("h", load) == ALICE  # still within the stale window
