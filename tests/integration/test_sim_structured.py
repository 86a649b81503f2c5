"""Structured outputs (response_format) and the x-sim-echo knob of the provider
simulator, over real HTTP: the official openai SDK for the OpenAI dialect, raw
requests for the wire, the Anthropic and Gemini dialects' echo."""

from __future__ import annotations

import aiohttp
import jsonschema
import openai
import orjson
import pytest
from pydantic import BaseModel

from lockgate.sim import replies, structured
from lockgate.sim.config import SimConfig
from lockgate.sim.server import serve

SYSTEM = "You triage support tickets. Answer in JSON."
MESSAGES = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": "Printer on floor 3 is on fire, please help."},
]
TRIAGE = {
    "type": "object",
    "properties": {
        "summary": {"type": "string", "maxLength": 60},
        "priority": {"type": "string", "enum": ["low", "medium", "high"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3},
        "assignee": {"anyOf": [{"$ref": "#/$defs/person"}, {"type": "null"}]},
    },
    "required": ["summary", "priority", "confidence", "tags", "assignee"],
    "additionalProperties": False,
    "$defs": {"person": {
        "type": "object",
        "properties": {"name": {"type": "string"}, "email": {"type": "string",
                                                            "format": "email"}},
        "required": ["name", "email"],
        "additionalProperties": False,
    }},
}
JSON_SCHEMA = {"type": "json_schema",
               "json_schema": {"name": "triage", "schema": TRIAGE, "strict": True}}
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
ECHO = {"x-sim-echo": "1"}
ECHOED = f"system: {SYSTEM}\nuser: Printer on floor 3 is on fire, please help."


@pytest.fixture
async def base():
    runner, port = await serve("127.0.0.1", 0, SimConfig())
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
async def client(base):
    c = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0)
    yield c
    await c.close()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


def usage_of(r, content: str):
    prompt = replies.prompt_tokens(MESSAGES)
    completion = replies.count_tokens(content)
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (
        prompt, completion, prompt + completion)


# -- json_schema ---------------------------------------------------------------------


async def test_json_schema_content_validates_and_is_deterministic(client):
    r = await client.chat.completions.create(
        model="m", messages=MESSAGES, response_format=JSON_SCHEMA)
    content = r.choices[0].message.content
    jsonschema.validate(orjson.loads(content), TRIAGE)
    assert content == structured.structured_text(TRIAGE, MESSAGES)
    assert r.choices[0].finish_reason == "stop"
    usage_of(r, content)
    again = await client.chat.completions.create(
        model="other", messages=MESSAGES, response_format=JSON_SCHEMA)
    assert again.choices[0].message.content == content
    other = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "different"}], response_format=JSON_SCHEMA)
    assert other.choices[0].message.content != content


async def test_json_schema_stream_is_the_same_text(client):
    unary = await client.chat.completions.create(
        model="m", messages=MESSAGES, response_format=JSON_SCHEMA)
    stream = await client.chat.completions.create(
        model="m", messages=MESSAGES, response_format=JSON_SCHEMA, stream=True,
        stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    content = [c.choices[0].delta.content for c in chunks[1:-2]]
    text = unary.choices[0].message.content
    assert "".join(content) == text
    assert content == replies.text_pieces(text)  # one token per chunk
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].usage.completion_tokens == unary.usage.completion_tokens


async def test_json_schema_stream_with_chunk_count(client):
    stream = await client.chat.completions.create(
        model="m", messages=MESSAGES, response_format=JSON_SCHEMA, stream=True,
        extra_headers={"x-sim-chunk-count": "3"})
    chunks = [c async for c in stream]
    content = [c.choices[0].delta.content for c in chunks[1:-1]]
    assert len(content) == 3
    jsonschema.validate(orjson.loads("".join(content)), TRIAGE)


class Step(BaseModel):
    explanation: str
    output: str


class MathReasoning(BaseModel):
    steps: list[Step]
    final_answer: str
    confidence: float | None
    verified: bool


async def test_sdk_parse_with_a_pydantic_model(client):
    r = await client.chat.completions.parse(
        model="m", messages=MESSAGES, response_format=MathReasoning)
    parsed = r.choices[0].message.parsed
    assert isinstance(parsed, MathReasoning) and parsed.steps
    assert all(isinstance(s, Step) for s in parsed.steps)


async def test_n_choices_differ_and_all_validate(client):
    r = await client.chat.completions.create(
        model="m", messages=MESSAGES, response_format=JSON_SCHEMA, n=3)
    contents = [c.message.content for c in r.choices]
    for i, content in enumerate(contents):
        jsonschema.validate(orjson.loads(content), TRIAGE)
        assert content == structured.structured_text(TRIAGE, MESSAGES, i)
    assert len(set(contents)) == 3
    assert r.usage.completion_tokens == sum(map(replies.count_tokens, contents))


async def test_max_tokens_cuts_the_json(client):
    full = structured.structured_text(TRIAGE, MESSAGES)
    r = await client.chat.completions.create(
        model="m", messages=MESSAGES, response_format=JSON_SCHEMA, max_tokens=5)
    content = r.choices[0].message.content
    assert r.choices[0].finish_reason == "length"
    assert full.startswith(content) and content != full
    assert r.usage.completion_tokens == replies.count_tokens(content) == 5


async def test_json_object(client):
    r = await client.chat.completions.create(
        model="m", messages=MESSAGES, response_format={"type": "json_object"})
    content = r.choices[0].message.content
    assert orjson.loads(content) == {"text": replies.reply_text(MESSAGES, 12)}
    usage_of(r, content)
    r = await client.chat.completions.create(
        model="m", messages=MESSAGES, response_format={"type": "text"})
    assert r.choices[0].message.content == replies.reply_text(MESSAGES, 12)


async def test_a_tool_call_comes_instead_of_the_json_then_the_json(client):
    r = await client.chat.completions.create(
        model="m", messages=MESSAGES, response_format=JSON_SCHEMA, tools=[WEATHER])
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].message.content is None
    turn = [*MESSAGES, {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
    r = await client.chat.completions.create(
        model="m", messages=turn, response_format=JSON_SCHEMA, tools=[WEATHER])
    jsonschema.validate(orjson.loads(r.choices[0].message.content), TRIAGE)


async def test_azure_route_answers_json_too(base, http):
    async with http.post(f"{base}/openai/deployments/d/chat/completions?api-version=2024-10-21",
                         json={"model": "d", "messages": MESSAGES,
                               "response_format": JSON_SCHEMA}) as resp:
        body = await resp.json()
    assert body["choices"][0]["message"]["content"] == structured.structured_text(TRIAGE, MESSAGES)


@pytest.mark.parametrize("fmt, param", [
    ({"type": "yaml"}, "response_format.type"),
    ({"type": "json_schema", "json_schema": {"schema": TRIAGE}}, "response_format.json_schema.name"),
    ({"type": "json_schema", "json_schema": {"name": "t", "schema": "x"}},
     "response_format.json_schema.schema"),
])
async def test_bad_response_format_is_a_400(base, http, fmt, param):
    async with http.post(f"{base}/v1/chat/completions",
                         json={"model": "m", "messages": MESSAGES, "response_format": fmt}) as resp:
        body = await resp.json()
    assert resp.status == 400
    assert body["error"]["param"] == param and body["error"]["type"] == "invalid_request_error"


async def test_an_unanswerable_schema_is_a_400_before_injected_faults(base, http):
    fmt = {"type": "json_schema", "json_schema": {"name": "bad", "schema": {
        "type": "object", "properties": {"x": {"$ref": "#/$defs/missing"}}}}}
    async with http.post(f"{base}/v1/chat/completions", headers={"x-sim-status": "503"},
                         json={"model": "m", "messages": MESSAGES, "response_format": fmt}) as resp:
        body = await resp.json()
    assert resp.status == 400 and body["error"]["param"] == "response_format"
    assert body["error"]["message"].startswith("Invalid schema for response_format 'bad': ")


# -- x-sim-echo ------------------------------------------------------------------------


async def test_echo_repeats_the_messages(client):
    r = await client.chat.completions.create(model="m", messages=MESSAGES, extra_headers=ECHO)
    assert r.choices[0].message.content == ECHOED
    assert r.choices[0].finish_reason == "stop"
    usage_of(r, ECHOED)


async def test_echo_wins_over_json_tools_and_limits(client):
    r = await client.chat.completions.create(
        model="m", messages=MESSAGES, extra_headers=ECHO, response_format=JSON_SCHEMA,
        tools=[WEATHER], tool_choice="required", max_tokens=1, stop=["floor"], n=2)
    for choice in r.choices:
        assert choice.message.content == ECHOED and choice.message.tool_calls is None
        assert choice.finish_reason == "stop"
    assert r.usage.completion_tokens == 2 * replies.count_tokens(ECHOED)


async def test_echo_streams_token_by_token(client):
    stream = await client.chat.completions.create(
        model="m", messages=MESSAGES, stream=True, extra_headers=ECHO)
    chunks = [c async for c in stream]
    content = [c.choices[0].delta.content for c in chunks[1:-1]]
    assert content == replies.text_pieces(ECHOED)


async def test_echo_of_parts_and_tool_turns(client):
    messages = [
        {"role": "developer", "content": [{"type": "text", "text": "Rule "},
                                          {"type": "text", "text": "one."}]},
        {"role": "user", "content": [{"type": "text", "text": "Look:"}, {
            "type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    r = await client.chat.completions.create(
        model="m", messages=messages, tools=[WEATHER], extra_headers=ECHO)
    assert r.choices[0].message.content == (
        "developer: Rule one.\nuser: Look:\nassistant: \ntool: sunny")


@pytest.mark.parametrize("value, status", [("0", 200), ("1", 200), ("2", 400), ("yes", 400)])
async def test_echo_header_values(base, http, value, status):
    async with http.post(f"{base}/v1/chat/completions", headers={"x-sim-echo": value},
                         json={"model": "m", "messages": MESSAGES}) as resp:
        body = await resp.json()
    assert resp.status == status
    if status == 400:
        assert body["error"]["param"] == "x-sim-echo"
    else:
        expected = ECHOED if value == "1" else replies.reply_text(MESSAGES, 12)
        assert body["choices"][0]["message"]["content"] == expected


async def test_anthropic_echo(base, http):
    body = {"model": "claude", "max_tokens": 1, "system": SYSTEM, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Printer on floor 3 is on fire, "},
                                     {"type": "text", "text": "please help."}]}]}
    headers = {"anthropic-version": "2023-06-01", **ECHO}
    async with http.post(f"{base}/v1/messages", json=body, headers=headers) as resp:
        reply = await resp.json()
    assert reply["content"] == [{"type": "text", "text": ECHOED}]
    assert reply["stop_reason"] == "end_turn"
    assert reply["usage"]["output_tokens"] == replies.count_tokens(ECHOED)
    async with http.post(f"{base}/v1/messages", json={**body, "stream": True},
                         headers=headers) as resp:
        raw = (await resp.read()).decode()
    deltas = [orjson.loads(line[6:])["delta"] for line in raw.split("\n")
              if line.startswith("data: ") and "text_delta" in line]
    assert "".join(d["text"] for d in deltas) == ECHOED


async def test_gemini_echo_and_json(base, http):
    url = f"{base}/v1beta/models/gemini-sim:generateContent"
    body = {"systemInstruction": {"parts": [{"text": SYSTEM}]}, "contents": [
        {"role": "user", "parts": [{"text": "Hi"}]},
        {"role": "model", "parts": [{"text": "Hello!"}]},
        {"role": "user", "parts": [{"text": "Printer on floor 3 is on fire, please help."}]}]}
    async with http.post(url, json=body, headers=ECHO) as resp:
        reply = await resp.json()
    text = reply["candidates"][0]["content"]["parts"][0]["text"]
    assert text == (f"system: {SYSTEM}\nuser: Hi\nmodel: Hello!\n"
                    "user: Printer on floor 3 is on fire, please help.")
    assert reply["usageMetadata"]["candidatesTokenCount"] == replies.count_tokens(text)

    json_body = {**body, "generationConfig": {"responseMimeType": "application/json",
                                              "responseJsonSchema": TRIAGE}}
    async with http.post(url, json=json_body) as resp:
        reply = await resp.json()
    text = reply["candidates"][0]["content"]["parts"][0]["text"]
    jsonschema.validate(orjson.loads(text), TRIAGE)
    stream_url = f"{base}/v1beta/models/gemini-sim:streamGenerateContent?alt=sse"
    async with http.post(stream_url, json=json_body) as resp:
        raw = (await resp.read()).decode()
    events = [orjson.loads(line[6:]) for line in raw.split("\n") if line.startswith("data: ")]
    parts = [p.get("text", "") for e in events for c in e.get("candidates", [])
             for p in c.get("content", {}).get("parts", [])]
    assert "".join(parts) == text
