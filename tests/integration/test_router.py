"""Router over gRPC (in-process, port 0) against real simulators and a real
ledger: wire format, failover, error statuses, streaming, metering."""

from __future__ import annotations

import asyncio
import os
import sys

import grpc
import orjson
import pytest
from google.api import httpbody_pb2

from lockgate.identity import KEY_ID, TENANT_ID
from lockgate.ledger.v1 import ledger_service_pb2 as ledger_pb
from lockgate.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc
from lockgate.router.v1 import router_service_pb2 as pb
from lockgate.router.v1 import router_service_pb2_grpc as pb_grpc
from lockgate.sim.config import SimConfig
from lockgate.sim.server import serve as serve_sim
from services.router.app import RouterApp, RouterSettings
from tests.conftest import free_port
from tests.integration.router_harness import running_router, simulators, start_ledger

IDENTITY = ((TENANT_ID, "ten_test"), (KEY_ID, "key_test"))
MESSAGES = [{"role": "user", "content": "hello router"}]

GATEWAY = """
providers:
  good: {{type: openai, base_url: "http://127.0.0.1:{good}/v1"}}
  failing: {{type: openai, base_url: "http://127.0.0.1:{failing}/v1"}}
  limited: {{type: openai, base_url: "http://127.0.0.1:{limited}/v1"}}
  dropping: {{type: openai, base_url: "http://127.0.0.1:{dropping}/v1"}}
  slow: {{type: openai, base_url: "http://127.0.0.1:{slow}/v1"}}
  nowhere: {{type: openai, base_url: "http://127.0.0.1:9/v1", timeouts: {{connect: 1}}}}
deployments:
  good: {{provider: good, model: sim-small}}
  failing: {{provider: failing, model: sim-small}}
  limited: {{provider: limited, model: sim-small}}
  dropping: {{provider: dropping, model: sim-small}}
  slow: {{provider: slow, model: sim-small}}
  nowhere: {{provider: nowhere, model: x}}
models:
  demo: {{deployments: [good]}}
  failing: {{deployments: [failing]}}
  limited: {{deployments: [limited]}}
  dropping: {{deployments: [dropping]}}
  slow: {{deployments: [slow]}}
  nowhere: {{deployments: [nowhere]}}
  failover: {{deployments: [nowhere, failing, good]}}
"""


@pytest.fixture
async def env(tmp_path):
    sims = {
        "good": SimConfig(),
        "failing": SimConfig(error_rate=1.0, error_status=500),
        "limited": SimConfig(error_rate=1.0, error_status=429),
        "dropping": SimConfig(drop_stream_after_chunks=2),
        "slow": SimConfig(chunk_interval_ms=100, reply_words=50),
    }
    async with simulators(sims) as ports, running_router(tmp_path, GATEWAY.format(**ports)) as rut:
        yield rut.router, rut.ledger


async def openai_call(router, body: dict, request_id: str = "req-1"):
    """Call the HttpBody method as Envoy does; returns (status, content type, bytes)."""
    call = router.OpenAIChatCompletions(
        pb.OpenAIChatCompletionsRequest(
            http_body=httpbody_pb2.HttpBody(content_type="application/json",
                                            data=orjson.dumps(body))
        ),
        metadata=(*IDENTITY, ("x-request-id", request_id)),
    )
    parts = [m async for m in call]
    headers = dict(await call.initial_metadata())
    status = int(headers.get("x-lockgate-http-status", 200))
    return status, parts[0].content_type, b"".join(p.data for p in parts)


async def ledger_entry(ledger, request_id: str, tenant: str = "ten_test") -> ledger_pb.UsageEntry:
    for _ in range(100):
        page = await ledger.ListUsage(ledger_pb.ListUsageRequest(page_size=100),
                                      metadata=((TENANT_ID, tenant), (KEY_ID, "key_test")))
        for entry in page.entries:
            if entry.request_id == request_id:
                return entry
        await asyncio.sleep(0.05)
    raise AssertionError(f"no usage entry for {request_id}")


async def test_unary_reply_is_openai_json_under_the_alias_and_metered(env):
    router, ledger = env
    status, ctype, data = await openai_call(router, {"model": "demo", "messages": MESSAGES}, "u1")
    assert (status, ctype) == (200, "application/json")
    reply = orjson.loads(data)
    assert reply["object"] == "chat.completion" and reply["model"] == "demo"
    assert type(reply["created"]) is int and reply["choices"][0]["index"] == 0
    entry = await ledger_entry(ledger, "u1")
    assert entry.tenant_id == "ten_test" and entry.key_id == "key_test"
    assert entry.deployment == "good" and entry.provider == "good"
    assert entry.usage.input_tokens == reply["usage"]["prompt_tokens"]
    assert entry.usage.output_tokens == reply["usage"]["completion_tokens"]
    assert entry.status == "ok"


async def test_stream_is_sse_with_done_and_usage_only_when_asked(env):
    router, ledger = env
    body = {"model": "demo", "messages": MESSAGES, "stream": True}
    status, ctype, data = await openai_call(router, body, "s1")
    assert (status, ctype) == (200, "text/event-stream")
    events = data.decode().split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    chunks = [orjson.loads(e[6:]) for e in events[:-2]]
    assert all("usage" not in c for c in chunks)
    assert all(c["model"] == "demo" for c in chunks)
    entry = await ledger_entry(ledger, "s1")
    assert entry.streamed and entry.usage.output_tokens > 0  # the router always meters

    body["stream_options"] = {"include_usage": True}
    _, _, data = await openai_call(router, body, "s2")
    last = orjson.loads(data.decode().split("\n\n")[-3][6:])
    assert last["choices"] == [] and last["usage"]["completion_tokens"] == entry.usage.output_tokens


@pytest.mark.parametrize(
    ("alias", "status", "code"),
    [
        ("failing", 502, "upstream_error"),
        ("limited", 429, "upstream_rate_limited"),
        ("nowhere", 503, "upstream_unavailable"),
        ("no-such-alias", 404, "model_not_found"),
    ],
)
async def test_failures_have_the_right_status(env, alias, status, code):
    router, ledger = env
    for stream in (False, True):
        got, ctype, data = await openai_call(
            router, {"model": alias, "messages": MESSAGES, "stream": stream}, f"{alias}-{stream}"
        )
        assert (got, ctype) == (status, "application/json")
        assert orjson.loads(data)["error"]["code"] == code
    entry = await ledger_entry(ledger, f"{alias}-False")
    assert entry.status == "error" and entry.error_type == code


@pytest.mark.parametrize(
    "body",
    [b"{", b"[]", b'{"model": "demo"}', b'{"model": "demo", "messages": [{"role": "x"}]}',
     b'{"messages": [{"role": "user", "content": "x"}]}'],
)
async def test_bad_bodies_are_400(env, body):
    router, _ = env
    call = router.OpenAIChatCompletions(
        pb.OpenAIChatCompletionsRequest(http_body=httpbody_pb2.HttpBody(data=body)),
        metadata=IDENTITY,
    )
    parts = [m async for m in call]
    assert dict(await call.initial_metadata())["x-lockgate-http-status"] == "400"
    assert orjson.loads(parts[0].data)["error"]["type"] == "invalid_request_error"


async def test_failover_skips_unreachable_and_failing_deployments(env):
    router, ledger = env
    status, _, data = await openai_call(router, {"model": "failover", "messages": MESSAGES}, "f1")
    assert status == 200 and orjson.loads(data)["choices"][0]["message"]["content"]
    assert (await ledger_entry(ledger, "f1")).deployment == "good"


async def test_stream_failure_after_first_byte_ends_in_band(env):
    router, ledger = env
    status, ctype, data = await openai_call(
        router, {"model": "dropping", "messages": MESSAGES, "stream": True}, "d1"
    )
    assert (status, ctype) == (200, "text/event-stream")
    events = [e for e in data.decode().split("\n\n") if e]
    assert "data: [DONE]" not in events
    error = orjson.loads(events[-1][6:])["error"]
    assert error["code"] == "upstream_error"
    entry = await ledger_entry(ledger, "d1")
    assert entry.status == "error"


async def test_a_client_leaving_mid_stream_is_metered_as_cancelled(env):
    router, ledger = env
    call = router.OpenAIChatCompletions(
        pb.OpenAIChatCompletionsRequest(
            http_body=httpbody_pb2.HttpBody(
                data=orjson.dumps({"model": "slow", "messages": MESSAGES, "stream": True})
            )
        ),
        metadata=(*IDENTITY, ("x-request-id", "gone-1")),
    )
    first = await call.read()
    assert first.data.startswith(b"data: ")
    call.cancel()
    entry = await ledger_entry(ledger, "gone-1")
    assert entry.status == "cancelled" and entry.error_type == "client_cancelled"
    assert entry.streamed and entry.latency_ms < 2000  # metered now, not after 50 chunks


async def test_typed_api_maps_errors_to_grpc_codes(env):
    router, _ = env
    request = pb.CreateChatCompletionRequest(
        model="demo", messages=[pb.ChatMessage(role="user", content="hi")],
        parameters=pb.ChatParameters(max_tokens=3),
    )
    reply = await router.CreateChatCompletion(request, metadata=IDENTITY)
    assert reply.choices[0].finish_reason == "length" and reply.usage.output_tokens <= 3
    for alias, code in (("nope", grpc.StatusCode.NOT_FOUND),
                        ("nowhere", grpc.StatusCode.UNAVAILABLE),
                        ("limited", grpc.StatusCode.RESOURCE_EXHAUSTED)):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await router.CreateChatCompletion(
                pb.CreateChatCompletionRequest(model=alias, messages=request.messages),
                metadata=IDENTITY,
            )
        assert err.value.code() == code
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await router.CreateChatCompletion(request)  # no identity: not through the gateway
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def single_sim_config(tmp_path, sim_port: int):
    config = tmp_path / "gateway.yaml"
    config.write_text(
        f"providers: {{sim: {{type: openai, base_url: 'http://127.0.0.1:{sim_port}/v1'}}}}\n"
        "deployments: {d: {provider: sim, model: m}}\nmodels: {demo: {deployments: [d]}}\n"
    )
    return config


async def test_usage_survives_a_ledger_outage(tmp_path):
    runner, sim_port = await serve_sim("127.0.0.1", 0, SimConfig())
    ledger_port = free_port()
    settings = RouterSettings(data_dir=tmp_path, grpc_port=0,
                              gateway_config=single_sim_config(tmp_path, sim_port),
                              ledger_address=f"127.0.0.1:{ledger_port}")
    app = RouterApp(settings)
    port = await app.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        router = pb_grpc.RouterServiceStub(channel)
        for i in range(3):  # the ledger is down: calls still succeed
            status, _, _ = await openai_call(router, {"model": "demo", "messages": MESSAGES},
                                             f"o{i}")
            assert status == 200
    await app.server.stop(0)
    await app.close()  # the ledger never answered: entries stay spooled
    assert app.recorder.spool.pending_bytes > 0

    ledger, engine, _ = await start_ledger(tmp_path, port=ledger_port)
    app = RouterApp(settings)  # the next router process delivers them
    await app.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{ledger_port}") as channel:
        stub = ledger_grpc.LedgerServiceStub(channel)
        for i in range(3):
            assert (await ledger_entry(stub, f"o{i}")).status == "ok"
    await app.server.stop(0)
    await app.close()
    assert app.recorder.spool.pending_bytes == 0
    await ledger.stop(0)
    await engine.dispose()
    await runner.cleanup()


async def test_a_full_usage_spool_refuses_calls_instead_of_losing_usage(tmp_path):
    runner, sim_port = await serve_sim("127.0.0.1", 0, SimConfig())
    settings = RouterSettings(data_dir=tmp_path, grpc_port=0,
                              gateway_config=single_sim_config(tmp_path, sim_port),
                              ledger_address=f"127.0.0.1:{free_port()}",
                              max_usage_spool_bytes=300)
    app = RouterApp(settings)
    port = await app.start()
    statuses = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        router = pb_grpc.RouterServiceStub(channel)
        for i in range(10):
            status, _, data = await openai_call(
                router, {"model": "demo", "messages": MESSAGES}, f"full{i}"
            )
            statuses.append(status)
    assert statuses[0] == 200 and statuses[-1] == 503
    assert orjson.loads(data)["error"]["code"] == "service_unavailable"
    await app.server.stop(0)
    await app.close()
    await runner.cleanup()


async def test_usage_survives_a_router_killed_with_sigkill(tmp_path):
    runner, sim_port = await serve_sim("127.0.0.1", 0, SimConfig())
    ledger_port, router_port = free_port(), free_port()
    env = {
        **os.environ,
        "LOCKGATE_ROUTER_GRPC_PORT": str(router_port),
        "LOCKGATE_ROUTER_DATA_DIR": str(tmp_path),
        "LOCKGATE_ROUTER_LEDGER_ADDRESS": f"127.0.0.1:{ledger_port}",
        "LOCKGATE_ROUTER_GATEWAY_CONFIG": str(single_sim_config(tmp_path, sim_port)),
    }

    async def start_router() -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.router", env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        async with grpc.aio.insecure_channel(f"127.0.0.1:{router_port}") as channel:
            await asyncio.wait_for(channel.channel_ready(), 20)
        return proc

    router_proc = await start_router()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{router_port}") as channel:
        router = pb_grpc.RouterServiceStub(channel)
        for i in range(5):  # no ledger at all
            status, _, _ = await openai_call(router, {"model": "demo", "messages": MESSAGES},
                                             f"k{i}")
            assert status == 200
    router_proc.kill()  # SIGKILL: no shutdown code runs
    await router_proc.wait()

    ledger, engine, _ = await start_ledger(tmp_path, port=ledger_port)
    router_proc = await start_router()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{ledger_port}") as channel:
            stub = ledger_grpc.LedgerServiceStub(channel)
            for i in range(5):
                assert (await ledger_entry(stub, f"k{i}")).status == "ok"
    finally:
        router_proc.terminate()
        await router_proc.wait()
        await ledger.stop(0)
        await engine.dispose()
        await runner.cleanup()


async def test_provider_key_comes_from_the_named_env_var(tmp_path, monkeypatch):
    runner, sim_port = await serve_sim("127.0.0.1", 0, SimConfig(api_key="sk-upstream-secret"))
    config = tmp_path / "gateway.yaml"
    config.write_text(
        f"providers: {{keyed: {{type: openai, base_url: 'http://127.0.0.1:{sim_port}/v1', "
        "api_key_env: UPSTREAM_KEY}}\n"
        "deployments: {d: {provider: keyed, model: m}}\nmodels: {demo: {deployments: [d]}}\n"
    )
    ledger, engine, ledger_port = await start_ledger(tmp_path)
    settings = RouterSettings(data_dir=tmp_path, grpc_port=0, gateway_config=config,
                              ledger_address=f"127.0.0.1:{ledger_port}")
    try:
        for key, expected in (("wrong-key", 502), ("sk-upstream-secret", 200)):
            monkeypatch.setenv("UPSTREAM_KEY", key)
            app = RouterApp(settings)
            port = await app.start()
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                status, _, data = await openai_call(
                    pb_grpc.RouterServiceStub(channel), {"model": "demo", "messages": MESSAGES}
                )
            await app.server.stop(0)
            await app.close()
            assert status == expected, data
            assert b"sk-upstream-secret" not in data and b"wrong-key" not in data
    finally:
        await ledger.stop(0)
        await engine.dispose()
        await runner.cleanup()
