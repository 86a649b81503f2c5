"""Tool calls in the simulator's OpenAI dialect, driven by the official openai SDK;
and the Anthropic edge end to end: the anthropic SDK -> the edge translation ->
the OpenAI adapter -> the simulator's tool calls, and back."""

from __future__ import annotations

import aiohttp
import anthropic
import openai
import orjson
import pytest
from aiohttp import web

from lockgate.errors import LockgateError
from lockgate.sim import replies
from lockgate.sim.config import SimConfig
from lockgate.sim.server import serve
from lockgate.sim.tools import ToolSpec, choose_call
from services.router import anthropic_edge as edge
from services.router.config import ProviderConfig, TimeoutsConfig
from services.router.providers.openai import OpenAIProvider

MODEL = "sim-small"
WEATHER = {
    "type": "object",
    "properties": {
        "location": {"type": "string", "description": "The city and state"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer"},
    },
    "required": ["location", "unit", "days"],
}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                      "parameters": WEATHER}},
    {"type": "function", "function": {"name": "get_time", "parameters": {
        "type": "object", "properties": {"tz": {"type": "string"}}}}},
]
MESSAGES = [{"role": "user", "content": "What's the weather like in Paris?"}]


def expected_call(messages, name=None, choice=None, tools=TOOLS):
    """The call the simulator must make, from the shared neutral decision."""
    specs = [ToolSpec(t["function"]["name"], t["function"].get("parameters") or {})
             for t in tools]
    call = choose_call(specs, choice, name, messages[-1]["role"] == "tool",
                       replies.messages_key(messages))
    assert call is not None
    return call.call_id("call_"), call.name, call.arguments


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


# -- unary -------------------------------------------------------------------------------


async def test_unary_tool_call(client):
    r = await client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=TOOLS)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    call_id, name, arguments = expected_call(MESSAGES)
    assert (call.id, call.type, call.function.name) == (call_id, "function", "get_weather")
    assert orjson.loads(call.function.arguments) == arguments == {
        "location": "sim", "unit": "celsius", "days": 1}
    assert r.usage.completion_tokens == replies.count_tokens(call.function.arguments)
    assert r.usage.prompt_tokens == replies.prompt_tokens(MESSAGES)
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


async def test_unary_tool_call_is_deterministic_and_per_choice(client):
    a = await client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=TOOLS, n=2)
    b = await client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=TOOLS)
    assert [c.index for c in a.choices] == [0, 1]
    assert a.choices[0].message.tool_calls == a.choices[1].message.tool_calls
    assert a.choices[0].message.tool_calls == b.choices[0].message.tool_calls
    assert a.usage.completion_tokens == 2 * b.usage.completion_tokens


async def test_tool_choice_none_answers_in_text(client):
    r = await client.chat.completions.create(
        model=MODEL, messages=MESSAGES, tools=TOOLS, tool_choice="none"
    )
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.tool_calls is None
    assert r.choices[0].message.content == replies.reply_text(MESSAGES)


async def test_named_tool_choice(client):
    choice = {"type": "function", "function": {"name": "get_time"}}
    r = await client.chat.completions.create(
        model=MODEL, messages=MESSAGES, tools=TOOLS, tool_choice=choice
    )
    [call] = r.choices[0].message.tool_calls
    assert call.function.name == "get_time"
    assert orjson.loads(call.function.arguments) == {"tz": "sim"}
    assert call.id == expected_call(MESSAGES, name="get_time")[0]


async def test_tool_result_is_answered_in_text_unless_required(client):
    first = await client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=TOOLS)
    call = first.choices[0].message.tool_calls[0]
    followup = [
        *MESSAGES,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "15 degrees"},
    ]
    r = await client.chat.completions.create(model=MODEL, messages=followup, tools=TOOLS)
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.content == replies.reply_text(followup)
    assert r.usage.prompt_tokens == replies.prompt_tokens(followup)

    forced = await client.chat.completions.create(
        model=MODEL, messages=followup, tools=TOOLS, tool_choice="required"
    )
    assert forced.choices[0].finish_reason == "tool_calls"
    assert forced.choices[0].message.tool_calls[0].id == expected_call(
        followup, choice="required")[0]
    assert forced.choices[0].message.tool_calls[0].id != call.id  # a new conversation key


async def test_no_tools_reply_is_unchanged(client):
    r = await client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert r.choices[0].message.content == replies.reply_text(MESSAGES)
    assert r.choices[0].message.tool_calls is None


# -- streams ---------------------------------------------------------------------------------


async def test_streamed_tool_call(client):
    stream = await client.chat.completions.create(
        model=MODEL, messages=MESSAGES, tools=TOOLS, stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    call_id, _, arguments = expected_call(MESSAGES)
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    first = deltas[0].tool_calls[0]
    assert deltas[0].role == "assistant" and deltas[0].content is None
    assert (first.index, first.id, first.type, first.function.name, first.function.arguments) == (
        0, call_id, "function", "get_weather", "")
    fragments = [d.tool_calls[0] for d in deltas[1:] if d.tool_calls]
    assert len(fragments) == 3  # cut after each comma of the three arguments
    assert all(f.id is None and f.function.name is None and f.index == 0 for f in fragments)
    joined = "".join(f.function.arguments for f in fragments)
    assert orjson.loads(joined) == arguments
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "tool_calls" and set(finishes[:-1]) == {None}
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == replies.count_tokens(joined)


async def test_streamed_tool_call_accumulates_in_the_sdk(client):
    async with client.chat.completions.stream(
        model=MODEL, messages=MESSAGES, tools=TOOLS, tool_choice="required"
    ) as stream:
        completion = await stream.get_final_completion()
    unary = await client.chat.completions.create(
        model=MODEL, messages=MESSAGES, tools=TOOLS, tool_choice="required"
    )
    assert completion.choices[0].finish_reason == "tool_calls"
    streamed_call = completion.choices[0].message.tool_calls[0]
    unary_call = unary.choices[0].message.tool_calls[0]
    assert (streamed_call.id, streamed_call.function.name, streamed_call.function.arguments) == (
        unary_call.id, unary_call.function.name, unary_call.function.arguments)


async def test_streamed_tool_call_honours_chunk_count(base):
    body = {"model": MODEL, "messages": MESSAGES, "tools": TOOLS, "stream": True}
    async with aiohttp.ClientSession() as http, http.post(
        f"{base}/v1/chat/completions", json=body, headers={"x-sim-chunk-count": "1"}
    ) as resp:
        raw = await resp.read()
    events = [line[6:] for line in raw.split(b"\n\n") if line.startswith(b"data: ")]
    assert events[-1] == b"[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert all("usage" not in c for c in chunks)  # include_usage was not asked for
    args = [c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
            for c in chunks if c["choices"][0]["delta"].get("tool_calls")]
    assert len(args) == 2 and args[0] == ""  # the start, then all arguments in one chunk
    assert orjson.loads(args[1]) == expected_call(MESSAGES)[2]


async def test_streamed_follow_up_answers_in_text(client):
    call_id, name, arguments = expected_call(MESSAGES)
    followup = [
        *MESSAGES,
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": call_id, "type": "function",
            "function": {"name": name, "arguments": orjson.dumps(arguments).decode()}}]},
        {"role": "tool", "tool_call_id": call_id, "content": "15 degrees"},
    ]
    stream = await client.chat.completions.create(
        model=MODEL, messages=followup, tools=TOOLS, stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == replies.reply_text(followup)


# -- validation ------------------------------------------------------------------------------


BAD = [
    ({"tools": {}}, "tools", "invalid_type"),
    ({"tools": []}, "tools", "empty_array"),
    ({"tools": ["x"]}, "tools[0]", "invalid_type"),
    ({"tools": [{"function": {"name": "f"}}]}, "tools[0].type", "missing_required_parameter"),
    ({"tools": [{"type": "custom", "custom": {"name": "f"}}]}, "tools[0].type", "invalid_value"),
    ({"tools": [{"type": "function"}]}, "tools[0].function", "missing_required_parameter"),
    ({"tools": [{"type": "function", "function": {}}]}, "tools[0].function.name",
     "missing_required_parameter"),
    ({"tools": [{"type": "function", "function": {"name": "get weather"}}]},
     "tools[0].function.name", "invalid_value"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": []}}]},
     "tools[0].function.parameters", "invalid_type"),
    ({"tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice", "invalid_value"),
    ({"tools": TOOLS, "tool_choice": 3}, "tool_choice", "invalid_type"),
    ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}},
     "tool_choice", "invalid_value"),
    ({"tools": TOOLS, "tool_choice": {"type": "function"}}, "tool_choice.function.name",
     "missing_required_parameter"),
    ({"tool_choice": "auto"}, "tool_choice", None),
    ({"parallel_tool_calls": False}, "parallel_tool_calls", None),
    ({"tools": TOOLS, "parallel_tool_calls": "no"}, "parallel_tool_calls", "invalid_type"),
    ({"messages": [*MESSAGES, {"role": "tool", "content": "x"}]}, "messages[1].tool_call_id",
     "missing_required_parameter"),
    ({"messages": [*MESSAGES, {"role": "tool", "tool_call_id": "call_1", "content": "x"}]},
     "messages[1].role", None),
    ({"messages": [*MESSAGES, {"role": "assistant", "tool_calls": [{"id": "a"}]},
                   {"role": "tool", "tool_call_id": "b", "content": "x"}]},
     "messages[2].role", None),
    ({"messages": [*MESSAGES, {"role": "assistant", "tool_calls": {}}]},
     "messages[1].tool_calls", "invalid_type"),
]


@pytest.mark.parametrize(("fields", "param", "code"), BAD)
async def test_invalid_tool_requests(client, fields, param, code):
    body = {"model": MODEL, "messages": MESSAGES, **fields}
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(**body)
    assert info.value.status_code == 400
    assert (info.value.param, info.value.code) == (param, code)
    assert info.value.body["message"]


# -- the Anthropic edge over the simulator ------------------------------------------------------


@pytest.fixture
async def anthropic_client(base):
    """The anthropic SDK against a minimal /v1/messages built from the edge module
    and the OpenAI adapter, with the simulator as the provider."""
    provider = OpenAIProvider("sim", ProviderConfig(type="openai", base_url=f"{base}/v1"))
    timeouts = TimeoutsConfig()

    async def messages(request: web.Request) -> web.StreamResponse:
        try:
            req = edge.parse_messages_request(await request.read())
            body = edge.to_openai_request(req)
            if not req.get("stream"):
                reply = await provider.chat(body, MODEL, timeouts)
                return web.json_response(edge.to_anthropic_message(reply, req["model"]))
            chunks = provider.stream_chat(body, MODEL, timeouts)
            first = await anext(chunks)
        except LockgateError as exc:
            return web.Response(status=edge.anthropic_error_status(exc),
                                body=edge.anthropic_error_body(exc),
                                content_type="application/json")
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        translator = edge.StreamTranslator(req["model"])
        for event in translator.feed(first):
            await resp.write(event)
        async for chunk in chunks:
            for event in translator.feed(chunk):
                await resp.write(event)
        for event in translator.finish():
            await resp.write(event)
        return resp

    app = web.Application()
    app.router.add_post("/v1/messages", messages)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    client = anthropic.AsyncAnthropic(
        base_url=f"http://127.0.0.1:{runner.addresses[0][1]}", api_key="x", max_retries=0
    )
    yield client
    await client.close()
    await runner.cleanup()
    provider.http.upstream.close()


ANTHROPIC_TOOLS = [{"name": "get_weather", "description": "Weather", "input_schema": WEATHER}]
ASK = [{"role": "user", "content": "What's the weather like in Paris?"}]


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_sdk_tool_round_trip_through_the_edge(anthropic_client, stream):
    params = {"model": "claude-alias", "max_tokens": 256, "tools": ANTHROPIC_TOOLS}
    if stream:
        async with anthropic_client.messages.stream(messages=ASK, **params) as s:
            message = await s.get_final_message()
    else:
        message = await anthropic_client.messages.create(messages=ASK, **params)
    assert message.model == "claude-alias" and message.stop_reason == "tool_use"
    [tool] = message.content
    openai_messages = [{"role": "user", "content": ASK[0]["content"]}]
    call_id, name, arguments = expected_call(
        openai_messages, tools=[{"function": {"name": "get_weather", "parameters": WEATHER}}])
    assert (tool.type, tool.id, tool.name, tool.input) == ("tool_use", call_id, name, arguments)
    assert message.usage.input_tokens == replies.prompt_tokens(openai_messages)
    assert message.usage.output_tokens == replies.count_tokens(orjson.dumps(arguments).decode())

    followup = [*ASK, {"role": "assistant", "content": message.content},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool.id,
                                              "content": "15 degrees"}]}]
    if stream:
        async with anthropic_client.messages.stream(messages=followup, **params) as s:
            answer = await s.get_final_message()
    else:
        answer = await anthropic_client.messages.create(messages=followup, **params)
    assert answer.stop_reason == "end_turn"
    assert [b.type for b in answer.content] == ["text"]
    # The simulator answered the conversation exactly as the edge translated it.
    translated = [
        *openai_messages,
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": call_id, "type": "function",
            "function": {"name": name, "arguments": orjson.dumps(arguments).decode()}}]},
        {"role": "tool", "tool_call_id": call_id, "content": "15 degrees"},
    ]
    assert answer.content[0].text == replies.reply_text(translated)


async def test_anthropic_sdk_sees_upstream_validation_errors(anthropic_client):
    with pytest.raises(anthropic.BadRequestError) as info:
        await anthropic_client.messages.create(
            model="claude-alias", max_tokens=16, messages=ASK,
            tools=[{"name": "bad name", "input_schema": {"type": "object"}}])
    assert info.value.body["error"]["type"] == "invalid_request_error"
    assert info.value.body["error"]["message"].startswith("tools.0.name: ")
