"""The Redis response cache against a real Redis (LOCKGATE_TEST_REDIS_URL, default
the local one at 127.0.0.1:6379), failing open when Redis is gone or stuck; and
stream assembly against the provider simulator."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis
from openai.types.chat import ChatCompletion
from prometheus_client import REGISTRY

from lockgate.sim.config import SimConfig
from lockgate.sim.server import serve
from services.router.cache import (
    RedisCache,
    build_cache,
    cache_key,
    chunks_to_completion,
    completion_to_chunks,
)
from services.router.config import ResponseCacheConfig

REDIS_URL = os.environ.get("LOCKGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CLOSED_PORT_URL = "redis://127.0.0.1:9/0"  # discard port: nothing listens there
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def raw():
    client = aioredis.Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(raw):
    """A key prefix of this test's own; its keys are deleted afterwards."""
    value = f"lgtest:{secrets.token_hex(8)}:"
    yield value
    keys = [k async for k in raw.scan_iter(match=value + "*")]
    if keys:
        await raw.delete(*keys)


@pytest.fixture
async def cache(prefix):
    c = RedisCache(REDIS_URL, max_entry_bytes=1024, key_prefix=prefix)
    yield c
    await c.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


def errors_metric(op: str) -> float:
    labels = {"backend": "redis", "op": op}
    return REGISTRY.get_sample_value("lockgate_router_cache_errors_total", labels) or 0.0


async def test_put_get_round_trip_with_ttl_on_the_key(cache, raw, prefix):
    key = cache_key("tenant-a", "m", "chat", BODY)
    assert await cache.get(key) is None
    await cache.put(key, b'{"answer":1}', ttl_seconds=300)
    assert await cache.get(key) == b'{"answer":1}'
    assert await raw.get(prefix + key) == b'{"answer":1}'
    assert 290 <= await raw.ttl(prefix + key) <= 300
    assert (cache.stats.hits, cache.stats.misses, cache.stats.writes) == (1, 1, 1)


async def test_entries_expire(cache):
    # Two seconds: on a loaded machine one can pass between the put and the get.
    await cache.put("k", b"v", ttl_seconds=2)
    assert await cache.get("k") == b"v"
    await asyncio.sleep(2.2)
    assert await cache.get("k") is None


async def test_tenants_do_not_share_entries(cache):
    await cache.put(cache_key("tenant-a", "m", "chat", BODY), b"for a", ttl_seconds=60)
    assert await cache.get(cache_key("tenant-b", "m", "chat", BODY)) is None
    assert await cache.get(cache_key("tenant-a", "m", "chat", BODY)) == b"for a"


async def test_oversized_and_zero_ttl_are_not_written(cache, raw, prefix):
    await cache.put("big", b"x" * 1025, ttl_seconds=60)
    await cache.put("zero", b"x", ttl_seconds=0)
    assert await raw.exists(prefix + "big", prefix + "zero") == 0
    assert cache.stats.skipped == 2


async def test_build_cache_uses_redis_when_configured(raw, prefix):
    built = build_cache(ResponseCacheConfig(backend="redis", redis_url=REDIS_URL))
    try:
        key = prefix + "built"  # build_cache uses no prefix: name the key inside ours
        await built.put(key, b"v", ttl_seconds=30)
        assert await raw.get(key) == b"v"
        assert await built.get(key) == b"v"
    finally:
        await built.close()


async def test_a_redis_error_is_a_miss_and_does_not_stop_later_calls(cache, raw, prefix):
    await raw.hset(prefix + "hash", "f", "v")  # GET on a hash: WRONGTYPE
    before = errors_metric("get")
    assert await cache.get("hash") is None
    assert errors_metric("get") == before + 1
    assert cache.available  # Redis answered: no reason to stop asking
    await cache.put("after", b"v", ttl_seconds=60)
    assert await cache.get("after") == b"v"


async def test_fails_open_fast_when_redis_is_unreachable(caplog):
    clock = FakeClock()
    cache = RedisCache(CLOSED_PORT_URL, max_entry_bytes=1024, down_seconds=0, clock=clock)
    before = errors_metric("get"), errors_metric("put")
    caplog.set_level(logging.WARNING, logger="lockgate.router.cache")
    try:
        started = time.monotonic()
        for _ in range(20):
            assert await cache.get("k") is None
            await cache.put("k", b"v", ttl_seconds=60)
        elapsed = time.monotonic() - started
        clock.now += 60  # the next interval: one more line, counting what was held back
        assert await cache.get("k") is None
    finally:
        await cache.close()
    assert elapsed < 2.0  # 40 calls, each bounded (connection refused is immediate)
    assert cache.stats.misses == 21 and cache.stats.errors == 41
    assert (errors_metric("get"), errors_metric("put")) == (before[0] + 21, before[1] + 20)
    warnings = [r.getMessage() for r in caplog.records if r.name == "lockgate.router.cache"]
    assert len(warnings) == 2  # throttled: one line per interval, not one per call
    assert "redis get failed (ConnectionError" in warnings[0]
    assert "(0 similar warnings suppressed)" in warnings[0]
    assert "(39 similar warnings suppressed)" in warnings[1]


@pytest.fixture
async def stuck_redis():
    """A TCP server that accepts connections and never answers (a hung Redis).
    Yields (url, number of connections accepted so far)."""
    accepted = []
    writers = []

    async def handle(reader, writer):
        accepted.append(1)
        writers.append(writer)
        await reader.read()  # hold the connection, say nothing

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"redis://127.0.0.1:{port}/0", accepted
    for writer in writers:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_a_hung_redis_costs_one_bounded_wait_then_nothing(stuck_redis):
    url, accepted = stuck_redis
    clock = FakeClock()
    cache = RedisCache(url, max_entry_bytes=1024, timeout=0.1, down_seconds=1.0, clock=clock)
    try:
        started = time.monotonic()
        assert await cache.get("k") is None
        assert time.monotonic() - started < 0.5  # bounded by the timeout, not the hang
        assert not cache.available

        # While Redis is marked down, calls do not touch it at all.
        started = time.monotonic()
        for _ in range(50):
            assert await cache.get("k") is None
            await cache.put("k", b"v", ttl_seconds=60)
        assert time.monotonic() - started < 0.1
        assert len(accepted) == 1
        assert cache.stats.errors == 1 and cache.stats.misses == 51

        # After down_seconds Redis is tried again (and still hangs: bounded again).
        clock.now += 1.0
        assert cache.available
        started = time.monotonic()
        await cache.put("k", b"v", ttl_seconds=60)
        assert time.monotonic() - started < 0.5
        assert cache.stats.errors == 2
    finally:
        await cache.close()


async def test_a_stream_assembles_to_the_non_streamed_answer():
    """Against the simulator: the assembled stream is what a non-streamed call
    returns (bar id and timestamp), and replaying it reassembles the same."""
    runner, port = await serve("127.0.0.1", 0, SimConfig())
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    body = {"model": "sim", "messages": [{"role": "user", "content": "Tell me a story"}], "n": 2}
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(url, json=body) as resp:
                plain = await resp.json()
            streamed = {**body, "stream": True, "stream_options": {"include_usage": True}}
            async with http.post(url, json=streamed, headers={"x-sim-chunk-count": "5"}) as resp:
                raw = (await resp.read()).decode()
    finally:
        await runner.cleanup()
    events = [line[6:] for line in raw.split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert len(chunks) > 5
    assembled = chunks_to_completion(chunks)

    def view(completion: dict) -> dict:
        return ChatCompletion.model_validate(completion).model_dump(exclude={"id", "created"})

    assert view(assembled) == view(plain)
    assert chunks_to_completion(completion_to_chunks(assembled)) == assembled
