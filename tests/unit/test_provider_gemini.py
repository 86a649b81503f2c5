"""Gemini adapter: translation against Google's documented examples (fixtures),
error mapping and streaming over a local HTTP server replaying them, and
property tests that request translation never crashes."""

from __future__ import annotations

import base64
import struct
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lockgate.errors import (
    InvalidRequest,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from services.router.config import ProviderConfig, TimeoutsConfig
from services.router.providers.gemini import (
    GeminiProvider,
    StreamTranslator,
    from_embed_response,
    from_gemini_response,
    gemini_schema,
    to_embed_request,
    to_gemini_request,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "providers" / "gemini"
TIMEOUTS = TimeoutsConfig(connect=2, first_token=5, total=10)
KEY = "AIzaSy-test-key-0123456789"


def fixture(name: str):
    return orjson.loads((FIXTURES / name).read_bytes())


# -- request translation --------------------------------------------------------------


@pytest.mark.parametrize("case", ["text", "system", "image", "function_calling", "json_schema"])
def test_request_matches_documented_shape(case):
    assert to_gemini_request(fixture(f"{case}.openai.json")) == fixture(f"{case}.gemini.json")


def test_consecutive_tool_results_become_one_user_turn():
    calls = [
        {"id": f"c{i}", "type": "function", "function": {"name": f"f{i}", "arguments": "{}"}}
        for i in range(2)
    ]
    body = {
        "messages": [
            {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": "Calling.", "tool_calls": calls},
            {"role": "tool", "tool_call_id": "c1", "content": "plain text result"},
            {"role": "tool", "tool_call_id": "c0", "content": [{"type": "text", "text": "[1, 2]"}]},
            {"role": "system", "content": "Answer in French."},
        ]
    }
    request = to_gemini_request(body)
    assert request["systemInstruction"] == {
        "parts": [{"text": "Be brief."}, {"text": "Answer in French."}]
    }
    assert request["contents"] == [
        {"role": "user", "parts": [{"text": "go"}]},
        {"role": "model", "parts": [
            {"text": "Calling."},
            {"functionCall": {"name": "f0", "args": {}}},
            {"functionCall": {"name": "f1", "args": {}}},
        ]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "f1", "response": {"content": "plain text result"}}},
            # a JSON array is not an object: wrapped as text too
            {"functionResponse": {"name": "f0", "response": {"content": "[1, 2]"}}},
        ]},
    ]


def tool_body(choice, **extra):
    tools = [
        {"type": "function", "function": {"name": n, "parameters": {
            "type": "object", "properties": {"q": {"type": "string"}}}}}
        for n in ("a", "b")
    ]
    return {"messages": [{"role": "user", "content": "x"}], "tools": tools,
            "tool_choice": choice, **extra}


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        ({"type": "function", "function": {"name": "b"}},
         {"mode": "ANY", "allowedFunctionNames": ["b"]}),
        ({"type": "allowed_tools", "allowed_tools": {
            "mode": "required", "tools": [{"type": "function", "function": {"name": "b"}}]}},
         {"mode": "ANY", "allowedFunctionNames": ["b"]}),
    ],
)
def test_tool_choice(choice, config):
    request = to_gemini_request(tool_body(choice))
    assert request["toolConfig"] == {"functionCallingConfig": config}
    assert [d["name"] for d in request["tools"][0]["functionDeclarations"]] == ["a", "b"]


def test_allowed_tools_in_auto_mode_sends_only_those():
    choice = {"type": "allowed_tools", "allowed_tools": {
        "mode": "auto", "tools": [{"type": "function", "function": {"name": "b"}}]}}
    request = to_gemini_request(tool_body(choice))
    assert request["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}
    assert [d["name"] for d in request["tools"][0]["functionDeclarations"]] == ["b"]


def test_function_without_parameters_sends_none():
    body = {"messages": [{"role": "user", "content": "x"}], "tools": [
        {"type": "function", "function": {"name": "now", "parameters": {
            "type": "object", "properties": {}, "additionalProperties": False}}}]}
    assert to_gemini_request(body)["tools"] == [{"functionDeclarations": [{"name": "now"}]}]


def test_json_object_mode_and_reasoning_effort():
    body = {"messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "json_object"}, "reasoning_effort": "low",
            "max_completion_tokens": 50, "max_tokens": 9000, "stop": "END",
            "user": "u-1", "stream": True, "stream_options": {"include_usage": True}}
    assert to_gemini_request(body)["generationConfig"] == {
        "responseMimeType": "application/json",
        "thinkingConfig": {"thinkingBudget": 1024},
        "maxOutputTokens": 50,
        "stopSequences": ["END"],
    }


def test_schema_conversion():
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {"Unit": {"type": "string", "enum": ["c", "f"], "description": "unit"}},
        "properties": {
            "unit": {"$ref": "#/$defs/Unit"},
            "days": {"type": ["integer", "null"], "minimum": 1, "exclusiveMaximum": 15},
            "where": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
            "mode": {"const": "fast"},
            "either": {"type": ["string", "number"]},
            "tags": {"type": "array", "uniqueItems": True, "items": {"type": "string"}},
        },
        "required": ["unit"],
        "additionalProperties": False,
        "x-vendor": 1,
    }
    assert gemini_schema(schema, "p") == {
        "type": "OBJECT",
        "properties": {
            "unit": {"type": "STRING", "enum": ["c", "f"], "description": "unit"},
            "days": {"type": "INTEGER", "nullable": True, "minimum": 1},
            "where": {"anyOf": [
                {"type": "STRING"}, {"type": "ARRAY", "items": {"type": "STRING"}}]},
            "mode": {"enum": ["fast"]},
            "either": {"anyOf": [{"type": "STRING"}, {"type": "NUMBER"}]},
            "tags": {"type": "ARRAY", "items": {"type": "STRING"}},
        },
        "required": ["unit"],
    }


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"a": {"not": {"type": "string"}}}},
        {"allOf": [{"type": "object"}, {"required": ["a"]}]},
        {"type": "object", "patternProperties": {"^x": {"type": "string"}}},
        {"$defs": {"N": {"type": "object", "properties": {"next": {"$ref": "#/$defs/N"}}}},
         "$ref": "#/$defs/N"},
        {"$ref": "https://example.com/schema.json"},
        {"type": "object", "properties": {"n": {"enum": [1, 2]}}},
        {"type": "tuple"},
        {"type": "array", "items": [{"type": "string"}]},
    ],
)
def test_schema_rejections_name_the_tool_parameters(schema):
    body = {"messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": schema}}]}
    with pytest.raises(InvalidRequest) as info:
        to_gemini_request(body)
    assert info.value.param == "tools[0].function.parameters"


USER = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": USER, "logit_bias": {"50256": -100}}, "logit_bias"),
        ({"messages": USER, "logprobs": True}, "logprobs"),
        ({"messages": USER, "top_logprobs": 3}, "top_logprobs"),
        ({"messages": USER, "audio": {"voice": "alloy", "format": "wav"}}, "audio"),
        ({"messages": USER, "modalities": ["text", "audio"]}, "modalities"),
        ({"messages": USER, "prediction": {"type": "content", "content": "x"}}, "prediction"),
        ({"messages": USER, "web_search_options": {}}, "web_search_options"),
        ({"messages": USER, "functions": [{"name": "f"}]}, "functions"),
        ({"messages": USER, "parallel_tool_calls": False}, "parallel_tool_calls"),
        ({"messages": USER, "store": True}, "store"),
        ({"messages": USER, "service_tier": "flex"}, "service_tier"),
        ({"messages": USER, "frobnicate": 1}, "frobnicate"),
        ({"messages": USER, "temperature": "hot"}, "temperature"),
        ({"messages": USER, "n": 0}, "n"),
        ({"messages": USER, "reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"messages": USER, "response_format": {"type": "yaml"}}, "response_format"),
        ({"messages": USER, "tool_choice": "required"}, "tool_choice"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "system", "content": "only a system prompt"}]}, "messages"),
        ({"messages": [{"role": "user", "content": "hi", "name": "bob"}]}, "messages[0].name"),
        ({"messages": [{"role": "function", "name": "f", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat"}}]}]},
         "messages[0].content[0].image_url.url"),
        ({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "http://example.com/cat.png"}}]}]},
         "messages[0].content[0].image_url.url"),
        ({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png,notbase64"}}]}]},
         "messages[0].content[0].image_url.url"),
        ({"messages": [{"role": "user", "content": [
            {"type": "file", "file": {"file_id": "file-abc"}}]}]}, "messages[0].content[0].file"),
        ({"messages": [{"role": "user", "content": "x"},
                       {"role": "tool", "tool_call_id": "nope", "content": "r"}]},
         "messages[1].tool_call_id"),
        ({"messages": [{"role": "assistant", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}]},
         "messages[0].tool_calls[0].function.arguments"),
        ({"messages": USER, "tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0]"),
    ],
)
def test_unsupported_or_invalid_fields_are_400_naming_the_field(body, param):
    with pytest.raises(InvalidRequest) as info:
        to_gemini_request(body)
    assert info.value.param == param
    assert info.value.status.http == 400


def test_audio_and_file_parts_go_inline():
    body = {"messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=",
                                  "filename": "a.pdf"}},
    ]}]}
    assert to_gemini_request(body)["contents"][0]["parts"] == [
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
    ]


# -- response translation -------------------------------------------------------------------


def test_text_response():
    out = from_gemini_response(fixture("text.response.json"), "gemini-2.0-flash")
    assert out["object"] == "chat.completion"
    assert out["id"] == "chatcmpl-mAitaLmkHPPlz7IPvtfUqQ4"
    assert out["model"] == "gemini-2.0-flash" and isinstance(out["created"], int)
    (choice,) = out["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["message"]["content"].startswith("Elara had always been")
    assert "tool_calls" not in choice["message"]
    assert out["usage"] == {
        "prompt_tokens": 8, "completion_tokens": 31, "total_tokens": 39,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def test_function_call_response():
    reply = fixture("function_call.response.json")
    out = from_gemini_response(reply, "gemini-2.5-flash")
    (choice,) = out["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    calls = choice["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["set_light_values"] * 2
    assert orjson.loads(calls[0]["function"]["arguments"]) == {"color_temp": "warm",
                                                                "brightness": 25}
    assert all(c["type"] == "function" and c["id"].startswith("call_") for c in calls)
    assert calls[0]["id"] != calls[1]["id"]
    # stable: the same response gives the same ids
    again = from_gemini_response(reply, "gemini-2.5-flash")["choices"][0]["message"]
    assert [c["id"] for c in again["tool_calls"]] == [c["id"] for c in calls]


def test_tool_call_round_trip_back_to_gemini():
    out = from_gemini_response(fixture("function_call.response.json"), "m")
    message = out["choices"][0]["message"]
    calls = message["tool_calls"]
    body = {"messages": [
        {"role": "user", "content": "dim the lights"}, message,
        {"role": "tool", "tool_call_id": calls[1]["id"], "content": '{"ok": true}'},
    ]}
    contents = to_gemini_request(body)["contents"]
    assert contents[1]["parts"][1] == {
        "functionCall": {"name": "set_light_values", "args": {"color_temp": "cool",
                                                              "brightness": 10}}}
    assert contents[2] == {"role": "user", "parts": [
        {"functionResponse": {"name": "set_light_values", "response": {"ok": True}}}]}


def test_thoughts_and_cached_tokens():
    out = from_gemini_response(fixture("thinking_cached.response.json"), "gemini-2.5-pro")
    assert out["choices"][0]["message"]["content"] == (
        "The first five prime numbers are 2, 3, 5, 7 and 11."
    )  # the thought summary is not part of the answer
    assert out["usage"] == {
        "prompt_tokens": 2152, "completion_tokens": 19 + 256, "total_tokens": 2152 + 275,
        "prompt_tokens_details": {"cached_tokens": 2048},
        "completion_tokens_details": {"reasoning_tokens": 256},
    }


def test_blocked_prompt_is_a_content_filter_completion():
    out = from_gemini_response(fixture("prompt_blocked.response.json"), "m")
    assert out["choices"] == [{
        "index": 0, "message": {"role": "assistant", "content": "", "refusal": None},
        "logprobs": None, "finish_reason": "content_filter"}]
    assert out["usage"]["prompt_tokens"] == 12 and out["usage"]["completion_tokens"] == 0


def test_safety_and_max_tokens_finishes():
    out = from_gemini_response(fixture("safety_finish.response.json"), "m")
    assert [(c["index"], c["finish_reason"], c["message"]["content"]) for c in out["choices"]] == [
        (0, "content_filter", ""), (1, "length", "A long sentence that hit the")]


def test_response_without_candidates_or_block_is_upstream_error():
    with pytest.raises(UpstreamError):
        from_gemini_response({"usageMetadata": {}}, "m")


def test_stream_translator_stops_feeding_after_an_error_event():
    stream = StreamTranslator("m")
    with pytest.raises(UpstreamError, match="mid-stream"):
        stream.feed({"error": {"code": 500, "message": "boom", "status": "INTERNAL"}})


# -- embeddings --------------------------------------------------------------------------


def test_embed_request_and_response():
    payload, encoding = to_embed_request(fixture("embed.openai.json"), "gemini-embedding-001")
    assert payload == fixture("embed.gemini.json") and encoding == "float"
    out = from_embed_response(fixture("embed.response.json"), "text-embedding", 2, "float")
    assert out["object"] == "list" and out["model"] == "text-embedding"
    assert [d["index"] for d in out["data"]] == [0, 1]
    assert out["data"][1]["embedding"] == [0.0168, -0.0124, -0.0339]
    assert out["usage"] == {"prompt_tokens": 0, "total_tokens": 0}
    b64 = from_embed_response(fixture("embed.response.json"), "e", 2, "base64")
    raw = base64.b64decode(b64["data"][0]["embedding"])
    assert struct.unpack("<3f", raw) == pytest.approx((-0.0223, 0.0023, 0.0105), rel=1e-6)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": [1, 2, 3]}, "input"),
        ({"input": [[1, 2], [3]]}, "input"),
        ({"input": []}, "input"),
        ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"input": "x", "dimensions": 0}, "dimensions"),
        ({"input": "x", "extra": True}, "extra"),
    ],
)
def test_embed_rejections(body, param):
    with pytest.raises(InvalidRequest) as info:
        to_embed_request(body, "m")
    assert info.value.param == param


def test_embed_response_count_mismatch_is_upstream_error():
    with pytest.raises(UpstreamError):
        from_embed_response(fixture("embed.response.json"), "e", 3, "float")


# -- over HTTP: a local server replaying the fixtures ----------------------------------------


class Replay:
    """A local Gemini stand-in answering every POST with one canned reply."""

    def __init__(self):
        self.status = 200
        self.body = b"{}"
        self.content_type = "application/json"
        self.headers: dict[str, str] = {}
        self.seen: list[tuple[str, str, dict, dict]] = []

    def answer(self, name: str, status: int = 200, **headers: str) -> None:
        self.status = status
        self.body = (FIXTURES / name).read_bytes()
        self.content_type = "text/event-stream" if name.endswith(".sse") else "application/json"
        self.headers = headers

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((request.path, request.query_string, dict(request.headers),
                          await request.json()))
        return web.Response(status=self.status, body=self.body, headers={
            "Content-Type": self.content_type, **self.headers})


@pytest.fixture
async def replay(monkeypatch):
    monkeypatch.setenv("GEMINI_TEST_KEY", KEY)
    fake = Replay()
    app = web.Application()
    app.router.add_post("/{tail:.*}", fake.handle)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    config = ProviderConfig(type="gemini", base_url=str(server.make_url("")),
                            api_key_env="GEMINI_TEST_KEY")
    provider = GeminiProvider("gem", config)
    yield fake, provider
    provider.http.upstream.close()
    await server.close()


async def test_chat_posts_to_generate_content_with_header_key(replay):
    fake, provider = replay
    fake.answer("text.response.json")
    out = await provider.chat(fixture("text.openai.json"), "gemini-2.0-flash", TIMEOUTS)
    assert out["choices"][0]["message"]["content"].startswith("Elara")
    path, query, headers, body = fake.seen[0]
    assert path == "/v1beta/models/gemini-2.0-flash:generateContent"
    assert query == "" and KEY not in path
    assert headers["x-goog-api-key"] == KEY and "Authorization" not in headers
    assert body == fixture("text.gemini.json")


async def collect(provider, body, model="gemini-2.5-flash"):
    return [chunk async for chunk in provider.stream_chat(body, model, TIMEOUTS)]


async def test_stream_text(replay):
    fake, provider = replay
    fake.answer("stream_text.sse")
    chunks = await collect(provider, fixture("text.openai.json"))
    path, query, _, _ = fake.seen[0]
    assert (path, query) == ("/v1beta/models/gemini-2.5-flash:streamGenerateContent", "alt=sse")
    assert {c["id"] for c in chunks} == {"chatcmpl-c3RyZWFtLXRleHQ"}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "The backpack hummed softly."
    assert chunks[-2]["choices"][0] == {
        "index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 5 + 36
    assert chunks[-1]["usage"]["completion_tokens_details"] == {"reasoning_tokens": 36}


async def test_stream_function_call(replay):
    fake, provider = replay
    fake.answer("stream_call.sse")
    chunks = await collect(provider, fixture("function_calling.openai.json"))
    (delta,) = [c["choices"][0]["delta"] for c in chunks if c["choices"]
                and "tool_calls" in c["choices"][0]["delta"]]
    (call,) = delta["tool_calls"]
    assert call["index"] == 0 and call["id"].startswith("call_")
    assert call["function"]["name"] == "set_light_values"
    assert orjson.loads(call["function"]["arguments"]) == {"brightness": 25, "color_temp": "warm"}
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "tool_calls"
    assert chunks[-1]["usage"]["prompt_tokens"] == 79


async def test_stream_without_finish_is_an_error(replay):
    fake, provider = replay
    fake.answer("stream_truncated.sse")
    with pytest.raises(UpstreamError, match="ended the stream early"):
        await collect(provider, fixture("text.openai.json"))


@pytest.mark.parametrize(
    ("name", "status", "headers", "kind", "retry_after", "code"),
    [
        ("error_429.json", 429, {}, RateLimited, 30.0, "upstream_rate_limited"),
        ("error_400_invalid.json", 429, {"Retry-After": "7"}, RateLimited, 7.0, None),
        ("error_503.json", 503, {}, UpstreamUnavailable, None, None),
        ("error_500.json", 500, {}, UpstreamUnavailable, None, None),
        ("error_504.json", 504, {}, UpstreamTimeout, None, None),
        ("error_400_context.json", 400, {}, InvalidRequest, None, "context_length_exceeded"),
        ("error_400_invalid.json", 400, {}, InvalidRequest, None, "upstream_invalid_request"),
        ("error_400_api_key.json", 400, {}, UpstreamError, None, None),
        ("error_403.json", 403, {}, UpstreamError, None, None),
    ],
)
async def test_error_mapping(replay, name, status, headers, kind, retry_after, code):
    fake, provider = replay
    fake.answer(name, status, **headers)
    for call in (
        lambda: provider.chat(fixture("text.openai.json"), "m", TIMEOUTS),
        lambda: collect(provider, fixture("text.openai.json")),
    ):
        with pytest.raises(kind) as info:
            await call()
        assert type(info.value) is kind
        assert info.value.retry_after == retry_after
        if code:
            assert info.value.code == code
        assert KEY not in info.value.message
    if name in ("error_400_api_key.json", "error_403.json"):
        assert "credentials were rejected" in info.value.message


async def test_embed_over_http(replay):
    fake, provider = replay
    fake.answer("embed.response.json")
    out = await provider.embed(fixture("embed.openai.json"), "gemini-embedding-001", TIMEOUTS)
    assert len(out["data"]) == 2
    path, _, _, body = fake.seen[0]
    assert path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert body == fixture("embed.gemini.json")


# -- properties ----------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans()
    # the integers orjson.loads can produce (request bodies are parsed by it)
    | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=3),
    max_leaves=10,
)
_schema_keys = st.sampled_from([
    "type", "properties", "items", "required", "enum", "anyOf", "oneOf", "allOf", "$ref",
    "$defs", "description", "nullable", "const", "additionalProperties", "not", "format",
    "minimum", "x-extra",
])
_schemas = st.recursive(
    st.dictionaries(_schema_keys, _json | st.sampled_from(
        ["object", "string", "integer", ["string", "null"], "#/$defs/A"]), max_size=4),
    lambda inner: st.fixed_dictionaries({
        "type": st.sampled_from(["object", "array", "string"]),
        "properties": st.dictionaries(st.text(max_size=5), inner, max_size=3),
        "items": inner,
        "$defs": st.fixed_dictionaries({"A": inner}),
    }),
    max_leaves=8,
)
_text_part = st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=20)})
_image_part = st.fixed_dictionaries({"type": st.just("image_url"), "image_url": st.fixed_dictionaries(
    {"url": st.sampled_from(["data:image/png;base64,iVBORw0=", "https://x.test/a.jpg",
                             "https://x.test/a", "ftp://x", "data:,x"])})})
_content = st.none() | st.text(max_size=30) | st.lists(_text_part | _image_part | _json,
                                                       max_size=3)
_call = st.fixed_dictionaries({
    "id": st.sampled_from(["c1", "c2"]), "type": st.just("function"),
    "function": st.fixed_dictionaries({
        "name": st.sampled_from(["f", "g"]),
        "arguments": st.sampled_from(["{}", '{"a": 1}', "[]", "nope", ""])}),
})
_message = st.one_of(
    st.fixed_dictionaries({"role": st.sampled_from(["system", "developer", "user"]),
                           "content": _content}),
    st.fixed_dictionaries({"role": st.just("assistant"), "content": _content},
                          optional={"tool_calls": st.lists(_call, max_size=2)}),
    st.fixed_dictionaries({"role": st.just("tool"), "content": _content,
                           "tool_call_id": st.sampled_from(["c1", "c2", "c3"])}),
    st.dictionaries(st.sampled_from(["role", "content", "name", "x"]), _json, max_size=3),
)
_tool = st.fixed_dictionaries({
    "type": st.just("function"),
    "function": st.fixed_dictionaries({"name": st.sampled_from(["f", "g", "h"])},
                                      optional={"description": st.text(max_size=10),
                                                "parameters": _schemas}),
})
_bodies = st.fixed_dictionaries(
    {"messages": st.lists(_message, max_size=5)},
    optional={
        "tools": st.lists(_tool, max_size=3),
        "tool_choice": st.sampled_from(["auto", "none", "required", {"type": "function",
                                        "function": {"name": "f"}}, {"type": "x"}, 3]),
        "response_format": st.sampled_from([{"type": "json_object"}, {"type": "text"},
                                            {"type": "json_schema", "json_schema": {
                                                "name": "n", "schema": {"type": "object"}}},
                                            {"type": "json_schema"}, "json"]),
        "temperature": _json, "top_p": _json, "n": _json, "stop": _json, "seed": _json,
        "max_tokens": _json, "max_completion_tokens": _json, "user": _json,
        "logprobs": st.booleans(), "parallel_tool_calls": st.booleans(),
        "reasoning_effort": st.sampled_from(["low", "high", "none", "max"]),
        "stream": st.booleans(),
    },
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_bodies)
def test_request_translation_never_crashes(body):
    try:
        request = to_gemini_request(body)
    except InvalidRequest as exc:
        assert exc.param is None or isinstance(exc.param, str)
        return
    assert isinstance(request, dict) and request["contents"]
    assert all(c["role"] in ("user", "model") and c["parts"] for c in request["contents"])
    orjson.dumps(request)


@settings(max_examples=200, deadline=None)
@given(_schemas)
def test_schema_conversion_never_crashes(schema):
    try:
        out = gemini_schema(schema, "p")
    except InvalidRequest as exc:
        assert exc.param == "p"
        return
    assert isinstance(out, dict)
    text = orjson.dumps(out).decode()
    assert "$ref" not in text and "additionalProperties" not in text


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["candidates", "promptFeedback", "usageMetadata",
                                        "responseId", "modelVersion"]), _json, max_size=4))
def test_response_translation_never_crashes(reply):
    try:
        out = from_gemini_response(reply, "m")
    except UpstreamError:
        return
    assert out["object"] == "chat.completion" and out["choices"]
    stream = StreamTranslator("m")
    try:
        stream.feed(reply)
        stream.end()
    except UpstreamError:
        pass


def test_thought_signatures_round_trip_through_tool_calls():
    from services.router.providers.gemini.request import to_gemini_request
    from services.router.providers.gemini.response import candidate_parts

    candidate = {"content": {"role": "model", "parts": [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
         "thoughtSignature": "c2lnbmF0dXJl"}]}}
    _, calls = candidate_parts(candidate, "resp-1", 0, 0)
    assert calls[0]["extra_content"] == {"google": {"thought_signature": "c2lnbmF0dXJl"}}
    request = to_gemini_request({"messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": calls[0]["id"], "content": '{"temp": 21}'},
    ]})
    part = request["contents"][1]["parts"][0]
    assert part["thoughtSignature"] == "c2lnbmF0dXJl" and part["functionCall"]["name"] == "get_weather"
