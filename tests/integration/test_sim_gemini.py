"""GeminiProvider against the simulator's Gemini dialect over real HTTP (port 0),
and the dialect's own wire format checked with aiohttp."""

from __future__ import annotations

import aiohttp
import jsonschema
import orjson
import pytest

from lockgate.errors import RateLimited, UpstreamError, UpstreamUnavailable
from lockgate.sim import replies
from lockgate.sim.config import SimConfig
from lockgate.sim.server import serve
from lockgate.upstream_client import UpstreamClient
from services.router.config import ProviderConfig, TimeoutsConfig
from services.router.providers.gemini import GeminiProvider, to_gemini_request

KEY = "sim-gemini-key"
MODEL = "gemini-2.5-flash"
TIMEOUTS = TimeoutsConfig(connect=2, first_token=5, total=10)
BODY = {"model": "alias", "messages": [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hello Gemini, how are you?"},
]}
WEATHER = {"type": "function", "function": {
    "name": "get_weather",
    "description": "Weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": ["integer", "null"]}},
        "required": ["city"],
        "additionalProperties": False,
    },
}}


@pytest.fixture
async def start(monkeypatch):
    """start(**sim_config) -> (GeminiProvider, base URL) against a fresh simulator."""
    monkeypatch.setenv("LOCKGATE_TEST_GEMINI_KEY", KEY)
    runners = []
    upstream = UpstreamClient()

    async def run(**config):
        runner, port = await serve("127.0.0.1", 0, SimConfig(api_key=KEY, **config))
        runners.append(runner)
        base = f"http://127.0.0.1:{port}"
        provider = GeminiProvider("gem", ProviderConfig(
            type="gemini", base_url=base, api_key_env="LOCKGATE_TEST_GEMINI_KEY"), upstream)
        return provider, base

    yield run
    upstream.close()
    for runner in runners:
        await runner.cleanup()


def expected(body, words=12, **limits):
    """The simulator's deterministic reply to what the adapter sends for `body`."""
    request = to_gemini_request(body)
    key = replies.messages_key({"contents": request["contents"],
                                "system": request.get("systemInstruction")})
    return replies.complete(key, words, **limits)


async def collect(provider, body):
    return [c async for c in provider.stream_chat(body, MODEL, TIMEOUTS)]


def streamed_text(chunks, index=0):
    return "".join(
        c["choices"][0]["delta"].get("content") or ""
        for c in chunks if c["choices"] and c["choices"][0]["index"] == index
    )


# -- through the adapter ------------------------------------------------------------------


async def test_unary_chat(start):
    provider, _ = await start()
    out = await provider.chat(BODY, MODEL, TIMEOUTS)
    want = expected(BODY)
    assert out["object"] == "chat.completion" and out["model"] == MODEL
    (choice,) = out["choices"]
    assert choice["message"]["content"] == want.text
    assert choice["finish_reason"] == "stop"
    usage = out["usage"]
    assert usage["completion_tokens"] == want.tokens
    assert usage["prompt_tokens"] == replies.count_tokens("You are terse.") + replies.count_tokens(
        "Hello Gemini, how are you?")
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_stream_matches_unary(start):
    provider, _ = await start()
    unary = await provider.chat(BODY, MODEL, TIMEOUTS)
    chunks = await collect(provider, BODY)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert streamed_text(chunks) == unary["choices"][0]["message"]["content"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == unary["usage"]
    assert len({c["id"] for c in chunks}) == 1


async def test_limits_stop_and_candidates(start):
    provider, _ = await start()
    body = {**BODY, "max_tokens": 3, "n": 2}
    out = await provider.chat(body, MODEL, TIMEOUTS)
    assert [c["finish_reason"] for c in out["choices"]] == ["length", "length"]
    assert out["choices"][0]["message"]["content"] == expected(body, max_tokens=3).text
    chunks = await collect(provider, body)
    assert streamed_text(chunks, 1) == out["choices"][1]["message"]["content"]
    full = expected(BODY).text
    stop = full.split(" ")[2]
    out = await provider.chat({**BODY, "stop": [stop]}, MODEL, TIMEOUTS)
    assert out["choices"][0]["message"]["content"] == full[: full.index(stop)]


async def test_function_call_round_trip(start):
    provider, _ = await start()
    body = {**BODY, "tools": [WEATHER], "tool_choice": "required"}
    out = await provider.chat(body, MODEL, TIMEOUTS)
    (choice,) = out["choices"]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    assert orjson.loads(call["function"]["arguments"]) == {"city": "sim"}

    chunks = await collect(provider, body)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    (streamed,) = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert streamed["function"] == call["function"] and streamed["index"] == 0
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"

    follow = {**body, "tool_choice": "auto", "messages": [
        *BODY["messages"], choice["message"],
        {"role": "tool", "tool_call_id": call["id"], "content": '{"temp_c": 21}'},
    ]}
    answer = await provider.chat(follow, MODEL, TIMEOUTS)
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["choices"][0]["message"]["content"] == expected(follow).text


async def test_tool_choice_none_and_named(start):
    provider, _ = await start()
    other = {"type": "function", "function": {"name": "get_time"}}
    out = await provider.chat({**BODY, "tools": [WEATHER, other], "tool_choice": "none"},
                              MODEL, TIMEOUTS)
    assert "tool_calls" not in out["choices"][0]["message"]
    out = await provider.chat({**BODY, "tools": [WEATHER, other], "tool_choice": {
        "type": "function", "function": {"name": "get_time"}}}, MODEL, TIMEOUTS)
    assert out["choices"][0]["message"]["tool_calls"][0]["function"] == {
        "name": "get_time", "arguments": "{}"}


async def test_json_schema_and_image(start):
    provider, _ = await start()
    schema = {"type": "object", "properties": {"title": {"type": "string"},
                                               "score": {"type": "integer"}},
              "required": ["title", "score"], "additionalProperties": False}
    body = {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "Rate this"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]}], "response_format": {"type": "json_schema", "json_schema": {"name": "r",
                                                                    "schema": schema}}}
    out = await provider.chat(body, MODEL, TIMEOUTS)
    document = orjson.loads(out["choices"][0]["message"]["content"])
    jsonschema.validate(document, schema)  # the simulator's structured outputs
    assert set(document) == {"title", "score"}
    assert out["usage"]["prompt_tokens"] == replies.count_tokens("Rate this") + 85


async def test_rate_limit_has_retry_after(start):
    provider, _ = await start(error_rate=1.0, error_status=429)
    with pytest.raises(RateLimited) as info:
        await provider.chat(BODY, MODEL, TIMEOUTS)
    assert info.value.retry_after == 1.0
    with pytest.raises(RateLimited):
        await collect(provider, BODY)


async def test_unavailable(start):
    provider, _ = await start(error_rate=1.0, error_status=503)
    with pytest.raises(UpstreamUnavailable, match="overloaded"):
        await provider.chat(BODY, MODEL, TIMEOUTS)
    with pytest.raises(UpstreamUnavailable):
        await collect(provider, BODY)


async def test_drop_mid_stream(start):
    provider, _ = await start(drop_stream_after_chunks=2)
    seen = []
    with pytest.raises(UpstreamError):
        async for chunk in provider.stream_chat(BODY, MODEL, TIMEOUTS):
            seen.append(chunk)
    assert streamed_text(seen) == "".join(expected(BODY).pieces[:2])


@pytest.mark.parametrize("mode", ["prompt", "response"])
async def test_safety_block_is_content_filter(start, mode):
    provider, _ = await start()
    provider.headers["x-sim-safety-block"] = mode
    out = await provider.chat(BODY, MODEL, TIMEOUTS)
    assert [(c["finish_reason"], c["message"]["content"]) for c in out["choices"]] == [
        ("content_filter", "")]
    assert out["usage"]["completion_tokens"] == 0 and out["usage"]["prompt_tokens"] > 0
    chunks = await collect(provider, BODY)
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == (
        "content_filter")
    assert chunks[-1]["usage"]["prompt_tokens"] == out["usage"]["prompt_tokens"]


async def test_embeddings(start):
    provider, _ = await start()
    out = await provider.embed({"input": ["alpha", "beta"], "dimensions": 4}, "text-embedding-004",
                               TIMEOUTS)
    assert [d["embedding"] for d in out["data"]] == [
        replies.embedding(b"alpha", 4), replies.embedding(b"beta", 4)]
    out = await provider.embed({"input": "alpha"}, "text-embedding-004", TIMEOUTS)
    assert out["data"][0]["embedding"] == replies.embedding(b"alpha", 8)


async def test_wrong_key_is_a_credentials_error(start):
    provider, _ = await start()
    provider.headers["x-goog-api-key"] = "wrong"
    with pytest.raises(UpstreamError, match="credentials were rejected"):
        await provider.chat(BODY, MODEL, TIMEOUTS)


# -- the dialect on the wire ------------------------------------------------------------------


async def post(base, path, body, **headers):
    async with aiohttp.ClientSession() as session:
        async with session.post(base + path, json=body,
                                headers={"x-goog-api-key": KEY, **headers}) as resp:
            return resp.status, resp.headers.get("content-type", ""), await resp.read()


CONTENTS = {"contents": [{"parts": [{"text": "hi"}]}]}


async def test_stream_without_alt_is_a_json_array(start):
    _, base = await start()
    status, ctype, raw = await post(base, f"/v1beta/models/{MODEL}:streamGenerateContent",
                                    CONTENTS, **{"x-sim-reply-words": "2"})
    assert status == 200 and ctype.startswith("application/json")
    events = orjson.loads(raw)
    assert [e["candidates"][0].get("finishReason") for e in events] == [None, None, None, "STOP"]
    status, ctype, raw = await post(base, f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse",
                                    CONTENTS, **{"x-sim-reply-words": "2"})
    assert ctype.startswith("text/event-stream") and raw.count(b"data: ") == 4


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "google", "text"),
    [
        (f"/v1beta/models/{MODEL}:countTokens", CONTENTS, {}, 404, "NOT_FOUND", "Method"),
        (f"/v1beta/models/{MODEL}:generateContent", {**CONTENTS, "temprature": 1}, {}, 400,
         "INVALID_ARGUMENT", 'Unknown name "temprature"'),
        (f"/v1beta/models/{MODEL}:generateContent", {**CONTENTS, "tools": [
            {"functionDeclarations": [{"name": "f", "parameters": {
                "type": "object", "properties": {"a": {"type": "string"}},
                "additionalProperties": False}}]}]}, {}, 400, "INVALID_ARGUMENT",
         'Unknown name "additionalProperties"'),
        (f"/v1beta/models/{MODEL}:generateContent", {"contents": []}, {}, 400,
         "INVALID_ARGUMENT", "contents is not specified"),
        (f"/v1beta/models/{MODEL}:generateContent", CONTENTS, {"x-sim-status": "503"}, 503,
         "UNAVAILABLE", "overloaded"),
        (f"/v1beta/models/{MODEL}:generateContent", CONTENTS, {"x-goog-api-key": ""}, 403,
         "PERMISSION_DENIED", "unregistered callers"),
        (f"/v1beta/models/{MODEL}:generateContent", CONTENTS, {"x-sim-safety-block": "x"}, 400,
         "INVALID_ARGUMENT", "x-sim-safety-block"),
    ],
)
async def test_google_shaped_errors(start, path, body, headers, status, google, text):
    _, base = await start()
    if headers.get("x-goog-api-key") == "":
        async with aiohttp.ClientSession() as session:
            async with session.post(base + path, json=body) as resp:
                got, raw = resp.status, await resp.read()
    else:
        got, _, raw = await post(base, path, body, **headers)
    error = orjson.loads(raw)["error"]
    assert (got, error["code"], error["status"]) == (status, status, google)
    assert text in error["message"]


async def test_key_in_query_parameter(start):
    _, base = await start()
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/v1beta/models/{MODEL}:generateContent?key={KEY}",
                                json=CONTENTS) as resp:
            assert resp.status == 200
