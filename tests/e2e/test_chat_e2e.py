"""The whole stack as processes (the code `lockgate up` runs), driven by the
official openai SDK over REST and by the generated gRPC stubs through Envoy."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time

import grpc
import httpx
import openai
import pytest

from lockgate.ledger.v1 import ledger_service_pb2 as ledger_pb
from lockgate.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc
from lockgate.router.v1 import router_service_pb2 as router_pb
from lockgate.router.v1 import router_service_pb2_grpc as router_grpc

pytestmark = pytest.mark.e2e

MESSAGES = [{"role": "user", "content": "Say hello to the gateway."}]


def client(stack, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.base_url, api_key=key or stack.admin_key, max_retries=0)


async def usage_entry(stack, request_id: str) -> ledger_pb.UsageEntry:
    """The ledger's entry for a request (usage is recorded asynchronously)."""
    async with grpc.aio.insecure_channel(stack.grpc_target) as channel:
        stub = ledger_grpc.LedgerServiceStub(channel)
        for _ in range(100):
            page = await stub.ListUsage(
                ledger_pb.ListUsageRequest(page_size=200), metadata=stack.grpc_auth()
            )
            for entry in page.entries:
                if entry.request_id == request_id:
                    return entry
            await asyncio.sleep(0.1)
    raise AssertionError(f"no usage entry for {request_id}")


async def test_unary_chat_is_exact_openai_and_metered(stack):
    raw = client(stack).chat.completions.with_raw_response.create(model="demo", messages=MESSAGES)
    completion = raw.parse()
    assert raw.http_response.status_code == 200
    assert completion.object == "chat.completion"
    assert completion.model == "demo"
    assert isinstance(completion.created, int)
    choice = completion.choices[0]
    assert choice.index == 0 and choice.finish_reason == "stop"
    assert choice.message.role == "assistant" and choice.message.content
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    wire = raw.http_response.json()
    assert type(wire["created"]) is int and wire["choices"][0]["index"] == 0

    request_id = raw.headers["x-request-id"]
    entry = await usage_entry(stack, request_id)
    assert entry.alias == "demo" and entry.provider_model == "sim-small"
    assert entry.usage.input_tokens == completion.usage.prompt_tokens
    assert entry.usage.output_tokens == completion.usage.completion_tokens
    assert entry.status == "ok" and not entry.streamed
    assert entry.key_id and entry.tenant_id


async def test_streaming_chat_matches_unary_and_ends_with_done(stack):
    unary = client(stack).chat.completions.create(model="demo", messages=MESSAGES)
    raw = client(stack).chat.completions.with_raw_response.create(
        model="demo", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == unary.choices[0].message.content
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].usage.completion_tokens == unary.usage.completion_tokens
    assert all(c.model == "demo" for c in chunks)

    entry = await usage_entry(stack, raw.headers["x-request-id"])
    assert entry.streamed and entry.usage.output_tokens == unary.usage.completion_tokens


async def test_a_burst_of_streams_all_complete(stack):
    """More streams at once than Envoy keeps connections to auth's access check
    (AUTH_CHECK_CONNECTIONS): the checks queue in Envoy, every stream is
    admitted and delivers every chunk."""
    streams, chunks = 300, 5
    headers = {"authorization": f"Bearer {stack.admin_key}",
               "x-sim-chunk-count": str(chunks), "x-sim-chunk-interval-ms": "50"}
    body = {"model": "faulty", "messages": MESSAGES, "stream": True}
    limits = httpx.Limits(max_connections=streams)

    async def one(http: httpx.AsyncClient) -> tuple[int, int, bool]:
        async with http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as resp:
            events = [line async for line in resp.aiter_lines() if line.startswith("data: ")]
        content = sum(1 for e in events[:-1]
                      if (json.loads(e[6:])["choices"] or [{}])[0].get("delta", {}).get("content"))
        return resp.status_code, content, bool(events) and events[-1] == "data: [DONE]"

    async with httpx.AsyncClient(base_url=stack.origin, timeout=60, limits=limits) as http:
        results = await asyncio.gather(*(one(http) for _ in range(streams)))
    assert results == [(200, chunks, True)] * streams


def test_raw_sse_wire_format(stack):
    body = {"model": "demo", "messages": MESSAGES, "stream": True}
    with httpx.stream(
        "POST", f"{stack.base_url}/chat/completions", json=body,
        headers={"authorization": f"Bearer {stack.admin_key}"}, timeout=10,
    ) as resp:
        assert resp.status_code == 200
        payload = resp.read().decode()
    events = payload.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    assert all(e.startswith("data: ") for e in events[:-1])
    assert '"usage"' not in payload  # the client did not ask for usage in the stream


def test_stream_without_include_usage_has_no_usage_chunk(stack):
    chunks = list(client(stack).chat.completions.create(model="demo", messages=MESSAGES,
                                                         stream=True))
    assert chunks and all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


def test_unknown_key_is_401(stack):
    with pytest.raises(openai.AuthenticationError) as err:
        client(stack, key="lg_notakey0_" + "x" * 32).chat.completions.create(
            model="demo", messages=MESSAGES
        )
    assert err.value.status_code == 401
    assert err.value.code == "invalid_api_key"


def test_missing_key_is_401_with_openai_error_json(stack):
    resp = httpx.post(f"{stack.base_url}/chat/completions", json={"model": "demo"}, timeout=10)
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "missing_api_key"
    assert resp.json()["error"]["type"] == "authentication_error"


def test_policy_denial_is_403(stack):
    key = stack.create_key("restricted", models=["some-other-model"])
    with pytest.raises(openai.PermissionDeniedError) as err:
        client(stack, key=key).chat.completions.create(model="demo", messages=MESSAGES)
    assert err.value.code == "model_not_allowed"


def test_unknown_model_is_404_model_not_found(stack):
    with pytest.raises(openai.NotFoundError) as err:
        client(stack).chat.completions.create(model="no-such-model", messages=MESSAGES)
    assert err.value.code == "model_not_found"
    assert err.value.body["type"] == "not_found_error"


def test_bad_requests_are_400(stack):
    with pytest.raises(openai.BadRequestError) as err:
        client(stack).chat.completions.create(model="demo", messages=[])
    assert err.value.body["param"] == "messages"
    headers = {"authorization": f"Bearer {stack.admin_key}", "content-type": "application/json"}
    resp = httpx.post(f"{stack.base_url}/chat/completions", content=b"{not json", headers=headers)
    assert resp.status_code == 400
    assert resp.json()["error"]["type"] == "invalid_request_error"


def test_oversized_body_is_413(stack):
    headers = {"authorization": f"Bearer {stack.admin_key}"}
    big = {"model": "demo", "messages": [{"role": "user", "content": "x" * (5 * 1024 * 1024)}]}
    resp = httpx.post(f"{stack.base_url}/chat/completions", json=big, headers=headers, timeout=30)
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "request_too_large"


def test_unreachable_provider_is_503_and_failover_works(stack):
    with pytest.raises(openai.InternalServerError) as err:
        client(stack).chat.completions.create(model="unreachable", messages=MESSAGES)
    assert err.value.status_code == 503
    assert "unreachable" in err.value.message
    reply = client(stack).chat.completions.create(model="failover", messages=MESSAGES)
    assert reply.choices[0].message.content


def test_unknown_path_is_404_json(stack):
    resp = httpx.get(f"{stack.base_url}/nope", headers={"authorization": "Bearer x"}, timeout=10)
    assert resp.status_code == 404
    assert resp.json()["error"]["type"] == "not_found_error"


def test_models_lists_aliases(stack):
    models = client(stack).models.list()
    assert {"demo", "failover"} <= {m.id for m in models.data}


async def test_spoofed_identity_headers_are_ignored(stack):
    raw = client(stack).chat.completions.with_raw_response.create(
        model="demo", messages=MESSAGES,
        extra_headers={"x-lockgate-tenant-id": "ten_evil", "x-lockgate-key-id": "key_evil"},
    )
    entry = await usage_entry(stack, raw.headers["x-request-id"])
    assert entry.tenant_id != "ten_evil" and entry.key_id != "key_evil"


async def test_typed_grpc_api_through_envoy(stack):
    async with grpc.aio.insecure_channel(stack.grpc_target) as channel:
        stub = router_grpc.RouterServiceStub(channel)
        request = router_pb.CreateChatCompletionRequest(
            model="demo", messages=[router_pb.ChatMessage(role="user", content="hello")]
        )
        reply = await stub.CreateChatCompletion(request, metadata=stack.grpc_auth())
        assert reply.choices[0].message.content and reply.usage.output_tokens > 0
        assert reply.model == "demo" and reply.created > 0 and reply.request_id

        stream_request = router_pb.StreamChatCompletionRequest(
            model="demo", messages=request.messages
        )
        parts = [m async for m in stub.StreamChatCompletion(stream_request,
                                                            metadata=stack.grpc_auth())]
        text = "".join(c.delta.content for m in parts for c in m.choices)
        assert text == reply.choices[0].message.content
        assert parts[-1].usage.output_tokens == reply.usage.output_tokens

        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.CreateChatCompletion(
                router_pb.CreateChatCompletionRequest(model="nope", messages=request.messages),
                metadata=stack.grpc_auth(),
            )
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.CreateChatCompletion(request, metadata=(("authorization", "Bearer bad"),))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED

    entry = await usage_entry(stack, reply.request_id)
    assert entry.usage.output_tokens == reply.usage.output_tokens


def test_cli_keys_create_and_usage_against_the_stack(stack):
    created = stack.cli("keys", "create", "--tenant", "default", "--name", "cli-e2e", "--json")
    assert created.returncode == 0, created.stderr
    secret = json.loads(created.stdout)["secret"]
    raw = client(stack, key=secret).chat.completions.with_raw_response.create(
        model="demo", messages=MESSAGES
    )
    request_id = raw.headers["x-request-id"]
    for _ in range(50):
        usage = stack.cli("usage", "--json", "--limit", "100")
        assert usage.returncode == 0, usage.stderr
        entries = [json.loads(line) for line in usage.stdout.splitlines() if line.strip()]
        if any(e["request_id"] == request_id for e in entries):
            break
        time.sleep(0.1)
    else:
        raise AssertionError("usage entry not listed by `lockgate usage`")
    table = stack.cli("usage")
    assert "REQUEST ID" in table.stdout and request_id in table.stdout

    bad = stack.cli("keys", "create", "--tenant", "nope", "--name", "x")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "not found" in bad.stderr.lower()


def test_cli_usage_report_as_csv(stack):
    client(stack).chat.completions.create(model="demo", messages=MESSAGES)
    for _ in range(50):
        report = stack.cli("usage", "--by", "alias", "--since", "1h", "--csv")
        assert report.returncode == 0, report.stderr
        rows = list(csv.DictReader(io.StringIO(report.stdout)))
        demo = [r for r in rows if r["alias"] == "demo"]
        if demo:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"no row for alias demo in:\n{report.stdout}")
    assert int(demo[0]["requests"]) >= 1 and int(demo[0]["total_tokens"]) > 0
    assert float(demo[0]["latency_p50_ms"]) >= 0
    bad = stack.cli("usage", "--by", "nope")
    assert bad.returncode == 2 and "unknown dimension" in bad.stderr


def test_status_reports_every_component_healthy(stack):
    status = stack.cli("status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "envoy" in status.stdout and "router" in status.stdout


def test_every_service_serves_prometheus_metrics(stack):
    client(stack).chat.completions.create(model="demo", messages=MESSAGES)
    for service in ("auth", "router", "ledger", "registry"):
        port = stack.ports[f"LOCKGATE_{service.upper()}_METRICS_PORT"]
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert "lockgate_grpc_requests_total" in metrics
        assert "process_cpu_seconds_total" in metrics
    router_port = stack.ports["LOCKGATE_ROUTER_METRICS_PORT"]
    router_metrics = httpx.get(f"http://127.0.0.1:{router_port}/metrics", timeout=5).text
    assert 'method="OpenAIChatCompletions"' in router_metrics
    assert "lockgate_router_usage_sent_total" in router_metrics
