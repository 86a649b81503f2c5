"""Routing through the real router process code (in-process gRPC on port 0)
against real simulators: retries, Retry-After, circuit breakers, deadlines,
routing policy, /v1/models filtering, embeddings, hot reload, the admin RPC."""

from __future__ import annotations

import asyncio
import json
import shutil
import time

import grpc
import orjson
import pytest
from google.api import httpbody_pb2

from lockgate.identity import KEY_ID, MODELS, ROLES, TENANT_ID, TENANT_NAME
from lockgate.policy import DEFAULT_ROOT
from lockgate.router.v1 import router_service_pb2 as pb
from lockgate.sim.config import SimConfig
from tests.integration.router_harness import running_router, simulators

MESSAGES = [{"role": "user", "content": "hello routing"}]

GATEWAY = """
providers:
  good: {{type: openai, base_url: "http://127.0.0.1:{good}/v1"}}
  good2: {{type: openai, base_url: "http://127.0.0.1:{good2}/v1"}}
  failing: {{type: openai, base_url: "http://127.0.0.1:{failing}/v1"}}
  limited: {{type: openai, base_url: "http://127.0.0.1:{limited}/v1"}}
  slow: {{type: openai, base_url: "http://127.0.0.1:{slow}/v1"}}
deployments:
  good-us: {{provider: good, model: sim-small, region: us-east-1}}
  good-eu: {{provider: good2, model: sim-small, region: eu-west-1}}
  failing: {{provider: failing, model: sim-small}}
  limited: {{provider: limited, model: sim-small}}
  slow: {{provider: slow, model: sim-small, timeouts: {{total: 0.3}}}}
  embed: {{provider: good, model: sim-embed}}
  capped: {{provider: good, model: sim-small, limits: {{requests_per_minute: 2}}}}
models:
  demo: {{deployments: [good-us]}}
  regional: {{deployments: [good-us, good-eu]}}
  breaker: {{deployments: [failing, good-us], retry: {{attempts: 1}}}}
  retry3: {{deployments: [failing], retry: {{attempts: 3, initial_backoff: 0.01}}}}
  patient: {{deployments: [limited, good-us], retry: {{attempts: 2, max_retry_after: 5}}}}
  impatient: {{deployments: [limited, good-us], retry: {{attempts: 2, max_retry_after: 0.5}}}}
  slow: {{deployments: [slow, good-us], retry: {{attempts: 1}}}}
  slow-only: {{deployments: [slow], retry: {{attempts: 1}}}}
  embed: {{kind: embeddings, deployments: [embed]}}
  capped: {{deployments: [capped, good-eu]}}
  capped-only: {{deployments: [capped]}}
routing:
  circuit_breaker: {{consecutive_failures: 3, open_seconds: 0.5, min_calls: 100}}
"""


def identity(tenant="ten_a", name="acme", roles="developer", models=""):
    return ((TENANT_ID, tenant), (TENANT_NAME, name), (KEY_ID, "key_1"), (ROLES, roles),
            (MODELS, models))


@pytest.fixture
async def env(tmp_path):
    sims = {
        "good": SimConfig(), "good2": SimConfig(),
        "failing": SimConfig(error_rate=1.0, error_status=500),
        "limited": SimConfig(error_rate=1.0, error_status=429),
        "slow": SimConfig(latency_ms=2000),
    }
    policies = tmp_path / "policies"
    shutil.copytree(DEFAULT_ROOT, policies)
    (policies / "lockgate/routing/data.json").write_text(json.dumps({
        "tenant_regions": {"eu-corp": {"eu-west-1": True}},
        "tenant_labels": {},
        "tenant_aliases": {"narrow": {"demo": True}},
    }))
    async with simulators(sims) as ports, running_router(
        tmp_path, GATEWAY.format(**ports), policy_dir=policies, config_reload_interval=0.1,
    ) as rut:
        yield _Env(rut)


class _Env:
    """The router under test with shortcuts for these tests."""

    def __init__(self, rut):
        self.router, self.admin, self.config_path = rut.router, rut.admin, rut.config_path

    async def chat(self, model, metadata=None, **extra):
        return await http_call(self.router.OpenAIChatCompletions, pb.OpenAIChatCompletionsRequest,
                               {"model": model, "messages": MESSAGES, **extra},
                               metadata or identity())

    async def deployment(self, name):
        table = await self.admin.GetRoutingTable(
            pb.GetRoutingTableRequest(), metadata=identity(roles="platform_admin"))
        return next(d for d in table.deployments if d.name == name)

async def http_call(method, request_type, body, metadata, grpc_timeout=None):
    call = method(
        request_type(http_body=httpbody_pb2.HttpBody(content_type="application/json",
                                                     data=orjson.dumps(body))),
        metadata=metadata, timeout=grpc_timeout,
    )
    parts = [m async for m in call] if hasattr(call, "__aiter__") else [await call]
    headers = dict(await call.initial_metadata())
    status = int(headers.get("x-lockgate-http-status", 200))
    return status, orjson.loads(b"".join(p.data for p in parts))


async def test_retries_on_one_deployment_before_giving_up(env):
    status, reply = await env.chat("retry3")
    assert status == 502 and reply["error"]["code"] == "upstream_error"
    failing = await env.deployment("failing")
    assert failing.calls == 3 and failing.failures == 3


async def test_breaker_opens_then_skips_the_deployment_then_probes_it(env):
    for _ in range(3):
        status, _ = await env.chat("breaker")
        assert status == 200  # failed over to good-us
    failing = await env.deployment("failing")
    assert failing.breaker_state == "open" and failing.calls == 3
    status, _ = await env.chat("breaker")
    assert status == 200
    assert (await env.deployment("failing")).calls == 3  # skipped while open
    await asyncio.sleep(0.6)
    status, _ = await env.chat("breaker")  # half-open: one probe, which fails again
    assert status == 200
    failing = await env.deployment("failing")
    assert failing.calls == 4 and failing.breaker_state == "open"


async def test_short_retry_after_is_waited_for(env):
    started = time.monotonic()
    status, _ = await env.chat("patient")
    elapsed = time.monotonic() - started
    assert status == 200
    assert (await env.deployment("limited")).calls == 2  # retried once, after the pause
    assert elapsed >= 0.95  # the simulator sends Retry-After: 1


async def test_long_retry_after_fails_over_at_once(env):
    started = time.monotonic()
    status, _ = await env.chat("impatient")
    assert status == 200
    assert time.monotonic() - started < 0.9
    assert (await env.deployment("limited")).calls == 1


async def test_a_timed_out_deployment_fails_over(env):
    status, reply = await env.chat("slow")
    assert status == 200 and reply["object"] == "chat.completion"
    status, reply = await env.chat("slow-only")
    assert status == 504 and reply["error"]["code"] == "upstream_timeout"


async def test_the_callers_deadline_bounds_the_call(env):
    """The router gives up when the caller's deadline passes. Both ends watch the
    same deadline, so either the client's fires (DEADLINE_EXCEEDED) or the router's
    504 arrives just before it: never a wait for the slow provider."""
    started = time.monotonic()
    try:
        status, reply = await http_call(
            env.router.OpenAIChatCompletions, pb.OpenAIChatCompletionsRequest,
            {"model": "slow", "messages": MESSAGES}, identity(), grpc_timeout=0.2)
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    else:
        assert status == 504 and reply["error"]["code"] == "upstream_timeout"
    assert time.monotonic() - started < 1.0


async def test_routing_policy_keeps_a_tenants_calls_in_its_regions(env):
    eu = identity(tenant="ten_eu", name="eu-corp")
    for _ in range(3):
        assert (await env.chat("regional", eu))[0] == 200
    assert (await env.deployment("good-eu")).calls == 3
    assert (await env.deployment("good-us")).calls == 0
    status, reply = await env.chat("demo", eu)  # demo only has a US deployment
    assert status == 403
    assert "data residency" in reply["error"]["message"]
    assert reply["error"]["code"] == "model_not_allowed"


async def test_models_lists_only_what_the_caller_may_use(env):
    async def listed(metadata):
        reply = await env.router.OpenAIListModels(pb.OpenAIListModelsRequest(), metadata=metadata)
        return [m["id"] for m in orjson.loads(reply.data)["data"]]

    everything = await listed(identity())
    assert {"demo", "regional", "embed"} <= set(everything)
    assert await listed(identity(models="demo,embed")) == ["demo", "embed"]  # key scope
    assert await listed(identity(tenant="ten_n", name="narrow")) == ["demo"]  # tenant aliases
    eu = await listed(identity(tenant="ten_eu", name="eu-corp"))
    assert "regional" in eu and "demo" not in eu  # residency leaves demo no deployment
    status, reply = await env.chat("regional", identity(tenant="ten_n", name="narrow"))
    assert status == 403 and reply["error"]["message"] == (
        "Your organization may not use the model `regional`."
    )


async def test_embeddings(env):
    status, reply = await http_call(
        env.router.OpenAIEmbeddings, pb.OpenAIEmbeddingsRequest,
        {"model": "embed", "input": ["a", "b"]}, identity())
    assert status == 200
    assert reply["object"] == "list" and reply["model"] == "embed"
    assert [d["index"] for d in reply["data"]] == [0, 1]
    status, reply = await http_call(
        env.router.OpenAIEmbeddings, pb.OpenAIEmbeddingsRequest,
        {"model": "demo", "input": "a"}, identity())
    assert status == 400 and reply["error"]["code"] == "model_not_supported"
    status, reply = await env.chat("embed")
    assert status == 400 and reply["error"]["param"] == "model"
    status, reply = await http_call(
        env.router.OpenAIEmbeddings, pb.OpenAIEmbeddingsRequest,
        {"model": "embed", "input": []}, identity())
    assert status == 400 and reply["error"]["param"] == "input"


async def test_hot_reload_applies_good_configs_and_keeps_the_last_good_one(env):
    admin = identity(roles="platform_admin")
    before = await env.admin.GetRoutingTable(pb.GetRoutingTableRequest(), metadata=admin)
    text = env.config_path.read_text()
    env.config_path.write_text(text.replace("  demo: {deployments: [good-us]}",
                                            "  demo: {deployments: [good-us]}\n"
                                            "  renamed: {deployments: [good-eu]}"))
    for _ in range(50):
        table = await env.admin.GetRoutingTable(pb.GetRoutingTableRequest(), metadata=admin)
        if table.generation > before.generation:
            break
        await asyncio.sleep(0.05)
    assert "renamed" in [a.alias for a in table.aliases]
    assert (await env.chat("renamed"))[0] == 200

    env.config_path.write_text(text.replace("strategy", "x") + "\nbogus: 1\n")
    reply = await env.admin.ReloadGatewayConfig(pb.ReloadGatewayConfigRequest(), metadata=admin)
    assert not reply.applied and "bogus" in reply.error
    assert reply.generation == table.generation
    assert (await env.chat("renamed"))[0] == 200  # the previous config still serves
    table = await env.admin.GetRoutingTable(pb.GetRoutingTableRequest(), metadata=admin)
    assert "bogus" in table.last_reload_error


async def test_in_flight_calls_survive_a_reload(env):
    pending = asyncio.create_task(env.chat("slow"))  # 0.3 s on slow, then fails over
    await asyncio.sleep(0.05)
    env.config_path.write_text(env.config_path.read_text().replace(
        "  demo: {deployments: [good-us]}", "  demo: {deployments: [good-eu]}"))
    reply = await env.admin.ReloadGatewayConfig(
        pb.ReloadGatewayConfigRequest(), metadata=identity(roles="platform_admin"))
    assert reply.applied
    status, _ = await pending
    assert status == 200


async def test_admin_rpc_needs_platform_admin(env):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await env.admin.GetRoutingTable(pb.GetRoutingTableRequest(),
                                        metadata=identity(roles="tenant_admin"))
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_typed_embeddings_and_rich_chat_messages(env):
    reply = await env.router.CreateEmbeddings(
        pb.CreateEmbeddingsRequest(model="embed", inputs=["a", "b"], dimensions=4),
        metadata=identity())
    assert reply.model == "embed" and [e.index for e in reply.embeddings] == [0, 1]
    assert all(len(e.values) == 4 for e in reply.embeddings)
    assert reply.usage.input_tokens > 0 and reply.request_id

    request = pb.CreateChatCompletionRequest(
        model="demo",
        messages=[pb.ChatMessage(role="user", parts=[
            pb.ContentPart(text="describe"),
            pb.ContentPart(image_url=pb.ImageUrl(url="data:image/png;base64,iVBORw0KGgo=")),
        ])],
        parameters=pb.ChatParameters(max_tokens=50,
                                     response_format=pb.ResponseFormat(type="json_object")),
    )
    reply = await env.router.CreateChatCompletion(request, metadata=identity())
    assert reply.choices[0].message.role == "assistant" and reply.usage.input_tokens > 0

    both = pb.ChatMessage(role="user", content="x", parts=[pb.ContentPart(text="y")])
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await env.router.CreateChatCompletion(
            pb.CreateChatCompletionRequest(model="demo", messages=[both]), metadata=identity())
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_deployment_at_its_request_rate_is_skipped_not_sent_a_call(env):
    for _ in range(2):
        assert (await env.chat("capped"))[0] == 200
    assert (await env.deployment("good-eu")).calls == 0
    assert (await env.chat("capped"))[0] == 200  # the third in the minute fails over
    assert (await env.deployment("capped")).calls == 2
    assert (await env.deployment("good-eu")).calls == 1
    status, reply = await env.chat("capped-only")
    assert status == 429 and reply["error"]["code"] == "deployment_rate_limited"


async def test_typed_model_list_is_filtered_like_v1_models(env):
    reply = await env.router.ListModels(pb.ListModelsRequest(kind="embeddings"),
                                        metadata=identity())
    assert [(m.id, m.kind) for m in reply.models] == [("embed", "embeddings")]
    reply = await env.router.ListModels(pb.ListModelsRequest(),
                                        metadata=identity(models="demo,embed"))
    assert [m.id for m in reply.models] == ["demo", "embed"]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await env.router.ListModels(pb.ListModelsRequest(kind="images"), metadata=identity())
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
