"""Azure OpenAI and Mistral adapters: request/response translation, documented
transcripts replayed by a local aiohttp server, and calls to the real simulator."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web

from lockgate.errors import InvalidRequest, RateLimited, UpstreamError
from lockgate.sim.config import SimConfig
from lockgate.sim.server import create_app
from lockgate.upstream_client import UpstreamClient
from services.router.config import ProviderConfig, TimeoutsConfig
from services.router.providers import build_provider
from services.router.providers.azure import (
    DEFAULT_API_VERSION,
    AzureOpenAIProvider,
    content_filter_error,
    openai_chunk,
)
from services.router.providers.mistral import (
    MistralProvider,
    chat_request,
    chat_response,
    embeddings_request,
    error_detail,
    mistral_call_id,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "providers"
TIMEOUTS = TimeoutsConfig(connect=2, first_token=5, total=10)
USER = [{"role": "user", "content": "Hello there"}]


def fixture(provider: str, name: str) -> bytes:
    return (FIXTURES / provider / name).read_bytes()


def fixture_json(provider: str, name: str) -> dict:
    return orjson.loads(fixture(provider, name))


# -- servers ------------------------------------------------------------------------------


class Replay:
    """A local HTTP server answering every POST with one canned reply and
    recording what it was sent."""

    def __init__(self, body: bytes, *, status: int = 200, content_type: str = "application/json",
                 headers: dict[str, str] | None = None):
        self.body, self.status, self.content_type = body, status, content_type
        self.headers = headers or {}
        self.requests: list[tuple[str, dict[str, str], dict]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((str(request.rel_url), dict(request.headers), await request.json()))
        return web.Response(status=self.status, body=self.body, headers={
            "Content-Type": self.content_type, **self.headers})


async def start(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """For calling the simulator directly."""
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def upstream() -> AsyncIterator[UpstreamClient]:
    """The pool the adapters call through, as the router's."""
    client = UpstreamClient()
    yield client
    client.close()


@pytest.fixture
async def replay_url():
    runners = []

    async def serve(replay: Replay) -> str:
        app = web.Application()
        app.router.add_post("/{tail:.*}", replay.handle)
        runner, url = await start(app)
        runners.append(runner)
        return url

    yield serve
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def sim_url():
    runners = []

    async def serve(config: SimConfig | None = None) -> str:
        runner, url = await start(create_app(config or SimConfig()))
        runners.append(runner)
        return url

    yield serve
    for runner in runners:
        await runner.cleanup()


def azure(
    upstream: UpstreamClient, base_url: str, *, key_env: str | None = None, version: str = ""
) -> AzureOpenAIProvider:
    config = ProviderConfig(type="azure", base_url=base_url, api_key_env=key_env,
                            api_version=version)
    provider = build_provider("aoai", config, upstream)
    assert isinstance(provider, AzureOpenAIProvider)
    return provider


def mistral(upstream, base_url: str, *, key_env: str | None = None) -> MistralProvider:
    config = ProviderConfig(type="mistral", base_url=base_url, api_key_env=key_env)
    provider = build_provider("mistral", config, upstream)
    assert isinstance(provider, MistralProvider)
    return provider


async def collect(chunks: AsyncIterator[dict]) -> list[dict]:
    return [chunk async for chunk in chunks]


# -- Azure: translation ----------------------------------------------------------------------


def test_azure_drops_prompt_filter_and_annotation_only_chunks():
    lines = fixture("azure", "chat_stream.sse").decode().split("\n")
    events = [line[len("data: "):] for line in lines
              if line.startswith("data: ") and line != "data: [DONE]"]
    chunks = [orjson.loads(e) for e in events]
    kept = [c for c in map(openai_chunk, chunks) if c is not None]
    assert len(chunks) == 7
    assert [c["id"] for c in kept] == ["chatcmpl-ABxkZ0lUZsWQzS8r3nVx8Gk3Lq1bM"] * 5
    assert all(c["object"] == "chat.completion.chunk" for c in kept)
    assert kept[-1]["choices"] == [] and kept[-1]["usage"]["total_tokens"] == 32


def test_azure_keeps_delta_choices_of_a_mixed_chunk():
    chunk = {"id": "x", "choices": [{"index": 0, "delta": {"content": "a"}},
                                    {"index": 1, "content_filter_results": {}}]}
    assert openai_chunk(chunk)["choices"] == [{"index": 0, "delta": {"content": "a"}}]


def test_azure_content_filter_error_names_the_categories():
    error = content_filter_error("aoai", 400, fixture_json("azure", "error_content_filter.json"))
    assert isinstance(error, InvalidRequest)
    assert error.code == "content_filter" and error.param == "messages"
    assert "violence (medium)" in error.message and "hate" not in error.message
    assert content_filter_error("aoai", 429, fixture_json("azure", "error_429.json")) is None


# -- Azure: over HTTP ----------------------------------------------------------------------------


async def test_azure_request_url_auth_and_body(upstream, replay_url, monkeypatch):
    monkeypatch.setenv("AOAI_KEY", "secret-azure-key")
    replay = Replay(fixture("azure", "chat_response.json"))
    provider = azure(upstream, await replay_url(replay), key_env="AOAI_KEY")
    reply = await provider.chat({"messages": USER, "max_tokens": 5}, "gpt4o prod", TIMEOUTS)
    assert reply["choices"][0]["message"]["content"].startswith("Yes, Azure OpenAI")
    assert reply["usage"]["total_tokens"] == 39
    url, headers, body = replay.requests[0]
    assert url == (
        f"/openai/deployments/gpt4o%20prod/chat/completions?api-version={DEFAULT_API_VERSION}")
    assert headers["api-key"] == "secret-azure-key" and "Authorization" not in headers
    assert body["model"] == "gpt4o prod" and body["stream"] is False


async def test_azure_stream_replay(upstream, replay_url):
    replay = Replay(fixture("azure", "chat_stream.sse"), content_type="text/event-stream")
    provider = azure(upstream, await replay_url(replay), version="2025-01-01-preview")
    chunks = await collect(provider.stream_chat({"messages": USER}, "dep", TIMEOUTS))
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Yes, it does."
    assert chunks[-1]["usage"]["completion_tokens"] == 4
    url, _, body = replay.requests[0]
    assert url.endswith("?api-version=2025-01-01-preview")
    assert body["stream_options"] == {"include_usage": True}


async def test_azure_content_filter_400(upstream, replay_url):
    replay = Replay(fixture("azure", "error_content_filter.json"), status=400)
    provider = azure(upstream, await replay_url(replay))
    with pytest.raises(InvalidRequest) as err:
        await provider.chat({"messages": USER}, "dep", TIMEOUTS)
    assert err.value.code == "content_filter"
    with pytest.raises(InvalidRequest) as err:
        await collect(provider.stream_chat({"messages": USER}, "dep", TIMEOUTS))
    assert err.value.code == "content_filter"


async def test_azure_429_retry_after_ms(upstream, replay_url):
    replay = Replay(fixture("azure", "error_429.json"), status=429,
                    headers={"retry-after": "6", "retry-after-ms": "5500"})
    provider = azure(upstream, await replay_url(replay))
    with pytest.raises(RateLimited) as err:
        await provider.chat({"messages": USER}, "dep", TIMEOUTS)
    assert err.value.retry_after == pytest.approx(5.5)
    assert "exceeded token rate limit" in err.value.message


async def test_azure_embeddings_replay(upstream, replay_url):
    replay = Replay(fixture("azure", "embeddings_response.json"))
    provider = azure(upstream, await replay_url(replay))
    reply = await provider.embed({"input": "hello"}, "emb", TIMEOUTS)
    assert reply["data"][0]["embedding"][0] == pytest.approx(0.0023064255)
    assert replay.requests[0][0].startswith("/openai/deployments/emb/embeddings?api-version=")


# -- Azure: against the simulator ------------------------------------------------------------


async def test_azure_against_simulator(upstream, sim_url, monkeypatch):
    monkeypatch.setenv("AOAI_KEY", "sim-key")
    provider = azure(upstream, await sim_url(SimConfig(api_key="sim-key")), key_env="AOAI_KEY")
    reply = await provider.chat({"messages": USER}, "sim-small", TIMEOUTS)
    assert reply["object"] == "chat.completion" and reply["model"] == "sim-small"
    assert reply["usage"]["prompt_tokens"] > 0

    chunks = await collect(provider.stream_chat({"messages": USER}, "sim-small", TIMEOUTS))
    streamed = "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert streamed == reply["choices"][0]["message"]["content"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == {
        **chunks[-1]["usage"], "completion_tokens": reply["usage"]["completion_tokens"]}

    vectors = await provider.embed({"input": ["a", "b"]}, "sim-small", TIMEOUTS)
    assert [d["index"] for d in vectors["data"]] == [0, 1]


async def test_azure_simulator_rejects_a_wrong_key(upstream, sim_url, monkeypatch):
    monkeypatch.setenv("AOAI_KEY", "not-the-key")
    provider = azure(upstream, await sim_url(SimConfig(api_key="sim-key")), key_env="AOAI_KEY")
    with pytest.raises(UpstreamError) as err:
        await provider.chat({"messages": USER}, "sim-small", TIMEOUTS)
    assert "credentials were rejected" in err.value.message
    assert "not-the-key" not in err.value.message


async def test_azure_simulator_429_retry_after(upstream, sim_url):
    url = await sim_url(SimConfig(error_rate=1.0, error_status=429))
    with pytest.raises(RateLimited) as err:
        await azure(upstream, url).chat({"messages": USER}, "sim-small", TIMEOUTS)
    assert err.value.retry_after == 1.0


async def test_simulator_azure_routes_need_api_version_and_key(session, sim_url):
    url = await sim_url(SimConfig(api_key="sim-key"))
    route = f"{url}/openai/deployments/sim-small/chat/completions"
    body = {"model": "sim-small", "messages": USER}
    async with session.post(route, json=body, headers={"api-key": "sim-key"}) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == "MissingApiVersionParameter"
    async with session.post(f"{route}?api-version=2024-10-21", json=body) as resp:
        assert resp.status == 401 and (await resp.json())["error"]["code"] == "401"
    async with session.post(f"{route}?api-version=2024-10-21", json=body,
                            headers={"api-key": "sim-key"}) as resp:
        assert resp.status == 200 and (await resp.json())["object"] == "chat.completion"
    async with session.post(f"{route}?api-version=2024-10-21", json=body,
                            headers={"Authorization": "Bearer sim-key"}) as resp:
        assert resp.status == 200


# -- Mistral: request translation -------------------------------------------------------------


def test_mistral_request_translation():
    body = {
        "model": "alias", "messages": [{"role": "developer", "content": "Be brief."}, *USER],
        "max_completion_tokens": 64, "max_tokens": 10, "seed": 7, "tool_choice": "required",
        "stream_options": {"include_usage": True}, "user": "u-1", "metadata": {"a": "b"},
        "store": False, "logprobs": False, "service_tier": "auto", "temperature": 0.2,
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
        "parallel_tool_calls": False, "n": 2, "stop": ["END"],
    }
    out = chat_request(body, "mistral-small-latest", stream=True)
    assert out == {
        "model": "mistral-small-latest",
        "messages": [{"role": "system", "content": "Be brief."}, *USER],
        "max_tokens": 64, "random_seed": 7, "tool_choice": "any", "temperature": 0.2,
        "response_format": body["response_format"], "tools": body["tools"],
        "parallel_tool_calls": False, "n": 2, "stop": ["END"], "stream": True,
    }


def test_mistral_named_tool_choice_passes():
    choice = {"type": "function", "function": {"name": "get_weather"}}
    assert chat_request({"messages": USER, "tool_choice": choice}, "m", stream=False)[
        "tool_choice"] == choice


@pytest.mark.parametrize(("body", "param"), [
    ({"logit_bias": {"1": 2}}, "logit_bias"),
    ({"top_logprobs": 2}, "top_logprobs"),
    ({"logprobs": True}, "logprobs"),
    ({"store": True}, "store"),
    ({"service_tier": "flex"}, "service_tier"),
    ({"modalities": ["text", "audio"]}, "modalities"),
    ({"reasoning_effort": "low"}, "reasoning_effort"),
    ({"functions": []}, "functions"),
    ({"made_up_field": 1}, "made_up_field"),
    ({"tool_choice": "sometimes"}, "tool_choice"),
    ({"response_format": {"type": "yaml"}}, "response_format"),
    ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"messages": [{"role": "user", "content": "hi", "name": "alice"}]}, "messages[0].name"),
    ({"messages": [{"role": "function", "content": "x", "name": "f"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}]},
     "messages[0].content[0].type"),
    ({"messages": []}, "messages"),
])
def test_mistral_rejects_what_it_cannot_honour(body, param):
    with pytest.raises(InvalidRequest) as err:
        chat_request({"messages": USER, **body}, "m", stream=False)
    assert err.value.param == param
    assert "Mistral" in err.value.message or "must" in err.value.message


def test_mistral_tool_call_ids_are_remapped_consistently():
    openai_id = "call_abc123XYZ456def789"
    messages = [
        *USER,
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": openai_id, "type": "function",
             "function": {"name": "f", "arguments": "{}"}},
            {"id": "D681PevKs", "type": "function", "function": {"name": "g", "arguments": "{}"}},
        ]},
        {"role": "tool", "tool_call_id": openai_id, "name": "f", "content": "1"},
        {"role": "tool", "tool_call_id": "D681PevKs", "content": "2"},
    ]
    out = chat_request({"messages": messages}, "m", stream=False)["messages"]
    mapped = out[1]["tool_calls"][0]["id"]
    assert len(mapped) == 9 and mapped.isalnum() and mapped == mistral_call_id(openai_id)
    assert out[2]["tool_call_id"] == mapped
    assert out[1]["tool_calls"][1]["id"] == out[3]["tool_call_id"] == "D681PevKs"
    assert mistral_call_id("call_other") != mapped


def test_mistral_embeddings_request():
    out = embeddings_request({"input": ["a", "b"], "model": "x", "dimensions": 256,
                              "encoding_format": "float", "user": "u"}, "mistral-embed")
    assert out == {"model": "mistral-embed", "input": ["a", "b"], "output_dimension": 256,
                   "encoding_format": "float"}
    with pytest.raises(InvalidRequest) as err:
        embeddings_request({"input": [1, 2, 3]}, "mistral-embed")
    assert err.value.param == "input"


# -- Mistral: response translation ---------------------------------------------------------


def test_mistral_response_translation():
    reply = chat_response("mistral", fixture_json("mistral", "chat_response.json"))
    assert reply["object"] == "chat.completion" and reply["model"] == "mistral-small-latest"
    message = reply["choices"][0]["message"]
    assert message["content"].startswith("The best French cheese")
    assert "tool_calls" not in message and "prefix" not in message
    assert reply["usage"] == {"prompt_tokens": 16, "completion_tokens": 34, "total_tokens": 50}


def test_mistral_tool_call_response():
    reply = chat_response("mistral", fixture_json("mistral", "chat_response_tool_calls.json"))
    choice = reply["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"] == [{
        "id": "D681PevKs", "type": "function",
        "function": {"name": "retrieve_payment_status",
                     "arguments": '{"transaction_id": "T1001"}'}}]


def test_mistral_finish_reasons_and_thinking_chunks():
    base = fixture_json("mistral", "chat_response.json")
    base["choices"][0]["finish_reason"] = "model_length"
    base["choices"][0]["message"]["content"] = [
        {"type": "thinking", "thinking": [{"type": "text", "text": "hmm"}]},
        {"type": "text", "text": "Answer."}]
    reply = chat_response("mistral", base)
    assert reply["choices"][0]["finish_reason"] == "length"
    assert reply["choices"][0]["message"]["content"] == "Answer."
    base["choices"][0]["finish_reason"] = "error"
    with pytest.raises(UpstreamError):
        chat_response("mistral", base)


def test_mistral_error_bodies():
    assert error_detail(fixture_json("mistral", "error_422.json")) == (
        "logit_bias: Extra inputs are not permitted", "logit_bias")
    detail, param = error_detail(fixture_json("mistral", "error_422_list.json"))
    assert param == "messages" and detail.startswith("messages.0.user.name: Extra inputs")
    assert error_detail(fixture_json("mistral", "error_429.json")) == (
        "Requests rate limit exceeded", None)
    legacy = {"object": "error", "message": json.dumps({"detail": [
        {"loc": ["body", "frequency_penalty"], "msg": "Extra inputs are not permitted"}]})}
    assert error_detail(legacy)[1] == "frequency_penalty"


# -- Mistral: over HTTP ------------------------------------------------------------------------


async def test_mistral_request_over_http(upstream, replay_url, monkeypatch):
    monkeypatch.setenv("MISTRAL_KEY", "secret-mistral-key")
    replay = Replay(fixture("mistral", "chat_response.json"))
    provider = mistral(upstream, await replay_url(replay), key_env="MISTRAL_KEY")
    reply = await provider.chat({"messages": USER, "seed": 3}, "mistral-small-latest", TIMEOUTS)
    assert reply["usage"]["total_tokens"] == 50
    url, headers, body = replay.requests[0]
    assert url == "/chat/completions"
    assert headers["Authorization"] == "Bearer secret-mistral-key"
    assert body == {"model": "mistral-small-latest", "messages": USER, "random_seed": 3,
                    "stream": False}


async def test_mistral_stream_moves_usage_to_a_final_chunk(upstream, replay_url):
    replay = Replay(fixture("mistral", "chat_stream.sse"), content_type="text/event-stream")
    provider = mistral(upstream, await replay_url(replay))
    chunks = await collect(provider.stream_chat({"messages": USER}, "m", TIMEOUTS))
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1]) == (
        "Comté is great.")
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop" and "usage" not in chunks[-2]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    assert "stream_options" not in replay.requests[0][2]


async def test_mistral_stream_tool_calls(upstream, replay_url):
    replay = Replay(fixture("mistral", "chat_stream_tool_calls.sse"),
                    content_type="text/event-stream")
    provider = mistral(upstream, await replay_url(replay))
    chunks = await collect(provider.stream_chat({"messages": USER}, "m", TIMEOUTS))
    call = chunks[1]["choices"][0]["delta"]["tool_calls"][0]
    assert call == {"index": 0, "id": "D681PevKs", "type": "function", "function": {
        "name": "retrieve_payment_status", "arguments": '{"transaction_id": "T1001"}'}}
    assert chunks[1]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["total_tokens"] == 117


@pytest.mark.parametrize(("name", "status", "error", "param"), [
    ("error_422.json", 422, InvalidRequest, "logit_bias"),
    ("error_422_list.json", 422, InvalidRequest, "messages"),
    ("error_429.json", 429, RateLimited, None),
])
async def test_mistral_error_mapping(upstream, replay_url, name, status, error, param):
    replay = Replay(fixture("mistral", name), status=status, headers={"retry-after": "2"})
    provider = mistral(upstream, await replay_url(replay))
    with pytest.raises(error) as err:
        await provider.chat({"messages": USER}, "m", TIMEOUTS)
    assert err.value.param == param
    if status == 429:
        assert err.value.retry_after == 2.0 and "rate limit exceeded" in err.value.message


async def test_mistral_embeddings_over_http(upstream, replay_url):
    replay = Replay(fixture("mistral", "embeddings_response.json"))
    provider = mistral(upstream, await replay_url(replay))
    reply = await provider.embed({"input": ["a", "b"]}, "mistral-embed", TIMEOUTS)
    assert reply == {
        "object": "list", "model": "mistral-embed",
        "data": [
            {"object": "embedding", "index": 0,
             "embedding": [-0.016632080078125, 0.0701904296875, 0.03143310546875]},
            {"object": "embedding", "index": 1,
             "embedding": [-0.0230560302734375, 0.039337158203125, 0.0521240234375]},
        ],
        "usage": {"prompt_tokens": 15, "total_tokens": 15},
    }
    assert replay.requests[0][0] == "/embeddings"


# -- Mistral: against the simulator ----------------------------------------------------------


async def test_mistral_against_simulator(upstream, sim_url, monkeypatch):
    monkeypatch.setenv("MISTRAL_KEY", "sim-key")
    url = await sim_url(SimConfig(api_key="sim-key"))
    provider = mistral(upstream, f"{url}/v1", key_env="MISTRAL_KEY")
    body = {"messages": USER, "seed": 1, "max_completion_tokens": 3, "user": "u"}
    reply = await provider.chat(body, "sim-small", TIMEOUTS)
    assert reply["choices"][0]["finish_reason"] == "length"
    assert reply["usage"]["completion_tokens"] == 3

    # The simulator (OpenAI dialect) sends usage only when asked with
    # stream_options, which Mistral's format has no room for: no usage chunk.
    chunks = await collect(provider.stream_chat({"messages": USER}, "sim-small", TIMEOUTS))
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text and all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"

    vectors = await provider.embed({"input": "hello"}, "mistral-embed", TIMEOUTS)
    assert vectors["usage"]["prompt_tokens"] > 0 and len(vectors["data"]) == 1

    with pytest.raises(InvalidRequest) as err:
        await provider.chat({"messages": USER, "logit_bias": {"1": 1}}, "sim-small", TIMEOUTS)
    assert err.value.param == "logit_bias"


async def test_mistral_simulator_429_retry_after(upstream, sim_url):
    url = await sim_url(SimConfig(error_rate=1.0, error_status=429))
    with pytest.raises(RateLimited) as err:
        await mistral(upstream, f"{url}/v1").chat({"messages": USER}, "sim-small", TIMEOUTS)
    assert err.value.retry_after == 1.0
