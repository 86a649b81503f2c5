"""The Anthropic-compatible edge: documented examples, validation, errors, properties,
and the translator's bytes read back by the official `anthropic` SDK."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import anthropic
import orjson
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lockgate import errors as lg
from services.router import anthropic_edge as edge
from services.router.providers import anthropic as provider

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "anthropic_edge"
MODEL = "claude-sonnet-4-5"
_EVENT = re.compile(rb"event: ([a-z_]+)\ndata: ([^\n]*)\n\n")


def fixture(name: str) -> dict:
    return orjson.loads((FIXTURES / name).read_bytes())


def chunks(name: str) -> list[dict]:
    return [orjson.loads(line) for line in (FIXTURES / name).read_bytes().splitlines() if line]


def parse_sse(data: bytes) -> list[tuple[str, dict]]:
    """(event, data) pairs; fails unless the bytes are exactly a run of SSE events."""
    events = []
    pos = 0
    while pos < len(data):
        m = _EVENT.match(data, pos)
        assert m, f"malformed SSE at byte {pos}: {data[pos:pos + 80]!r}"
        payload = orjson.loads(m.group(2))
        assert payload["type"] == m.group(1).decode(), "event name and data type differ"
        events.append((m.group(1).decode(), payload))
        pos = m.end()
    return events


def translate(openai_chunks: list[dict], **finish) -> list[tuple[str, dict]]:
    t = edge.StreamTranslator(MODEL)
    out = [e for c in openai_chunks for e in t.feed(c)] + t.finish(**finish)
    return parse_sse(b"".join(out))


def check_well_formed(events: list[tuple[str, dict]], complete: bool = True) -> None:
    """Anthropic's event grammar: message_start, then blocks opened and closed one at
    a time with consecutive indexes, then message_delta and message_stop."""
    assert events and events[0][0] == "message_start"
    assert events[0][1]["message"]["content"] == []
    open_block: tuple[int, str] | None = None
    next_index = 0
    for i, (name, data) in enumerate(events[1:], start=1):
        if name == "content_block_start":
            assert open_block is None, "a block started while another was open"
            assert data["index"] == next_index
            open_block = (next_index, data["content_block"]["type"])
            next_index += 1
        elif name == "content_block_delta":
            assert open_block is not None and data["index"] == open_block[0]
            expected = {"text": "text_delta", "tool_use": "input_json_delta"}[open_block[1]]
            assert data["delta"]["type"] == expected
        elif name == "content_block_stop":
            assert open_block is not None and data["index"] == open_block[0]
            open_block = None
        elif name == "message_delta":
            assert open_block is None and i == len(events) - 2
            assert data["delta"]["stop_reason"] in (
                "end_turn", "max_tokens", "tool_use", "refusal"
            )  # fmt: skip
            assert isinstance(data["usage"]["output_tokens"], int)
        elif name == "message_stop":
            assert i == len(events) - 1
        else:
            raise AssertionError(f"unexpected event {name}")
    if complete:
        assert [e[0] for e in events[-2:]] == ["message_delta", "message_stop"]
    else:
        assert all(e[0] not in ("message_delta", "message_stop") for e in events)


# -- documented examples ------------------------------------------------------------


@pytest.mark.parametrize("name", ["basic.json", "system_image.json", "tool_use.json",
                                  "tool_result_error.json"])
def test_request_translation(name):
    case = fixture(name)
    req = edge.parse_messages_request(orjson.dumps(case["anthropic_request"]))
    assert edge.to_openai_request(req) == case["openai_request"]


@pytest.mark.parametrize("name", ["basic.json", "tool_use.json"])
def test_reply_translation(name):
    case = fixture(name)
    assert edge.to_anthropic_message(case["openai_reply"], MODEL) == case["anthropic_message"]


def test_tool_use_round_trip_followup():
    case = fixture("tool_use.json")
    message = edge.to_anthropic_message(case["openai_reply"], MODEL)
    # The client sends the reply back as the assistant turn with its tool result.
    followup = case["followup_request"]
    assert followup["messages"][1]["content"] == message["content"]
    body = edge.to_openai_request(edge.parse_messages_request(orjson.dumps(followup)))
    assert body["messages"] == case["followup_openai_messages"]
    # The ids the provider chose come back to it unchanged.
    assert body["messages"][2]["tool_call_id"] == case["openai_reply"]["choices"][0]["message"][
        "tool_calls"][0]["id"]


def test_stream_request_asks_for_usage():
    req = edge.parse_messages_request(
        orjson.dumps({**fixture("basic.json")["anthropic_request"], "stream": True})
    )
    body = edge.to_openai_request(req)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("name", ["stream_text", "stream_tool_use"])
def test_stream_translation(name):
    events = translate(chunks(f"{name}.openai.jsonl"))
    expected = parse_sse((FIXTURES / f"{name}.anthropic.sse").read_bytes())
    assert events == expected
    check_well_formed(events)


# -- replies: the decisions of the module docstring -------------------------------------


def reply(message: dict, finish: str | None = "stop", usage: dict | None = None) -> dict:
    return {
        "id": "chatcmpl-abc",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage,
    }


@pytest.mark.parametrize(
    ("finish", "has_tool", "expected"),
    [
        ("stop", False, "end_turn"),
        ("length", False, "max_tokens"),
        ("tool_calls", True, "tool_use"),
        ("stop", True, "tool_use"),  # servers that say "stop" after tool calls
        ("length", True, "max_tokens"),
        ("content_filter", False, "refusal"),
        (None, False, "end_turn"),
    ],
)
def test_stop_reasons(finish, has_tool, expected):
    message = {"role": "assistant", "content": "hi"}
    if has_tool:
        message["tool_calls"] = [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ]
    assert edge.to_anthropic_message(reply(message, finish), MODEL)["stop_reason"] == expected


def test_reply_without_text_and_with_empty_arguments():
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "now", "arguments": ""}}
        ],
    }
    out = edge.to_anthropic_message(reply(message, "tool_calls"), MODEL)
    assert out["content"] == [{"type": "tool_use", "id": "call_1", "name": "now", "input": {}}]
    assert out["usage"] == {
        "input_tokens": 0, "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0, "output_tokens": 0,
    }  # fmt: skip


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]", '"text"'])
def test_reply_with_invalid_arguments_is_an_upstream_error(arguments):
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}
        ],
    }
    with pytest.raises(lg.UpstreamError, match="'f'"):
        edge.to_anthropic_message(reply(message, "tool_calls"), MODEL)


def test_refusal_reply():
    out = edge.to_anthropic_message(
        reply({"role": "assistant", "content": None, "refusal": "I can't help."}, "stop"), MODEL
    )
    assert out["content"] == [{"type": "text", "text": "I can't help."}]


def test_empty_reply_and_missing_id():
    out = edge.to_anthropic_message({"choices": []}, MODEL)
    assert out["content"] == [] and out["stop_reason"] == "end_turn"
    assert re.fullmatch(r"msg_[0-9a-f]{24}", out["id"])


# -- streams: edge cases ---------------------------------------------------------------------


def chunk(delta: dict | None = None, finish: str | None = None, **extra) -> dict:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "chatcmpl-s1", "object": "chat.completion.chunk", "choices": choices, **extra}


def tool_delta(index, id=None, name=None, arguments=None):  # noqa: A002 - OpenAI's field
    call: dict = {"index": index, "function": {}}
    if id:
        call.update(id=id, type="function")
    if name is not None:
        call["function"]["name"] = name
    if arguments is not None:
        call["function"]["arguments"] = arguments
    return {"tool_calls": [call]}


def test_stream_parallel_tool_calls_and_cached_usage():
    events = translate(
        [
            chunk({"role": "assistant", "content": None}),
            chunk(tool_delta(0, "call_a", "get_weather", "")),
            chunk(tool_delta(0, arguments='{"location":"Paris"}')),
            chunk(tool_delta(1, "call_b", "get_time", "")),
            chunk(tool_delta(1, arguments='{"tz":"CET"}')),
            chunk({}, "tool_calls"),
            chunk(None, usage={"prompt_tokens": 100, "completion_tokens": 20,
                               "prompt_tokens_details": {"cached_tokens": 60}}),
        ]
    )
    check_well_formed(events)
    starts = [d["content_block"] for n, d in events if n == "content_block_start"]
    assert starts == [
        {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {}},
        {"type": "tool_use", "id": "call_b", "name": "get_time", "input": {}},
    ]
    assert events[-2][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"input_tokens": 40, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 60, "output_tokens": 20},
    }


def test_stream_tool_name_arriving_late_is_buffered():
    events = translate(
        [chunk(tool_delta(0, "call_a", None, '{"a"')), chunk(tool_delta(0, None, "f", ":1}"))]
    )
    check_well_formed(events)
    assert events[1][1]["content_block"]["name"] == "f"
    assert events[2][1]["delta"] == {"type": "input_json_delta", "partial_json": '{"a":1}'}


def test_stream_tool_without_name_fails():
    t = edge.StreamTranslator(MODEL)
    t.feed(chunk(tool_delta(0, "call_a", None, "{}")))
    with pytest.raises(lg.UpstreamError, match="without a name"):
        t.finish()


def test_stream_interleaved_tool_fragments_fail():
    t = edge.StreamTranslator(MODEL)
    t.feed(chunk(tool_delta(0, "call_a", "f", "{")))
    t.feed(chunk(tool_delta(1, "call_b", "g", "{")))
    with pytest.raises(lg.UpstreamError, match="interleaved"):
        t.feed(chunk(tool_delta(0, arguments="}")))


def test_stream_with_no_chunks_and_estimated_usage():
    t = edge.StreamTranslator(MODEL, input_tokens=12)
    events = parse_sse(b"".join(t.finish(usage={"prompt_tokens": 12, "completion_tokens": 3})))
    check_well_formed(events)
    assert events[0][1]["message"]["usage"]["input_tokens"] == 12
    assert events[-2][1]["usage"]["output_tokens"] == 3
    with pytest.raises(RuntimeError):
        t.feed(chunk({"content": "late"}))


def test_stream_ignores_other_choices_and_keeps_usage_from_first_chunk():
    first = chunk({"content": "a"}, usage={"prompt_tokens": 9, "completion_tokens": 0})
    other = {"choices": [{"index": 1, "delta": {"content": "b"}, "finish_reason": None}]}
    events = translate([first, other, chunk({}, "length")])
    check_well_formed(events)
    assert events[0][1]["message"]["usage"]["input_tokens"] == 9
    texts = [d["delta"]["text"] for n, d in events if n == "content_block_delta"]
    assert texts == ["a"]
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"


def test_error_event_and_ping():
    assert parse_sse(edge.error_event(lg.UpstreamUnavailable("provider down"))) == [
        ("error", {"type": "error",
                   "error": {"type": "overloaded_error", "message": "provider down"}})
    ]
    assert parse_sse(edge.PING_EVENT) == [("ping", {"type": "ping"})]


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", fixture("errors.json")["cases"], ids=lambda c: c["error"])
def test_error_bodies(case):
    exc = getattr(lg, case["error"])("something failed")
    assert edge.anthropic_error_status(exc) == case["status"]
    body = orjson.loads(edge.anthropic_error_body(exc, request_id="req_1"))
    assert body == {
        "type": "error",
        "error": {"type": case["type"], "message": "something failed"},
        "request_id": "req_1",
    }


def test_error_body_without_request_id():
    body = orjson.loads(edge.anthropic_error_body(lg.RateLimited("slow down")))
    assert body == {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}


# -- validation ---------------------------------------------------------------------------------

BASE = {"model": MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
TOOL = {"name": "f", "input_schema": {"type": "object"}}


def with_(**fields):
    body = copy.deepcopy(BASE)
    for key, value in fields.items():
        if value is ...:
            body.pop(key)
        else:
            body[key] = value
    return body


def asst_tool(tid="toolu_1"):
    return {"role": "assistant",
            "content": [{"type": "tool_use", "id": tid, "name": "f", "input": {}}]}


def result(tid="toolu_1", **extra):
    return {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tid, **extra}]}


INVALID = [
    (b"{", None, "not valid JSON"),
    (b"[]", None, "JSON object"),
    (with_(model=...), "model", "Field required"),
    (with_(model=3), "model", "valid string"),
    (with_(max_tokens=...), "max_tokens", "Field required"),
    (with_(max_tokens=0), "max_tokens", "greater than or equal to 1"),
    (with_(max_tokens=True), "max_tokens", "valid integer"),
    (with_(max_tokens=1.5), "max_tokens", "valid integer"),
    (with_(messages=...), "messages", "Field required"),
    (with_(messages=[]), "messages", "at least one message"),
    (with_(messages="hi"), "messages", "valid list"),
    (with_(messages=[{"role": "system", "content": "x"}]), "messages.0.role", "'user'"),
    (with_(messages=[{"role": "user"}]), "messages.0.content", "Field required"),
    (with_(messages=[{"role": "user", "content": 5}]), "messages.0.content", "string or list"),
    (with_(messages=[{"role": "user", "content": ""}]), "messages.0", "non-empty content"),
    (with_(messages=[{"role": "user", "content": "a", "name": "x"}]), "messages.0.name",
     "Extra inputs"),
    (with_(messages=[{"role": "user", "content": [{"type": "text", "text": ""}]}]),
     "messages.0.content.0", "must be non-empty"),
    (with_(messages=[{"role": "user", "content": [{"type": "document", "source": {}}]}]),
     "messages.0.content.0.type", "'document' content blocks are not supported"),
    (with_(messages=[{"role": "user", "content": [{"text": "x"}]}]),
     "messages.0.content.0.type", "Field required"),
    (with_(messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "x"}}]}]),
     "messages.0.content.0.source.media_type", "image/jpeg"),
    (with_(messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "file", "file_id": "file_1"}}]}]),
     "messages.0.content.0.source.type", "file sources"),
    (with_(messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": "ftp://x"}}]}]),
     "messages.0.content.0.source.url", "http"),
    (with_(messages=[{"role": "assistant", "content": [
        {"type": "image", "source": {"type": "url", "url": "https://x"}}]}]),
     "messages.0.content.0.type", "not allowed in assistant messages"),
    (with_(messages=[{"role": "user", "content": [
        {"type": "tool_use", "id": "t", "name": "f", "input": {}}]}]),
     "messages.0.content.0.type", "not allowed in user messages"),
    (with_(messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": [
        {"type": "tool_use", "id": "t", "name": "f", "input": "x"}]}]),
     "messages.1.content.0.input", "valid dictionary"),
    (with_(messages=[result("toolu_9")]), "messages.0.content.0", "unexpected `tool_use_id`"),
    (with_(tools=[TOOL], messages=[{"role": "user", "content": "hi"}, asst_tool(),
                                   {"role": "user", "content": "next"}]),
     "messages.1", "without `tool_result` blocks"),
    (with_(tools=[TOOL], messages=[{"role": "user", "content": "hi"}, asst_tool(),
                                   result(is_error="yes")]),
     "messages.2.content.0.is_error", "valid boolean"),
    (with_(tools=[TOOL], messages=[{"role": "user", "content": "hi"}, asst_tool(),
                                   result(content=[{"type": "document"}])]),
     "messages.2.content.0.content.0.type", "not supported"),
    (with_(system=5), "system", "text blocks"),
    (with_(system=[{"type": "image"}]), "system.0.type", "'text'"),
    (with_(tools={}), "tools", "valid list"),
    (with_(tools=[{"input_schema": {"type": "object"}}]), "tools.0.name", "Field required"),
    (with_(tools=[{"name": "bad name", "input_schema": {"type": "object"}}]), "tools.0.name",
     "pattern"),
    (with_(tools=[{"name": "f"}]), "tools.0.input_schema", "Field required"),
    (with_(tools=[{"name": "f", "input_schema": {"type": "array"}}]), "tools.0.input_schema.type",
     "'object'"),
    (with_(tools=[TOOL, TOOL]), "tools", "unique"),
    (with_(tools=[{"type": "web_search_20250305", "name": "web_search"}]), "tools.0.type",
     "server tools"),
    (with_(tool_choice={"type": "maybe"}), "tool_choice.type", "'auto'"),
    (with_(tool_choice={"type": "any"}), "tool_choice", "requires tools"),
    (with_(tools=[TOOL], tool_choice={"type": "tool"}), "tool_choice.name", "Field required"),
    (with_(tools=[TOOL], tool_choice={"type": "tool", "name": "g"}), "tool_choice.name",
     "not among the tools"),
    (with_(stop_sequences="x"), "stop_sequences", "valid list"),
    (with_(stop_sequences=[" "]), "stop_sequences.0", "non-whitespace"),
    (with_(temperature=1.5), "temperature", "between 0 and 1"),
    (with_(top_p="0.5"), "top_p", "valid number"),
    (with_(top_k=5), "top_k", "not supported"),
    (with_(metadata={"user_id": 5}), "metadata.user_id", "valid string"),
    (with_(metadata={"session": "x"}), "metadata.session", "Extra inputs"),
    (with_(stream="yes"), "stream", "valid boolean"),
    (with_(thinking={"type": "enabled", "budget_tokens": 1024}), "thinking", "not supported"),
    (with_(container="c"), "container", "not supported"),
    (with_(output_config={"effort": "high"}), "output_config.effort", "not supported"),
    (with_(output_config={"format": {"type": "text"}}), "output_config.format.type",
     "json_schema"),
    (with_(frequency_penalty=1), "frequency_penalty", "Extra inputs are not permitted"),
]


@pytest.mark.parametrize(("body", "param", "message"), INVALID)
def test_invalid_requests(body, param, message):
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    with pytest.raises(lg.InvalidRequest) as info:
        edge.parse_messages_request(raw)
    assert info.value.param == param
    assert message in info.value.message
    if param:
        assert info.value.message.startswith(f"{param}: ")
    assert info.value.status.http == 400


def test_accepted_and_dropped_fields():
    body = with_(
        thinking={"type": "disabled"},
        cache_control={"type": "ephemeral"},
        service_tier="auto",
        top_k=None,
        tool_choice={"type": "auto"},  # without tools: dropped, OpenAI would reject it
        output_config={"format": {"type": "json_schema", "schema": {"type": "object"}}},
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "hi",
                                          "cache_control": {"type": "ephemeral"}}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "The answer is"}]},
        ],
    )
    out = edge.to_openai_request(edge.parse_messages_request(orjson.dumps(body)))
    assert out == {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hi"},
                     {"role": "assistant", "content": "The answer is"}],
        "max_tokens": 16,
        "response_format": {"type": "json_schema", "json_schema": {
            "name": "output", "schema": {"type": "object"}, "strict": True}},
    }


def test_tool_choices():
    def choice(tc):
        body = with_(tools=[TOOL], tool_choice=tc)
        out = edge.to_openai_request(edge.parse_messages_request(orjson.dumps(body)))
        return out["tool_choice"], out.get("parallel_tool_calls")

    assert choice({"type": "auto"}) == ("auto", None)
    assert choice({"type": "any", "disable_parallel_tool_use": True}) == ("required", False)
    assert choice({"type": "tool", "name": "f"}) == (
        {"type": "function", "function": {"name": "f"}}, None)
    assert choice({"type": "none", "disable_parallel_tool_use": True}) == ("none", None)


def test_empty_final_assistant_message_is_a_prefill():
    body = with_(messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}])
    out = edge.to_openai_request(edge.parse_messages_request(orjson.dumps(body)))
    assert out["messages"][-1] == {"role": "assistant", "content": ""}


# -- properties -------------------------------------------------------------------------------------

_json_scalars = (
    st.none() | st.booleans() | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10)
)
_json = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=8,
)
_texts = st.text(min_size=1, max_size=20)
_names = st.from_regex(r"[a-zA-Z0-9_-]{1,12}", fullmatch=True)
_ids = st.from_regex(r"toolu_[a-zA-Z0-9]{4,10}", fullmatch=True)
_images = st.builds(
    lambda kind, media, data: {"type": "image", "source": (
        {"type": "base64", "media_type": media, "data": data} if kind
        else {"type": "url", "url": f"https://example.com/{data}.png"})},
    st.booleans(), st.sampled_from(["image/jpeg", "image/png", "image/gif", "image/webp"]),
    st.from_regex(r"[A-Za-z0-9+/]{1,12}", fullmatch=True),
)


@st.composite
def anthropic_requests(draw) -> dict:
    names = draw(st.lists(_names, min_size=1, max_size=3, unique=True))
    tools = [{"name": n, "input_schema": {"type": "object"}} for n in names]
    messages: list[dict] = []
    pending: list[str] = []
    used_ids: set[str] = set()
    for turn in range(draw(st.integers(1, 6))):
        if turn % 2 == 0:  # user
            blocks: list[dict] = []
            for tid in draw(st.permutations(pending)):
                block: dict = {"type": "tool_result", "tool_use_id": tid}
                content = draw(st.none() | _texts | st.lists(
                    st.builds(lambda t: {"type": "text", "text": t}, _texts) | _images,
                    max_size=3))
                if content is not None:
                    block["content"] = content
                if draw(st.booleans()):
                    block["is_error"] = draw(st.booleans())
                blocks.append(block)
            blocks += draw(st.lists(
                st.builds(lambda t: {"type": "text", "text": t}, _texts) | _images,
                min_size=0 if blocks else 1, max_size=3))
            as_string = not pending and len(blocks) == 1 and blocks[0]["type"] == "text"
            content = blocks[0]["text"] if as_string and draw(st.booleans()) else blocks
            messages.append({"role": "user", "content": content})
            pending = []
        else:  # assistant
            texts = draw(st.lists(_texts, max_size=2))
            calls = []
            for _ in range(draw(st.integers(0 if texts else 1, 2))):
                tid = draw(_ids.filter(lambda i: i not in used_ids))
                used_ids.add(tid)
                calls.append({"type": "tool_use", "id": tid, "name": draw(st.sampled_from(names)),
                              "input": draw(st.dictionaries(st.text(max_size=6), _json,
                                                            max_size=3))})
            blocks = [{"type": "text", "text": t} for t in texts] + calls
            messages.append({"role": "assistant", "content": blocks})
            pending = [c["id"] for c in calls]
    req = {"model": MODEL, "max_tokens": draw(st.integers(1, 4096)), "messages": messages,
           "tools": tools}
    system = draw(st.none() | _texts | st.lists(
        st.builds(lambda t: {"type": "text", "text": t}, _texts), min_size=1, max_size=2))
    if system is not None:
        req["system"] = system
    if draw(st.booleans()):
        req["tool_choice"] = draw(st.sampled_from(
            [{"type": "auto"}, {"type": "any"}, {"type": "none"},
             {"type": "tool", "name": names[0], "disable_parallel_tool_use": True}]))
    if draw(st.booleans()):
        req["stream"] = True
    return req


def _anthropic_texts(req: dict) -> list[str]:
    system = req.get("system")
    out = [system] if isinstance(system, str) else [b["text"] for b in system or []]
    for m in req["messages"]:
        if isinstance(m["content"], str):
            out.append(m["content"])
            continue
        for b in m["content"]:  # tool results come first in every generated turn
            if b["type"] == "text":
                out.append(b["text"])
            elif b["type"] == "tool_result":
                c = b.get("content")
                out += [c] if isinstance(c, str) else [p["text"] for p in c or []
                                                       if p["type"] == "text"]
    return out


def _openai_texts(body: dict) -> str:
    out = []
    for m in body["messages"]:
        c = m.get("content")
        out += [c] if isinstance(c, str) else [p["text"] for p in c or [] if p["type"] == "text"]
    return "\x00".join(out)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(anthropic_requests())
def test_property_translation_preserves_the_conversation(req):
    req = edge.parse_messages_request(orjson.dumps(req))  # every generated request is valid
    body = edge.to_openai_request(req)
    orjson.dumps(body)  # serialisable as is

    # Text: every Anthropic text appears, in order.
    flat, pos = _openai_texts(body), 0
    for text in _anthropic_texts(req):
        found = flat.find(text, pos)
        assert found >= 0, f"lost text {text!r}"
        pos = found + len(text)

    # Tool calls: ids, names and arguments, in order.
    uses = [(b["id"], b["name"], b["input"]) for m in req["messages"]
            if m["role"] == "assistant" for b in m["content"] if b["type"] == "tool_use"]
    calls = [(c["id"], c["function"]["name"], orjson.loads(c["function"]["arguments"]))
             for m in body["messages"] for c in m.get("tool_calls", [])]
    assert calls == uses

    # Tool results: one tool message each, right after the calls they answer.
    results = [b for m in req["messages"] if isinstance(m["content"], list)
               for b in m["content"] if b["type"] == "tool_result"]
    tool_messages = [m for m in body["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == [r["tool_use_id"] for r in results]
    for r, m in zip(results, tool_messages, strict=True):
        c = r.get("content")
        text = c if isinstance(c, str) else "\n".join(p["text"] for p in c or []
                                                      if p["type"] == "text")
        if r.get("is_error"):
            assert m["content"] == (f"Error: {text}" if text else "Error")
        else:
            assert m["content"] == text
    open_ids: set[str] = set()
    for m in body["messages"]:
        if m["role"] == "tool":
            assert m["tool_call_id"] in open_ids
        else:
            open_ids = {c["id"] for c in m.get("tool_calls", [])}

    # Images: none lost.
    images = orjson.dumps(req).count(b'"type":"image"')
    assert orjson.dumps(body).count(b'"type":"image_url"') == images
    assert body["max_tokens"] == req["max_tokens"]
    assert body.get("stream", False) == req.get("stream", False)


_stream_steps = st.lists(
    st.one_of(
        st.tuples(st.just("text"), st.text(max_size=6)),
        st.tuples(st.just("tool"), st.booleans(), st.booleans(), st.text(max_size=6)),
        st.tuples(st.just("args"), st.integers(0, 3) | st.none(), st.text(max_size=6)),
        st.tuples(st.just("finish"),
                  st.sampled_from(["stop", "length", "tool_calls", "content_filter"])),
        st.tuples(st.just("usage"), st.integers(0, 10**6), st.integers(0, 10**6)),
        st.tuples(st.just("junk"), st.sampled_from([
            {}, {"choices": "x"}, {"choices": [None]}, {"choices": [{"index": 1, "delta": {
                "content": "other choice"}}]}, {"choices": [{"index": 0, "delta": "x"}]},
            {"choices": [{"index": 0, "delta": {"tool_calls": ["x"]}}]}])),
    ),
    max_size=25,
)


@settings(max_examples=400, deadline=None)
@given(_stream_steps)
def test_property_stream_is_always_well_formed(steps):
    t = edge.StreamTranslator(MODEL)
    out: list[bytes] = []
    tool_index = -1
    text_in, args_in = [], {}
    try:
        for step in steps:
            kind = step[0]
            if kind == "text":
                out += t.feed(chunk({"content": step[1]}))
                text_in.append(step[1])
            elif kind == "tool":
                tool_index += 1
                _, with_id, with_name, args = step
                out += t.feed(chunk(tool_delta(tool_index, f"call_{tool_index}" if with_id
                                               else None, "f" if with_name else None, args)))
                args_in.setdefault(tool_index, []).append(args)
            elif kind == "args":
                out += t.feed(chunk(tool_delta(step[1], arguments=step[2])))
            elif kind == "finish":
                out += t.feed(chunk({}, step[1]))
            elif kind == "usage":
                out += t.feed(chunk(None, usage={"prompt_tokens": step[1],
                                                 "completion_tokens": step[2]}))
            else:
                out += t.feed(step[1])
        out += t.finish()
    except lg.UpstreamError:
        events = parse_sse(b"".join(out))
        if events:
            check_well_formed(events, complete=False)
        return
    events = parse_sse(b"".join(out))
    check_well_formed(events)
    text_out = "".join(d["delta"]["text"] for n, d in events
                       if n == "content_block_delta" and d["delta"]["type"] == "text_delta")
    assert text_out == "".join(text_in)
    if not any(s[0] == "args" for s in steps):  # then each tool's arguments are exact
        tools_out = ["".join(d["delta"]["partial_json"] for n, d in events
                             if n == "content_block_delta" and d["index"] == s[1]["index"])
                     for s in events if s[0] == "content_block_start"
                     and s[1]["content_block"]["type"] == "tool_use"]
        assert tools_out == ["".join(a) for a in args_in.values()]


# -- the official SDK reads what we write -----------------------------------------------------------


@pytest.fixture
async def anthropic_edge_server():
    """A tiny /v1/messages endpoint replaying OpenAI fixtures through the edge.

    The reply is picked by the last user text: "stream_text", "stream_tool_use",
    "tool_use", "basic", "fail:<ErrorClass>" or "fail-mid-stream".
    """

    async def messages(request: web.Request) -> web.StreamResponse:
        try:
            req = edge.parse_messages_request(await request.read())
            key = req["messages"][-1]["content"]
            if key.startswith("fail:"):
                raise getattr(lg, key[5:])("injected failure")
        except lg.LockgateError as exc:
            return web.Response(status=edge.anthropic_error_status(exc),
                                body=edge.anthropic_error_body(exc, request_id="req_test"),
                                content_type="application/json")
        if not req.get("stream"):
            case = fixture(f"{key}.json")
            return web.Response(body=orjson.dumps(edge.to_anthropic_message(
                case["openai_reply"], req["model"])), content_type="application/json")
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        t = edge.StreamTranslator(req["model"])
        source = "stream_text" if key == "fail-mid-stream" else key
        for c in chunks(f"{source}.openai.jsonl"):
            for event in t.feed(c):
                await resp.write(event)
            if key == "fail-mid-stream":
                await resp.write(edge.error_event(lg.UpstreamUnavailable("provider went away")))
                return resp
        for event in t.finish():
            await resp.write(event)
        return resp

    app = web.Application()
    app.router.add_post("/v1/messages", messages)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    client = anthropic.AsyncAnthropic(
        base_url=f"http://127.0.0.1:{runner.addresses[0][1]}", api_key="sk-test", max_retries=0
    )
    yield client
    await client.close()
    await runner.cleanup()


def ask(text: str) -> dict:
    return {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": text}]}


async def test_sdk_reads_streamed_tool_use(anthropic_edge_server):
    async with anthropic_edge_server.messages.stream(**ask("stream_tool_use")) as stream:
        texts = [text async for text in stream.text_stream]
        message = await stream.get_final_message()
    assert "".join(texts) == "Okay, let's check the weather for San Francisco, CA:"
    assert message.id == "msg_014p7gG3wDgGV9EUtLvnow3U"
    assert message.stop_reason == "tool_use"
    assert [b.type for b in message.content] == ["text", "tool_use"]
    tool = message.content[1]
    assert (tool.id, tool.name) == ("toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather")
    assert tool.input == {"location": "San Francisco, CA", "unit": "fahrenheit"}
    assert (message.usage.input_tokens, message.usage.output_tokens) == (472, 89)


async def test_sdk_reads_streamed_text(anthropic_edge_server):
    async with anthropic_edge_server.messages.stream(**ask("stream_text")) as stream:
        message = await stream.get_final_message()
    assert message.content[0].text == "Hello!"
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 15


async def test_sdk_reads_unary_tool_use(anthropic_edge_server):
    message = await anthropic_edge_server.messages.create(**ask("tool_use"))
    assert isinstance(message, anthropic.types.Message)
    assert message.content[1].input == {"location": "San Francisco, CA"}
    assert message.usage.cache_read_input_tokens == 128
    assert message.model == MODEL


@pytest.mark.parametrize(
    ("error", "sdk_error"),
    [
        ("InvalidRequest", anthropic.BadRequestError),
        ("Unauthenticated", anthropic.AuthenticationError),
        ("RateLimited", anthropic.RateLimitError),
        ("ModelNotFound", anthropic.NotFoundError),
        ("UpstreamUnavailable", anthropic.OverloadedError),
        ("UpstreamTimeout", anthropic.InternalServerError),
    ],
)
async def test_sdk_reads_errors(anthropic_edge_server, error, sdk_error):
    with pytest.raises(sdk_error) as info:
        await anthropic_edge_server.messages.create(**ask(f"fail:{error}"))
    assert info.value.body["error"]["message"] == "injected failure"
    assert info.value.request_id == "req_test" or info.value.body["request_id"] == "req_test"


async def test_sdk_reads_validation_error(anthropic_edge_server):
    with pytest.raises(anthropic.BadRequestError) as info:
        await anthropic_edge_server.messages.create(
            model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "x"}],
            extra_body={"top_k": 3},
        )
    assert info.value.body["error"] == {"type": "invalid_request_error",
                                        "message": "top_k: not supported by this gateway"}


async def test_sdk_reads_mid_stream_error(anthropic_edge_server):
    with pytest.raises(anthropic.APIStatusError, match="provider went away"):
        async with anthropic_edge_server.messages.stream(**ask("fail-mid-stream")) as stream:
            await stream.get_final_message()


# -- round trips through the Anthropic provider adapter (the opposite direction) -----------------


def _summary(req: dict) -> dict:
    """What a conversation must keep through both translations."""
    uses, results, images = [], [], 0
    for m in req["messages"]:
        for b in m["content"] if isinstance(m["content"], list) else []:
            if b["type"] == "tool_use":
                uses.append((b["id"], b["name"], b["input"]))
            elif b["type"] == "tool_result":
                results.append(b["tool_use_id"])
                c = b.get("content")
                images += sum(p["type"] == "image" for p in c) if isinstance(c, list) else 0
            elif b["type"] == "image":
                images += 1
    return {"uses": uses, "results": results, "images": images,
            "max_tokens": req["max_tokens"],
            "tool_names": [t["name"] for t in req.get("tools", [])],
            "tool_choice": (req.get("tool_choice") or {}).get("type")}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(anthropic_requests())
def test_property_request_round_trip_through_the_anthropic_adapter(req):
    req = edge.validate_messages_request(req)
    back = edge.validate_messages_request(provider.to_anthropic(edge.to_openai_request(req),
                                                                MODEL))
    expected, got = _summary(req), _summary(back)
    if not req.get("tools") or expected["tool_choice"] is None:
        expected["tool_choice"] = got["tool_choice"]  # "auto" may be left implicit
    assert got == expected
    # Text: every text of the original, in order (is_error results gain "Error: ").
    flat = "\x00".join(_anthropic_texts(back))
    pos = 0
    for text in _anthropic_texts(req):
        found = flat.find(text, pos)
        assert found >= 0, f"lost text {text!r}"
        pos = found + len(text)


_blocks = st.tuples(
    st.none() | _texts,
    st.lists(st.tuples(_ids, _names, st.dictionaries(st.text(max_size=6), _json, max_size=3)),
             max_size=3, unique_by=lambda t: t[0]),
)


@settings(max_examples=200, deadline=None)
@given(_blocks, st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6),
       st.booleans())
def test_property_reply_round_trip_through_the_anthropic_adapter(
    blocks, input_tokens, cached, output_tokens, cut
):
    text, tools = blocks
    content = ([{"type": "text", "text": text}] if text else []) + [
        {"type": "tool_use", "id": i, "name": n, "input": inp} for i, n, inp in tools]
    stop = "max_tokens" if cut else ("tool_use" if tools else "end_turn")
    message = {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant",
        "model": MODEL, "content": content, "stop_reason": stop, "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": cached, "output_tokens": output_tokens},
    }
    assert edge.to_anthropic_message(provider.to_completion(message), MODEL) == message


def _blocks_of(events: list[tuple[str, dict]]) -> list[tuple]:
    blocks: dict[int, list] = {}
    for name, d in events:
        if name == "content_block_start":
            b = d["content_block"]
            blocks[d["index"]] = [b["type"], b.get("id"), b.get("name"), ""]
        elif name == "content_block_delta":
            delta = d["delta"]
            blocks[d["index"]][3] += delta.get("text", delta.get("partial_json", ""))
    return [tuple(b) for _, b in sorted(blocks.items())]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(
    st.tuples(st.just("text"), st.lists(_texts, min_size=1, max_size=3)),
    st.tuples(st.just("tool"), st.lists(st.text(max_size=5), max_size=3)),
), max_size=5), st.integers(0, 1000), st.integers(0, 1000))
def test_property_stream_round_trip_through_the_anthropic_adapter(segments, prompt, completion):
    """OpenAI chunks -> our events -> the adapter's chunks -> our events: same blocks."""
    openai_chunks = [chunk({"role": "assistant", "content": ""})]
    for n, (kind, parts) in enumerate(segments):
        if kind == "text":
            openai_chunks += [chunk({"content": p}) for p in parts]
        else:
            openai_chunks.append(chunk(tool_delta(n, f"call_{n}", f"tool_{n}", "")))
            openai_chunks += [chunk(tool_delta(n, arguments=p)) for p in parts]
    has_tool = any(kind == "tool" for kind, _ in segments)
    openai_chunks.append(chunk({}, "tool_calls" if has_tool else "stop"))
    openai_chunks.append(chunk(None, usage={"prompt_tokens": prompt,
                                            "completion_tokens": completion}))
    first = translate(openai_chunks)

    adapter = provider.StreamTranslator("anthropic")
    again = [c for _, event in first for c in adapter.feed(event)]
    assert adapter.done
    second = translate(again)
    check_well_formed(second)
    assert _blocks_of(second) == _blocks_of(first)
    assert second[-2] == first[-2]  # stop reason and usage
