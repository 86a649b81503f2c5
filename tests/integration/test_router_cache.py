"""The response cache and usage estimates through the router (in-process
gRPC) against a real simulator and ledger, with the memory and the Redis
backend (the local Redis at 127.0.0.1:6379)."""

from __future__ import annotations

import uuid

import orjson
import pytest
from google.api import httpbody_pb2

from lockgate.identity import KEY_ID, ROLES, TENANT_ID, TENANT_NAME
from lockgate.router.v1 import router_service_pb2 as pb
from lockgate.sim.config import SimConfig
from tests.integration.router_harness import running_router, simulators
from tests.integration.test_router import ledger_entry

GATEWAY = """
providers:
  sim: {{type: openai, base_url: "http://127.0.0.1:{port}/v1"}}
  sim-no-usage: {{type: mistral, base_url: "http://127.0.0.1:{port}/v1"}}
deployments:
  d: {{provider: sim, model: sim-small, price: {{input: 2.5, output: 10}}}}
  quiet: {{provider: sim-no-usage, model: sim-small}}
  e: {{provider: sim, model: sim-embed}}
models:
  cached: {{deployments: [d], cache: {{ttl_seconds: 60}}}}
  uncached: {{deployments: [d]}}
  quiet: {{deployments: [quiet]}}
  embed: {{kind: embeddings, deployments: [e], cache: {{ttl_seconds: 60}}}}
routing:
  cache: {cache}
"""
BACKENDS = {
    "memory": "{backend: memory, max_bytes: 1048576}",
    "redis": "{backend: redis, redis_url: 'redis://127.0.0.1:6379/0'}",
}


def identity(tenant: str):
    return ((TENANT_ID, tenant), (TENANT_NAME, tenant), (KEY_ID, "key_1"), (ROLES, "developer"))


@pytest.fixture(params=sorted(BACKENDS))
async def env(request, tmp_path):
    async with simulators({"sim": SimConfig()}) as ports, running_router(
        tmp_path, GATEWAY.format(port=ports["sim"], cache=BACKENDS[request.param])
    ) as rut:
        yield rut.router, rut.ledger


async def call(router, body, tenant, request_id, *extra_metadata, method="chat"):
    data = httpbody_pb2.HttpBody(content_type="application/json", data=orjson.dumps(body))
    metadata = (*identity(tenant), ("x-request-id", request_id), *extra_metadata)
    if method == "chat":
        rpc = router.OpenAIChatCompletions(pb.OpenAIChatCompletionsRequest(http_body=data),
                                           metadata=metadata)
        parts = [m async for m in rpc]
    else:
        rpc = router.OpenAIEmbeddings(pb.OpenAIEmbeddingsRequest(http_body=data),
                                      metadata=metadata)
        parts = [await rpc]
    headers = dict(await rpc.initial_metadata())
    return headers, b"".join(p.data for p in parts)


def body(model="cached", **extra):
    # A unique conversation per test run: the Redis backend outlives the test.
    return {"model": model, "messages": [{"role": "user", "content": f"q {RUN}"}], **extra}


RUN = uuid.uuid4().hex


async def test_second_identical_request_is_a_hit_marked_in_header_and_ledger(env):
    router, ledger = env
    tenant = f"ten_{uuid.uuid4().hex[:8]}"
    headers, first = await call(router, body(), tenant, "c1")
    assert headers["x-lockgate-cache"] == "miss"
    headers, second = await call(router, body(temperature=None), tenant, "c2")
    assert headers["x-lockgate-cache"] == "hit"
    assert orjson.loads(second)["choices"] == orjson.loads(first)["choices"]
    miss, hit = await ledger_entry(ledger, "c1", tenant), await ledger_entry(ledger, "c2", tenant)
    assert (miss.cache_hit, miss.attempts) == (False, 1)
    assert (hit.cache_hit, hit.attempts) == (True, 0)
    # 2.5 and 10 USD per million tokens: micro-USD = 2.5 * in + 10 * out, rounded half up.
    exact = 2.5 * miss.usage.input_tokens + 10 * miss.usage.output_tokens
    assert miss.cost_micro_usd == int(exact + 0.5) and miss.price_source == "config"
    assert (hit.cost_micro_usd, hit.price_source) == (0, "")
    assert hit.usage.input_tokens == miss.usage.input_tokens


async def test_the_cache_is_scoped_by_tenant_and_alias(env):
    router, _ = env
    a, b = f"ten_{uuid.uuid4().hex[:8]}", f"ten_{uuid.uuid4().hex[:8]}"
    await call(router, body(), a, "s1")
    headers, _ = await call(router, body(), b, "s2")
    assert headers["x-lockgate-cache"] == "miss"
    headers, _ = await call(router, body("uncached"), a, "s3")
    assert "x-lockgate-cache" not in headers


async def test_no_cache_bypasses_and_no_store_does_not_write(env):
    router, _ = env
    tenant = f"ten_{uuid.uuid4().hex[:8]}"
    headers, _ = await call(router, body(), tenant, "n1", ("cache-control", "no-store"))
    assert headers["x-lockgate-cache"] == "bypass"
    headers, _ = await call(router, body(), tenant, "n2")
    assert headers["x-lockgate-cache"] == "miss"  # no-store kept nothing
    headers, _ = await call(router, body(), tenant, "n3", ("cache-control", "No-Cache"))
    assert headers["x-lockgate-cache"] == "bypass"


async def test_a_stream_is_served_from_a_cached_unary_answer_and_vice_versa(env):
    router, _ = env
    tenant = f"ten_{uuid.uuid4().hex[:8]}"
    _, unary = await call(router, body(), tenant, "x1")
    headers, streamed = await call(
        router, body(stream=True, stream_options={"include_usage": True}), tenant, "x2")
    assert headers["x-lockgate-cache"] == "hit"
    events = [orjson.loads(e[6:]) for e in streamed.decode().split("\n\n")
              if e.startswith("data: {")]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in events if c["choices"])
    assert text == orjson.loads(unary)["choices"][0]["message"]["content"]
    assert events[-1]["usage"]["completion_tokens"] > 0
    assert streamed.endswith(b"data: [DONE]\n\n")

    other = body(stream=True)  # without include_usage: the client never sees usage
    other["messages"][0]["content"] += " (streamed first)"
    await call(router, other, tenant, "x3")
    headers, data = await call(router, {**other, "stream": False}, tenant, "x4")
    assert headers["x-lockgate-cache"] == "hit"
    assert orjson.loads(data)["usage"]["completion_tokens"] > 0  # the cache kept it


async def test_embeddings_are_cached_too(env):
    router, _ = env
    tenant = f"ten_{uuid.uuid4().hex[:8]}"
    request = {"model": "embed", "input": [f"e {RUN}"]}
    headers, first = await call(router, request, tenant, "e1", method="embeddings")
    assert headers["x-lockgate-cache"] == "miss"
    headers, second = await call(router, request, tenant, "e2", method="embeddings")
    assert headers["x-lockgate-cache"] == "hit" and first == second


async def test_usage_is_estimated_and_marked_when_the_stream_has_none(env):
    router, ledger = env
    tenant = f"ten_{uuid.uuid4().hex[:8]}"
    _, data = await call(router, body("quiet", stream=True,
                                      stream_options={"include_usage": True}), tenant, "q1")
    events = [orjson.loads(e[6:]) for e in data.decode().split("\n\n") if e.startswith("data: {")]
    usage = events[-1]["usage"]
    assert events[-1]["choices"] == [] and usage["prompt_tokens"] > 0
    assert usage["completion_tokens"] > 0
    entry = await ledger_entry(ledger, "q1", tenant)
    assert entry.usage.estimated is True
    assert entry.usage.output_tokens == usage["completion_tokens"]

    _, data = await call(router, body("quiet", stream=True), tenant, "q2")
    assert b'"usage"' not in data  # not asked for: the estimate stays in the ledger
    assert (await ledger_entry(ledger, "q2", tenant)).usage.estimated is True
