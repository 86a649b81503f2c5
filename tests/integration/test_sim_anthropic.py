"""The simulator's Anthropic dialect over real HTTP: driven by the router's
AnthropicProvider, by the official anthropic SDK (proof that it speaks the real
wire format), and checked on the raw wire with aiohttp."""

from __future__ import annotations

import aiohttp
import anthropic
import orjson
import pytest
from aiohttp import web

from lockgate.errors import RateLimited, UpstreamError, UpstreamUnavailable
from lockgate.sim import replies
from lockgate.sim.config import SimConfig
from lockgate.sim.server import create_app
from lockgate.upstream_client import UpstreamClient
from services.router.config import ProviderConfig, TimeoutsConfig
from services.router.providers.anthropic import AnthropicProvider
from services.router.providers.openai import OpenAIProvider

KEY = "sk-sim-anthropic"
KEY_ENV = "LOCKGATE_TEST_SIM_ANTHROPIC_KEY"
TIMEOUTS = TimeoutsConfig(connect=2, first_token=5, total=15)
MESSAGES = [{"role": "user", "content": "Hello simulator, how are you?"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a given location",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
            },
            "required": ["location", "unit"],
        },
    },
}
ANTHROPIC_WEATHER = {
    "name": "get_weather",
    "description": "Get the current weather in a given location",
    "input_schema": WEATHER["function"]["parameters"],
}
VERSION = {"anthropic-version": "2023-06-01", "x-api-key": KEY}


@pytest.fixture
async def start_sim():
    """start_sim(**config) -> base URL of a simulator started with web.AppRunner on port 0."""
    runners = []

    async def start(**config) -> str:
        runner = web.AppRunner(create_app(SimConfig(api_key=KEY, **config)), access_log=None)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def session():
    """For calling the simulator directly."""
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def upstream():
    """The pool the adapters call through, as the router's."""
    client = UpstreamClient()
    yield client
    client.close()


@pytest.fixture
def connect(start_sim, upstream, monkeypatch):
    """connect(**sim_config) -> an AnthropicProvider talking to a fresh simulator."""
    monkeypatch.setenv(KEY_ENV, KEY)

    async def make(**config) -> AnthropicProvider:
        base = await start_sim(**config)
        provider_config = ProviderConfig(type="anthropic", base_url=base, api_key_env=KEY_ENV)
        return AnthropicProvider("claude", provider_config, upstream)

    return make


async def collect(provider, body) -> list[dict]:
    return [c async for c in provider.stream_chat(body, "claude-sim", TIMEOUTS)]


def text_of(chunks: list[dict]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


# -- the router's adapter against the simulator ----------------------------------------


async def test_unary(connect):
    provider = await connect()
    reply = await provider.chat({"model": "alias", "messages": MESSAGES}, "claude-sim", TIMEOUTS)
    assert reply["id"].startswith("msg_")
    assert reply["model"] == "claude-sim"
    choice = reply["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["content"] == replies.reply_text(MESSAGES, 12)
    completion = replies.complete(replies.messages_key(MESSAGES), 12).tokens
    assert reply["usage"] == {
        "prompt_tokens": replies.prompt_tokens(MESSAGES),
        "completion_tokens": completion,
        "total_tokens": replies.prompt_tokens(MESSAGES) + completion,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


async def test_same_words_as_the_openai_dialect(connect, upstream):
    provider = await connect()
    base = provider.url.removesuffix("/v1/messages")
    openai = OpenAIProvider(
        "oai", ProviderConfig(type="openai", base_url=f"{base}/v1", api_key_env=KEY_ENV), upstream
    )
    body = {"model": "alias", "messages": [{"role": "system", "content": "Be brief."}, *MESSAGES],
            "max_tokens": 7, "stop": [" zzz"]}
    ours = await provider.chat(body, "m", TIMEOUTS)
    theirs = await openai.chat(body, "m", TIMEOUTS)
    assert ours["choices"][0]["message"]["content"] == theirs["choices"][0]["message"]["content"]
    assert ours["choices"][0]["finish_reason"] == theirs["choices"][0]["finish_reason"] == "length"
    assert ours["usage"]["prompt_tokens"] == theirs["usage"]["prompt_tokens"]
    assert ours["usage"]["completion_tokens"] == theirs["usage"]["completion_tokens"] <= 7


async def test_stream(connect):
    provider = await connect()
    body = {"model": "alias", "messages": MESSAGES, "stream": True}
    chunks = await collect(provider, body)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert text_of(chunks) == replies.reply_text(MESSAGES, 12)
    assert len([c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]) == 13
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    unary = await provider.chat(body, "claude-sim", TIMEOUTS)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == unary["usage"]


async def test_paced_stream(connect):
    provider = await connect(ttft_ms=20, chunk_interval_ms=5, chunk_count=4)
    chunks = await collect(provider, {"model": "a", "messages": MESSAGES})
    assert text_of(chunks) == replies.reply_text(MESSAGES, 12)
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


async def test_stop_sequence(connect):
    provider = await connect()
    full = replies.reply_text(MESSAGES, 12)
    stop = full.split(" ")[3]
    reply = await provider.chat({"model": "a", "messages": MESSAGES, "stop": [stop]}, "m", TIMEOUTS)
    assert reply["choices"][0]["message"]["content"] == full[: full.index(stop)]
    assert reply["choices"][0]["finish_reason"] == "stop"


async def test_tool_call_round_trip(connect):
    provider = await connect()
    body = {"model": "a", "messages": MESSAGES, "tools": [WEATHER], "tool_choice": "required"}
    reply = await provider.chat(body, "m", TIMEOUTS)
    choice = reply["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["id"].startswith("toolu_") and call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert orjson.loads(call["function"]["arguments"]) == {"location": "sim", "unit": "celsius"}

    streamed = await collect(provider, body)
    calls = [d["tool_calls"][0] for c in streamed if c["choices"]
             if "tool_calls" in (d := c["choices"][0]["delta"])]
    assert calls[0]["id"] == call["id"] and calls[0]["function"]["name"] == "get_weather"
    assert "".join(c["function"]["arguments"] for c in calls) == call["function"]["arguments"]
    assert streamed[-2]["choices"][0]["finish_reason"] == "tool_calls"

    follow_up = {"model": "a", "tools": [WEATHER], "messages": [
        *MESSAGES, choice["message"],
        {"role": "tool", "tool_call_id": call["id"], "content": "15 degrees"},
    ]}
    answer = await provider.chat(follow_up, "m", TIMEOUTS)
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["choices"][0]["message"]["content"]


async def test_529_is_upstream_unavailable(connect):
    provider = await connect(error_rate=1.0, error_status=529)
    with pytest.raises(UpstreamUnavailable, match="Overloaded"):
        await provider.chat({"model": "a", "messages": MESSAGES}, "m", TIMEOUTS)
    with pytest.raises(UpstreamUnavailable):
        await collect(provider, {"model": "a", "messages": MESSAGES})


async def test_429_carries_retry_after(connect):
    provider = await connect(error_rate=1.0, error_status=429)
    with pytest.raises(RateLimited) as err:
        await provider.chat({"model": "a", "messages": MESSAGES}, "m", TIMEOUTS)
    assert err.value.retry_after == 1


async def test_mid_stream_drop_is_an_upstream_error(connect):
    provider = await connect(drop_stream_after_chunks=2)
    seen = []
    with pytest.raises(UpstreamError):
        async for chunk in provider.stream_chat({"model": "a", "messages": MESSAGES}, "m",
                                                TIMEOUTS):
            seen.append(chunk)
    assert len(seen) == 3  # the role chunk and two content chunks
    assert text_of(seen) == "".join(replies.reply_pieces(replies.messages_key(MESSAGES), 12)[:2])


async def test_wrong_key_is_a_gateway_credentials_error(connect):
    provider = await connect()
    provider.headers["x-api-key"] = "wrong"
    with pytest.raises(UpstreamError, match="credentials"):
        await provider.chat({"model": "a", "messages": MESSAGES}, "m", TIMEOUTS)


# -- the raw wire -----------------------------------------------------------------------------


def sse_events(raw: bytes) -> list[tuple[str, dict]]:
    events = []
    for block in raw.decode().strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((lines["event"], orjson.loads(lines["data"])))
    return events


async def test_wire_event_sequence(start_sim, session):
    base = await start_sim()
    body = {"model": "claude-sim", "max_tokens": 100, "stream": True,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]}
    async with session.post(f"{base}/v1/messages", json=body, headers=VERSION) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        assert resp.headers["request-id"].startswith("req_")
        events = sse_events(await resp.read())
    names = [name for name, _ in events]
    assert names == ["message_start", "content_block_start", "ping",
                     *["content_block_delta"] * 13, "content_block_stop",
                     "message_delta", "message_stop"]
    assert all(data["type"] == name for name, data in events)
    start = events[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None
    assert start["usage"]["input_tokens"] == replies.prompt_tokens(body["messages"])
    delta = events[-2][1]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] == replies.complete(
        replies.messages_key(body["messages"]), 12).tokens


async def test_wire_stop_sequence_is_reported(start_sim, session):
    base = await start_sim()
    messages = [{"role": "user", "content": "Hi"}]
    word = replies.reply_text(messages, 12).split(" ")[2]
    body = {"model": "m", "max_tokens": 100, "messages": messages,
            "stop_sequences": ["zzz", word]}
    async with session.post(f"{base}/v1/messages", json=body, headers=VERSION) as resp:
        message = await resp.json()
    assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", word)


@pytest.mark.parametrize(
    ("body", "headers", "status", "kind", "message"),
    [
        ({"model": "m", "messages": MESSAGES}, VERSION, 400, "invalid_request_error",
         "max_tokens: Field required"),
        ({"model": "m", "max_tokens": 5, "messages": []}, VERSION, 400,
         "invalid_request_error", "messages"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]},
         VERSION, 400, "invalid_request_error", "messages.0.role"),
        ({"model": "m", "max_tokens": 5, "n": 2, "messages": MESSAGES}, VERSION, 400,
         "invalid_request_error", "n: Extra inputs are not permitted"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_x", "content": "1"}]}]},
         VERSION, 400, "invalid_request_error", "tool_use_id"),
        ({"model": "m", "max_tokens": 5, "messages": MESSAGES},
         {"x-api-key": KEY}, 400, "invalid_request_error", "anthropic-version"),
        ({"model": "m", "max_tokens": 5, "messages": MESSAGES},
         {"anthropic-version": "2023-06-01"}, 401, "authentication_error", "x-api-key"),
        ({"model": "m", "max_tokens": 5, "messages": MESSAGES},
         {**VERSION, "x-sim-status": "529"}, 529, "overloaded_error", "Overloaded"),
        ({"model": "m", "max_tokens": 5, "messages": MESSAGES},
         {**VERSION, "x-sim-status": "403"}, 403, "permission_error", ""),
        ({"model": "m", "max_tokens": 5, "messages": MESSAGES},
         {**VERSION, "x-sim-ttft-ms": "soon"}, 400, "invalid_request_error", "x-sim-ttft-ms"),
    ],
)
async def test_wire_errors(start_sim, session, body, headers, status, kind, message):
    base = await start_sim()
    async with session.post(f"{base}/v1/messages", json=body, headers=headers) as resp:
        assert resp.status == status
        error = await resp.json()
        request_id = resp.headers["request-id"]
    assert error["type"] == "error"
    assert error["error"]["type"] == kind
    assert message in error["error"]["message"]
    assert error["request_id"] == request_id


async def test_wire_429_has_retry_after(start_sim, session):
    base = await start_sim()
    body = {"model": "m", "max_tokens": 5, "messages": MESSAGES}
    headers = {**VERSION, "x-sim-status": "429"}
    async with session.post(f"{base}/v1/messages", json=body, headers=headers) as resp:
        assert resp.status == 429
        assert resp.headers["retry-after"] == "1"
        assert (await resp.json())["error"]["type"] == "rate_limit_error"


# -- the official anthropic SDK ----------------------------------------------------------------


@pytest.fixture
async def client(start_sim):
    c = anthropic.AsyncAnthropic(base_url=await start_sim(), api_key=KEY, max_retries=0)
    yield c
    await c.close()


async def test_sdk_unary(client):
    message = await client.messages.create(
        model="claude-sim", max_tokens=1024, system="Be brief.", messages=MESSAGES
    )
    expected = replies.reply_text([{"role": "system", "content": "Be brief."}, *MESSAGES], 12)
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text" and message.content[0].text == expected
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.usage.output_tokens > 0 and message.usage.input_tokens > 0


async def test_sdk_stream(client):
    async with client.messages.stream(
        model="claude-sim", max_tokens=4, messages=MESSAGES
    ) as stream:
        pieces = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert len(pieces) > 1
    assert final.content[0].text == "".join(pieces)
    assert final.stop_reason == "max_tokens"
    assert final.usage.output_tokens <= 4


async def test_sdk_tool_use(client):
    tools = [ANTHROPIC_WEATHER]
    message = await client.messages.create(
        model="claude-sim", max_tokens=1024, tools=tools,
        tool_choice={"type": "tool", "name": "get_weather"}, messages=MESSAGES,
    )
    assert message.stop_reason == "tool_use"
    (use,) = message.content
    assert use.type == "tool_use" and use.name == "get_weather"
    assert use.input == {"location": "sim", "unit": "celsius"}

    async with client.messages.stream(
        model="claude-sim", max_tokens=1024, tools=tools, tool_choice={"type": "any"},
        messages=MESSAGES,
    ) as stream:
        streamed = await stream.get_final_message()
    assert streamed.content[0].input == use.input and streamed.content[0].id == use.id

    answer = await client.messages.create(
        model="claude-sim", max_tokens=1024, tools=tools, messages=[
            *MESSAGES,
            {"role": "assistant", "content": [use.model_dump(exclude_none=True)]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": use.id, "content": "15 degrees"}]},
        ],
    )
    assert answer.stop_reason == "end_turn" and answer.content[0].type == "text"


async def test_sdk_sees_overloaded(client):
    with pytest.raises(anthropic.OverloadedError) as err:
        await client.messages.create(
            model="claude-sim", max_tokens=5, messages=MESSAGES,
            extra_headers={"x-sim-status": "529"},
        )
    assert err.value.request_id and err.value.request_id.startswith("req_")


async def test_wire_invalid_json(start_sim, session):
    base = await start_sim()
    async with session.post(f"{base}/v1/messages", data=b"{nope", headers=VERSION) as resp:
        assert resp.status == 400
        error = await resp.json()
    assert error["error"] == {"type": "invalid_request_error",
                              "message": "The request body is not valid JSON."}


async def test_images_and_system_pass_the_dialects_checks(connect):
    provider = await connect()
    body = {"model": "a", "messages": [
        {"role": "developer", "content": "Describe images."},
        {"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "https://example.com/ant.jpg"}},
        ]},
    ]}
    reply = await provider.chat(body, "m", TIMEOUTS)
    assert reply["choices"][0]["message"]["content"]
    assert reply["usage"]["prompt_tokens"] == replies.prompt_tokens(
        [{"role": "system", "content": "Describe images."},
         {"role": "user", "content": [{"type": "text", "text": "What is this?"}, {}, {}]}]
    )
