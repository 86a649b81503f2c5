"""The router's provider-compatible endpoints over HTTP/1.1 (real router,
ledger and simulator; raw HTTP on a socket, as Envoy forwards the calls): the
same answers as the gRPC HttpBody methods, streams chunked as they come,
requests counted against request limits by admission (no edge limiter in
front of this listener), and a client that hangs up mid-stream still gets its
delivered tokens metered."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from google.api import httpbody_pb2

from lockgate.identity import KEY_ID, TENANT_ID
from lockgate.ledger.v1 import ledger_service_pb2 as ledger_pb
from lockgate.router.v1 import router_service_pb2 as pb
from lockgate.sim.config import SimConfig
from tests.integration.http_wire import exchange, request
from tests.integration.router_harness import running_router, simulators
from tests.integration.test_rate_limits import fresh_window

GATEWAY = """
providers:
  sim: {{type: openai, base_url: "http://127.0.0.1:{sim}/v1"}}
deployments:
  small: {{provider: sim, model: sim-small, price: {{input: 1000, output: 2000}}}}
  embed: {{provider: sim, model: sim-embed}}
models:
  demo: {{deployments: [small]}}
  cached: {{deployments: [small], cache: {{ttl_seconds: 60}}}}
  demo-embed: {{kind: embeddings, deployments: [embed]}}
"""
IDENTITY = {TENANT_ID: "ten_h", KEY_ID: "key_h"}
ADMIN = ((TENANT_ID, "ten_h"), (KEY_ID, "key_admin"), ("x-lockgate-roles", "tenant_admin"))
CHAT = {"model": "demo", "messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture
async def rut(tmp_path):
    async with (
        simulators({"sim": SimConfig(reply_words=30)}) as ports,
        running_router(tmp_path, GATEWAY.format(**ports), http_port=0) as rut,
    ):
        yield rut


def post(path: str, body: dict | bytes, request_id: str = "", **headers) -> bytes:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    extra = {**IDENTITY, "content-type": "application/json", **headers}
    if request_id:
        extra["x-request-id"] = request_id
    return request("POST", path, data, extra)


async def test_chat_is_the_same_answer_as_over_grpc(rut):
    [reply] = await exchange(rut.app.http_edge.port, post("/v1/chat/completions", CHAT, "h1"))
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    assert int(reply.headers["content-length"]) == len(reply.body)
    over_http = orjson.loads(reply.body)
    call = rut.router.OpenAIChatCompletions(pb.OpenAIChatCompletionsRequest(
        http_body=httpbody_pb2.HttpBody(content_type="application/json",
                                        data=orjson.dumps(CHAT))),
        metadata=(*IDENTITY.items(), ("x-request-id", "g1")))
    over_grpc = orjson.loads(b"".join([part.data async for part in call]))
    assert over_http.keys() == over_grpc.keys()
    assert over_http["object"] == "chat.completion" and over_http["model"] == "demo"
    assert over_http["usage"]["completion_tokens"] == over_grpc["usage"]["completion_tokens"]


async def test_a_stream_is_chunked_sse_ending_in_done(rut):
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    [reply] = await exchange(rut.app.http_edge.port, post("/v1/chat/completions", body))
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/event-stream"
    assert reply.headers["transfer-encoding"] == "chunked"
    events = [e for e in reply.body.split(b"\n\n") if e]
    assert all(e.startswith(b"data: ") for e in events)
    assert events[-1] == b"data: [DONE]"
    assert orjson.loads(events[-2][6:])["usage"]["completion_tokens"] > 0


async def test_anthropic_messages_and_embeddings(rut):
    port = rut.app.http_edge.port
    message = {"model": "demo", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
    [reply] = await exchange(port, post("/v1/messages?beta=true", message))
    assert reply.status == 200 and orjson.loads(reply.body)["type"] == "message"
    [reply] = await exchange(port, post("/v1/embeddings", {"model": "demo-embed", "input": "x"}))
    assert reply.status == 200 and orjson.loads(reply.body)["object"] == "list"


@pytest.mark.parametrize(("path", "body", "status", "shape"), [
    ("/v1/chat/completions", b"{not json", 400, "openai"),
    ("/v1/chat/completions", {**CHAT, "model": "nope"}, 404, "openai"),
    ("/v1/messages", {"model": "demo"}, 400, "anthropic"),
    ("/v1/embeddings", {"model": "demo-embed"}, 400, "openai"),
])
async def test_errors_in_the_callers_dialect_with_their_status(rut, path, body, status, shape):
    [reply] = await exchange(rut.app.http_edge.port, post(path, body))
    assert reply.status == status
    error = orjson.loads(reply.body)
    if shape == "anthropic":
        assert error["type"] == "error" and error["error"]["message"]
    else:
        assert error["error"]["message"] and error["error"]["type"]


async def test_other_paths_and_methods_are_404(rut):
    port = rut.app.http_edge.port
    replies = await exchange(port, request("GET", "/v1/chat/completions"),
                             request("POST", "/v1/models"), post("/v2/anything", CHAT))
    assert [r.status for r in replies] == [404, 404, 404]
    assert orjson.loads(replies[0].body)["error"]["code"] == "not_found"


async def test_a_budget_refusal_carries_retry_after(rut):
    await rut.ledger.SetBudget(ledger_pb.SetBudgetRequest(
        scope="key", scope_id="key_h", amount_micro_usd=1, period="day", hard=True),
        metadata=ADMIN)
    [reply] = await exchange(rut.app.http_edge.port, post("/v1/chat/completions", CHAT))
    assert reply.status == 429
    assert orjson.loads(reply.body)["error"]["code"] == "budget_exceeded"
    assert int(reply.headers["retry-after"]) > 0


async def grpc_chat(rut, body: dict) -> int:
    call = rut.router.OpenAIChatCompletions(pb.OpenAIChatCompletionsRequest(
        http_body=httpbody_pb2.HttpBody(content_type="application/json",
                                        data=orjson.dumps(body))),
        metadata=tuple(IDENTITY.items()))
    [part async for part in call]
    return int(dict(await call.initial_metadata()).get("x-lockgate-http-status", "200"))


async def test_admission_counts_requests_against_request_limits(rut):
    await rut.ledger.SetRateLimit(ledger_pb.SetRateLimitRequest(
        scope="key", scope_id="key_h", requests_per_minute=3), metadata=ADMIN)
    await fresh_window()
    port = rut.app.http_edge.port
    cached = {**CHAT, "model": "cached"}
    replies = await exchange(port, post("/v1/chat/completions", CHAT),
                             post("/v1/chat/completions", cached),
                             post("/v1/chat/completions", cached))  # a cache hit counts too
    assert [r.status for r in replies] == [200, 200, 200]
    assert replies[2].headers["x-lockgate-cache"] == "hit"
    assert [r.headers["x-ratelimit-limit-requests"] for r in replies] == ["3"] * 3
    assert [r.headers["x-ratelimit-remaining-requests"] for r in replies] == ["2", "1", "0"]
    assert replies[0].headers["x-ratelimit-reset-requests"].endswith("s")

    stream = {**CHAT, "stream": True}
    message = {"model": "demo", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
    over, streamed, anthropic, hit = await exchange(
        port, post("/v1/chat/completions", CHAT), post("/v1/chat/completions", stream),
        post("/v1/messages", message), post("/v1/chat/completions", cached))
    for reply in (over, streamed, anthropic, hit):  # refused before any answer starts
        assert reply.status == 429, reply.body
        assert reply.headers["content-type"] == "application/json"
        assert 1 <= int(reply.headers["retry-after"]) <= 60
        assert reply.headers["x-ratelimit-remaining-requests"] == "0"
    error = orjson.loads(over.body)["error"]  # as Envoy's edge limiter words it
    assert (error["type"], error["code"], error["param"]) == ("requests", "rate_limit_exceeded",
                                                             None)
    assert error["message"].startswith("Rate limit reached for key key_h on requests per minute")
    assert orjson.loads(streamed.body)["error"]["type"] == "requests"
    assert orjson.loads(anthropic.body)["error"]["type"] == "rate_limit_error"

    # Over gRPC the edge limiter counts (Envoy's route): admission does not count again.
    assert await grpc_chat(rut, CHAT) == 200


async def test_a_client_that_hangs_up_mid_stream_is_metered_and_the_server_goes_on(tmp_path):
    async with (
        simulators({"sim": SimConfig(reply_words=200, chunk_interval_ms=20)}) as ports,
        running_router(tmp_path, GATEWAY.format(**ports), http_port=0) as rut,
    ):
        port = rut.app.http_edge.port
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(post("/v1/chat/completions", {**CHAT, "stream": True}, "gone1"))
        await writer.drain()
        assert (await reader.readuntil(b"data: ")).startswith(b"HTTP/1.1 200 ")
        writer.close()  # hang up after the first event
        for _ in range(100):
            entries = (await rut.ledger.ListUsage(
                ledger_pb.ListUsageRequest(), metadata=tuple(IDENTITY.items()))).entries
            if any(e.request_id == "gone1" for e in entries):
                break
            await asyncio.sleep(0.1)
        entry = next(e for e in entries if e.request_id == "gone1")
        assert entry.usage.output_tokens < 200  # what was delivered, not the whole reply
        [reply] = await exchange(port, post("/v1/chat/completions", CHAT))
        assert reply.status == 200
