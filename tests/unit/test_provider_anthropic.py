"""The Anthropic adapter: request/response/stream/error translation on fixtures
copied from Anthropic's documentation, over a real local HTTP server replaying them."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from lockgate.errors import InvalidRequest, RateLimited, UpstreamError, UpstreamUnavailable
from services.router.config import ProviderConfig, TimeoutsConfig
from services.router.providers.anthropic import (
    DEFAULT_MAX_TOKENS,
    AnthropicProvider,
    StreamTranslator,
    to_anthropic,
    to_completion,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "providers" / "anthropic"
TIMEOUTS = TimeoutsConfig(connect=2, first_token=5, total=10)
KEY_ENV = "LOCKGATE_TEST_ANTHROPIC_KEY"
HELLO = {"model": "alias", "messages": [{"role": "user", "content": "Hello"}]}


def fixture(name: str):
    raw = (FIXTURES / name).read_bytes()
    return orjson.loads(raw) if name.endswith(".json") else raw


# -- a local upstream replaying fixtures ----------------------------------------------


class Upstream:
    """A real HTTP server answering every request with the configured reply."""

    def __init__(self):
        self.requests: list[tuple[str, dict[str, str], dict]] = []
        self.status = 200
        self.body = b"{}"
        self.headers: dict[str, str] = {}
        self.content_type = "application/json"
        self.base_url = ""

    def reply_json(self, body: object, status: int = 200, headers: dict | None = None) -> None:
        self.status, self.body = status, orjson.dumps(body)
        self.headers, self.content_type = dict(headers or {}), "application/json"

    def reply_sse(self, body: bytes) -> None:
        self.status, self.body, self.headers = 200, body, {}
        self.content_type = "text/event-stream"

    def reply_error(self, name: str) -> None:
        error = fixture(name)
        self.reply_json(error["body"], error["status"], error["headers"])

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(
            (request.path, dict(request.headers), orjson.loads(await request.read()))
        )
        return web.Response(
            status=self.status, body=self.body, headers=self.headers,
            content_type=self.content_type,
        )


@pytest.fixture
async def upstream():
    server = Upstream()
    app = web.Application()
    app.router.add_post("/{tail:.*}", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield server
    await runner.cleanup()


@pytest.fixture
async def provider(upstream, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-ant-test-key")
    config = ProviderConfig(type="anthropic", base_url=upstream.base_url, api_key_env=KEY_ENV)
    provider = AnthropicProvider("claude", config)
    yield provider
    provider.http.upstream.close()


async def collect(provider, body=HELLO) -> list[dict]:
    return [chunk async for chunk in provider.stream_chat(body, "claude-x", TIMEOUTS)]


# -- requests ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["request_basic.json", "request_system.json", "request_images.json",
     "request_tools_round_trip.json"],
)
def test_request_translation(name):
    case = fixture(name)
    assert to_anthropic(case["openai"], case["model"]) == case["anthropic"]


def test_tool_results_merge_into_one_user_turn_before_text():
    calls = [
        {"id": f"call_{i}", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        for i in (1, 2)
    ]
    body = {"messages": [
        {"role": "developer", "content": "Be terse."},
        {"role": "user", "content": "Hi"},
        {"role": "user", "content": [{"type": "text", "text": "there"}]},
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "call_1", "content": "one"},
        {"role": "tool", "tool_call_id": "call_2",
         "content": [{"type": "text", "text": "two"}]},
        {"role": "user", "content": "thanks"},
        {"role": "system", "content": [{"type": "text", "text": "Be kind."}]},
    ]}
    payload = to_anthropic(body, "m")
    assert payload["system"] == [
        {"type": "text", "text": "Be terse."}, {"type": "text", "text": "Be kind."}
    ]
    roles = [m["role"] for m in payload["messages"]]
    assert roles == ["user", "assistant", "user"]
    assert payload["messages"][0]["content"] == [
        {"type": "text", "text": "Hi"}, {"type": "text", "text": "there"}
    ]
    assert [b["type"] for b in payload["messages"][1]["content"]] == ["tool_use", "tool_use"]
    assert payload["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "one"},
        {"type": "tool_result", "tool_use_id": "call_2",
         "content": [{"type": "text", "text": "two"}]},
        {"type": "text", "text": "thanks"},
    ]


def test_max_tokens_defaults_and_prefers_max_completion_tokens():
    assert to_anthropic(HELLO, "m")["max_tokens"] == DEFAULT_MAX_TOKENS == 4096
    both = {**HELLO, "max_tokens": 10, "max_completion_tokens": 20}
    assert to_anthropic(both, "m")["max_tokens"] == 20


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        ({"type": "function", "function": {"name": "f"}}, {"type": "tool", "name": "f"}),
    ],
)
def test_tool_choice(choice, expected):
    tools = [{"type": "function", "function": {"name": "f"}}]
    payload = to_anthropic({**HELLO, "tools": tools, "tool_choice": choice}, "m")
    assert payload["tool_choice"] == expected
    assert payload["tools"] == [
        {"name": "f", "input_schema": {"type": "object", "properties": {}}}
    ]


def test_invalid_tool_arguments_name_the_param():
    body = {"messages": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
        ]},
    ]}
    with pytest.raises(InvalidRequest) as err:
        to_anthropic(body, "m")
    assert err.value.param == "messages[1].tool_calls[0].function.arguments"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
         "response_format"),
        ({"seed": 7}, "seed"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"frequency_penalty": -1}, "frequency_penalty"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"some_new_field": 1}, "some_new_field"),
        ({"temperature": 1.5}, "temperature"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"messages": [{"role": "user", "content": "Hi", "name": "bob"}]}, "messages[0].name"),
        ({"messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}]},
         "messages[0].content[0].type"),
        ({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "http://example.com/a.png"}}]}]},
         "messages[0].content[0].image_url.url"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
    ],
)
def test_fields_anthropic_cannot_honour_are_400s(extra, param):
    with pytest.raises(InvalidRequest) as err:
        to_anthropic({**HELLO, **extra}, "m")
    assert err.value.param == param
    assert err.value.status.http == 400


def test_neutral_values_are_accepted():
    body = {**HELLO, "n": 1, "logprobs": False, "presence_penalty": 0, "frequency_penalty": 0.0,
            "logit_bias": {}, "response_format": {"type": "text"}, "modalities": ["text"],
            "seed": None, "stream_options": {"include_usage": True}}
    assert to_anthropic(body, "m")["messages"] == [{"role": "user", "content": "Hello"}]


# -- responses ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["response_basic.json", "response_tool_use.json", "response_cache_usage.json",
     "response_cache_read.json"],
)
def test_response_translation(name):
    case = fixture(name)
    completion = to_completion(case["anthropic"])
    created = completion.pop("created")
    assert isinstance(created, int) and abs(created - time.time()) < 60
    assert completion == case["openai"]


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [("end_turn", "stop"), ("stop_sequence", "stop"), ("pause_turn", "stop"),
     ("max_tokens", "length"), ("tool_use", "tool_calls"), ("refusal", "content_filter")],
)
def test_finish_reasons(stop_reason, finish):
    message = {**fixture("response_basic.json")["anthropic"], "stop_reason": stop_reason}
    assert to_completion(message)["choices"][0]["finish_reason"] == finish


# -- over HTTP ------------------------------------------------------------------------------


async def test_chat_sends_documented_headers_and_body(provider, upstream):
    case = fixture("request_tools_round_trip.json")
    upstream.reply_json(fixture("response_tool_use.json")["anthropic"])
    reply = await provider.chat(case["openai"], case["model"], TIMEOUTS)
    path, headers, sent = upstream.requests[0]
    assert path == "/v1/messages"
    assert headers["x-api-key"] == "sk-ant-test-key"
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["Content-Type"] == "application/json"
    assert sent == case["anthropic"]
    assert reply["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"


async def test_api_version_comes_from_config(upstream):
    config = ProviderConfig(type="anthropic", base_url=upstream.base_url,
                            api_version="2024-01-01")
    upstream.reply_json(fixture("response_basic.json")["anthropic"])
    provider = AnthropicProvider("c", config)
    await provider.chat(HELLO, "m", TIMEOUTS)
    provider.http.upstream.close()
    headers = upstream.requests[0][1]
    assert headers["anthropic-version"] == "2024-01-01"
    assert "x-api-key" not in headers


async def test_stream_text(provider, upstream):
    upstream.reply_sse(fixture("stream_text.sse"))
    chunks = await collect(provider)
    assert upstream.requests[0][2]["stream"] is True
    assert all(c["id"] == "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY" for c in chunks)
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    deltas = [c["choices"][0]["delta"] for c in chunks[1:-2]]
    assert deltas == [{"content": "Hello"}, {"content": "!"}]
    assert chunks[-2]["choices"][0] == {
        "index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"
    }
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 25, "completion_tokens": 15, "total_tokens": 40,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


async def test_stream_tool_use(provider, upstream):
    upstream.reply_sse(fixture("stream_tool_use.sse"))
    chunks = await collect(provider)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    text = "".join(d.get("content") or "" for d in deltas)
    assert text == "Okay, let's check the weather for San Francisco, CA:"
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert calls[0] == {
        "index": 0, "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert all(set(c) == {"index", "function"} and c["index"] == 0 for c in calls[1:])
    arguments = "".join(c["function"]["arguments"] for c in calls)
    assert orjson.loads(arguments) == {"location": "San Francisco, CA", "unit": "fahrenheit"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["prompt_tokens"] == 472
    assert chunks[-1]["usage"]["completion_tokens"] == 89


async def test_overloaded_error_event_mid_stream(provider, upstream):
    upstream.reply_sse(fixture("stream_overloaded.sse"))
    seen = []
    with pytest.raises(UpstreamUnavailable, match="Overloaded"):
        async for chunk in provider.stream_chat(HELLO, "m", TIMEOUTS):
            seen.append(chunk)
    assert [c["choices"][0]["delta"] for c in seen] == [
        {"role": "assistant", "content": ""}, {"content": "Hello"}
    ]


async def test_stream_without_message_stop_is_an_upstream_error(provider, upstream):
    upstream.reply_sse(fixture("stream_cut.sse"))
    with pytest.raises(UpstreamError, match="ended the stream early"):
        await collect(provider)


@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize(
    ("name", "error", "code"),
    [
        ("error_400.json", InvalidRequest, "upstream_invalid_request"),
        ("error_400_prompt_too_long.json", InvalidRequest, "context_length_exceeded"),
        ("error_429.json", RateLimited, "upstream_rate_limited"),
        ("error_529.json", UpstreamUnavailable, "upstream_unavailable"),
    ],
)
async def test_error_bodies(provider, upstream, name, error, code, streamed):
    upstream.reply_error(name)
    with pytest.raises(error) as err:
        if streamed:
            await collect(provider)  # raises before the first chunk
        else:
            await provider.chat(HELLO, "m", TIMEOUTS)
    assert type(err.value) is error
    assert err.value.code == code
    assert fixture(name)["body"]["error"]["message"][:40] in err.value.message
    if name == "error_429.json":
        assert err.value.retry_after == 17


async def test_rejected_credentials_are_not_the_callers_fault(provider, upstream):
    upstream.reply_error("error_401.json")
    with pytest.raises(UpstreamError) as err:
        await provider.chat(HELLO, "m", TIMEOUTS)
    assert type(err.value) is UpstreamError
    assert "credentials" in err.value.message


async def test_overloaded_error_type_on_another_status_is_unavailable(provider, upstream):
    upstream.reply_json(fixture("error_529.json")["body"], status=500,
                        headers={"retry-after": "3"})
    with pytest.raises(UpstreamUnavailable) as err:
        await provider.chat(HELLO, "m", TIMEOUTS)
    assert err.value.retry_after == 3


async def test_unexpected_response_shape(provider, upstream):
    upstream.reply_json({"type": "message", "id": "msg_1"})
    with pytest.raises(UpstreamError, match="unexpected response"):
        await provider.chat(HELLO, "m", TIMEOUTS)


async def test_embed_is_refused(provider):
    with pytest.raises(InvalidRequest, match="no embeddings API") as err:
        await provider.embed({"model": "m", "input": "x"}, "m", TIMEOUTS)
    assert err.value.param == "model"


def test_message_delta_usage_overrides_cumulative_counts():
    translator = StreamTranslator("claude")
    translator.feed({"type": "message_start", "message": {
        "id": "msg_1", "model": "m",
        "usage": {"input_tokens": 10, "cache_read_input_tokens": 0, "output_tokens": 1},
    }})
    translator.feed({"type": "message_delta", "delta": {"stop_reason": "max_tokens"},
                     "usage": {"input_tokens": 10, "cache_read_input_tokens": 90,
                               "cache_creation_input_tokens": 5, "output_tokens": 7}})
    finish, usage = translator.feed({"type": "message_stop"})
    assert translator.done
    assert finish["choices"][0]["finish_reason"] == "length"
    assert usage["usage"] == {
        "prompt_tokens": 105, "completion_tokens": 7, "total_tokens": 112,
        "prompt_tokens_details": {"cached_tokens": 90},
    }


def test_events_before_message_start_are_refused():
    with pytest.raises(UpstreamError, match="before message_start"):
        StreamTranslator("claude").feed({"type": "content_block_delta", "index": 0})
