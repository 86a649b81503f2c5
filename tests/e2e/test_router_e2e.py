"""The router through the real stack (Envoy and every service as processes):
every provider dialect, the Anthropic-compatible /v1/messages with the official
`anthropic` SDK, tools and JSON schema with the `openai` SDK, embeddings,
faults injected in the simulator through forwarded x-sim-* headers (retries,
Retry-After, failover, circuit breaker, in-band stream errors, billing), the
response cache, and the routing-table CLI."""

from __future__ import annotations

import json
import time
import uuid

import anthropic
import httpx
import openai
import pytest

from tests.e2e.test_chat_e2e import MESSAGES, client, usage_entry

pytestmark = pytest.mark.e2e

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
            "required": ["city", "unit"],
        },
    },
}
ANTHROPIC_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": WEATHER_TOOL["function"]["parameters"],
}


def claude(stack, key: str | None = None) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=stack.origin, api_key=key or stack.admin_key,
                               max_retries=0)


def scenario() -> str:
    return uuid.uuid4().hex


# -- every provider dialect through the OpenAI API ---------------------------------------


@pytest.mark.parametrize("alias", ["demo", "claude", "gemini", "azure", "mistral"])
def test_every_provider_dialect_behind_the_openai_api(stack, alias):
    reply = client(stack).chat.completions.create(model=alias, messages=MESSAGES)
    assert reply.model == alias and reply.choices[0].message.content
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
    chunks = list(client(stack).chat.completions.create(
        model=alias, messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == reply.choices[0].message.content
    if alias == "mistral":
        # Mistral reports stream usage on its own; the simulator's OpenAI dialect
        # sends it only when asked, which a Mistral request cannot: the router
        # estimates it with its tokenizer instead.
        assert chunks[-1].usage.completion_tokens > 0
    else:
        assert chunks[-1].usage.completion_tokens == reply.usage.completion_tokens


@pytest.mark.parametrize("alias", ["demo", "claude", "gemini"])
def test_tool_calls_round_trip_with_the_openai_sdk(stack, alias):
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    reply = client(stack).chat.completions.create(
        model=alias, messages=messages, tools=[WEATHER_TOOL], tool_choice="required")
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "sim", "unit": "c"}
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": '{"temp": 21}'}]
    final = client(stack).chat.completions.create(model=alias, messages=messages,
                                                  tools=[WEATHER_TOOL])
    assert final.choices[0].finish_reason == "stop" and final.choices[0].message.content

    with client(stack).chat.completions.stream(
        model=alias, messages=messages[:1], tools=[WEATHER_TOOL], tool_choice="required"
    ) as stream:
        streamed = stream.get_final_completion()
    assert streamed.choices[0].message.tool_calls[0].function.arguments == call.function.arguments


def test_json_schema_response_format_reaches_the_provider(stack):
    schema = {"type": "object", "properties": {"answer": {"type": "string"}},
              "required": ["answer"], "additionalProperties": False}
    reply = client(stack).chat.completions.create(
        model="demo", messages=MESSAGES,
        response_format={"type": "json_schema",
                         "json_schema": {"name": "a", "schema": schema, "strict": True}})
    assert reply.choices[0].message.content
    with pytest.raises(openai.BadRequestError) as err:  # Anthropic cannot honour it
        client(stack).chat.completions.create(model="claude", messages=MESSAGES,
                                              response_format={"type": "json_object"})
    assert err.value.body["param"] == "response_format"


def test_embeddings(stack):
    reply = client(stack).embeddings.create(model="demo-embed", input=["one", "two"])
    assert [d.index for d in reply.data] == [0, 1] and reply.usage.prompt_tokens > 0
    with pytest.raises(openai.BadRequestError):
        client(stack).embeddings.create(model="demo", input="x")


def test_models_lists_only_the_aliases_a_key_may_use(stack):
    listed = {m.id for m in client(stack).models.list()}
    assert {"demo", "claude", "demo-embed"} <= listed
    key = stack.create_key("two-models", models=["demo", "claude"])
    assert {m.id for m in client(stack, key=key).models.list()} == {"demo", "claude"}


# -- /v1/messages with the official anthropic SDK --------------------------------------


@pytest.mark.parametrize("alias", ["claude", "demo", "gemini"])
def test_anthropic_sdk_unary_and_streaming_routed_to_any_provider(stack, alias):
    message = claude(stack).messages.create(
        model=alias, max_tokens=200, system="Be brief.",
        messages=[{"role": "user", "content": "Say hello."}])
    assert message.type == "message" and message.model == alias
    assert message.stop_reason == "end_turn" and message.content[0].type == "text"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    with claude(stack).messages.stream(
        model=alias, max_tokens=200, system="Be brief.",
        messages=[{"role": "user", "content": "Say hello."}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == message.content[0].text
    assert final.usage.output_tokens == message.usage.output_tokens


@pytest.mark.parametrize("alias", ["claude", "demo"])
def test_anthropic_sdk_tool_use(stack, alias):
    question = {"role": "user", "content": "Weather in Paris?"}
    message = claude(stack).messages.create(
        model=alias, max_tokens=200, tools=[ANTHROPIC_TOOL],
        tool_choice={"type": "any"}, messages=[question])
    assert message.stop_reason == "tool_use"
    use = next(b for b in message.content if b.type == "tool_use")
    assert use.name == "get_weather" and use.input == {"city": "sim", "unit": "c"}
    follow_up = [question, {"role": "assistant", "content": message.content},
                 {"role": "user", "content": [
                     {"type": "tool_result", "tool_use_id": use.id, "content": "21 C"}]}]
    final = claude(stack).messages.create(model=alias, max_tokens=200, tools=[ANTHROPIC_TOOL],
                                          messages=follow_up)
    assert final.stop_reason == "end_turn" and final.content[0].type == "text"
    with claude(stack).messages.stream(
        model=alias, max_tokens=200, tools=[ANTHROPIC_TOOL], tool_choice={"type": "any"},
        messages=[question],
    ) as stream:
        streamed = stream.get_final_message()
    streamed_use = next(b for b in streamed.content if b.type == "tool_use")
    assert streamed_use.input == use.input


def test_anthropic_errors_have_anthropic_shapes(stack):
    with pytest.raises(anthropic.AuthenticationError) as auth:
        claude(stack, key="lg_nope_nope").messages.create(
            model="claude", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert auth.value.body["type"] == "error"
    with pytest.raises(anthropic.NotFoundError) as missing:
        claude(stack).messages.create(model="no-such-alias", max_tokens=10,
                                      messages=[{"role": "user", "content": "x"}])
    assert missing.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError) as bad:
        claude(stack).messages.create(model="claude", max_tokens=0,
                                      messages=[{"role": "user", "content": "x"}])
    assert bad.value.body["error"]["type"] == "invalid_request_error"


def test_anthropic_529_overloaded_fails_over_then_surfaces_when_alone(stack):
    faults = {"x-sim-status": "529"}
    message = claude(stack).messages.create(
        model="claude-faulty", max_tokens=50, extra_headers=faults,
        messages=[{"role": "user", "content": "x"}])
    assert message.content[0].text  # failed over to the OpenAI simulator
    with pytest.raises(anthropic.InternalServerError) as err:
        claude(stack).messages.create(
            model="claude", max_tokens=50, extra_headers=faults,
            messages=[{"role": "user", "content": "x"}])
    assert err.value.status_code == 529
    assert err.value.body["error"]["type"] == "overloaded_error"


# -- faults: retries, Retry-After, failover, breaker, in-band errors -------------------------


def test_a_retry_on_the_same_deployment_recovers_from_transient_failures(stack):
    faults = {"x-sim-fail-first": "2", "x-sim-scenario": scenario(), "x-sim-status": "503"}
    raw = client(stack).chat.completions.with_raw_response.create(
        model="faulty", messages=MESSAGES, extra_headers=faults)
    assert raw.http_response.status_code == 200


def test_rate_limits_come_back_with_retry_after_when_no_deployment_is_left(stack):
    with pytest.raises(openai.RateLimitError) as err:
        client(stack).chat.completions.create(
            model="faulty", messages=MESSAGES, extra_headers={"x-sim-status": "429"})
    assert err.value.response.headers["retry-after"] == "1"
    assert err.value.code == "upstream_rate_limited"


@pytest.mark.parametrize(("stream", "fault"), [(False, "x-sim-latency-ms"),
                                               (True, "x-sim-ttft-ms")])
def test_a_deployment_that_times_out_fails_over(stack, stream, fault):
    started = time.monotonic()
    reply = client(stack).chat.completions.create(
        model="slow-failover", messages=MESSAGES, stream=stream, extra_headers={fault: "3000"})
    if stream:
        assert "".join(c.choices[0].delta.content or "" for c in reply if c.choices)
    else:
        assert reply.choices[0].message.content
    assert time.monotonic() - started < 2.5  # the 3 s answer was not waited for


def test_the_breaker_opens_on_a_failing_deployment_and_closes_after_a_good_probe(stack):
    def routes() -> dict:
        out = stack.cli("routes", "--json")
        assert out.returncode == 0, out.stderr
        return {d["name"]: d for d in json.loads(out.stdout)["deployments"]}

    for _ in range(5):  # each call fails on faulty-small and fails over
        reply = client(stack).chat.completions.create(
            model="resilient", messages=MESSAGES, extra_headers={"x-sim-status": "500"})
        assert reply.choices[0].message.content
    faulty = routes()["faulty-small"]
    assert faulty["breaker_state"] == "open" and int(faulty["failures"]) == 5
    client(stack).chat.completions.create(model="resilient", messages=MESSAGES)
    assert int(routes()["faulty-small"]["calls"]) == 5  # skipped while open
    time.sleep(3.1)
    client(stack).chat.completions.create(model="resilient", messages=MESSAGES)  # the probe
    assert routes()["faulty-small"]["breaker_state"] == "closed"


async def test_a_stream_cut_after_the_first_byte_ends_in_band_and_is_billed(stack):
    async with httpx.AsyncClient(base_url=stack.origin, timeout=30) as http:
        resp = await http.post(
            "/v1/chat/completions",
            headers={"authorization": f"Bearer {stack.admin_key}",
                     "x-sim-drop-after-chunks": "3", "x-sim-chunk-interval-ms": "20"},
            json={"model": "faulty", "messages": MESSAGES, "stream": True})
    assert resp.status_code == 200
    events = [e for e in resp.text.split("\n\n") if e]
    assert "data: [DONE]" not in events
    assert json.loads(events[-1][6:])["error"]["code"] == "upstream_error"
    delivered = [json.loads(e[6:]) for e in events[:-1]]
    assert any(c["choices"] and c["choices"][0]["delta"].get("content") for c in delivered)
    entry = await usage_entry(stack, resp.headers["x-request-id"])
    assert entry.status == "error" and entry.streamed
    assert entry.usage.output_tokens > 0 and entry.usage.estimated


def test_anthropic_stream_cut_ends_with_an_error_event(stack):
    with httpx.Client(base_url=stack.origin, timeout=30) as http:
        resp = http.post(
            "/v1/messages",
            headers={"x-api-key": stack.admin_key, "anthropic-version": "2023-06-01",
                     "x-sim-drop-after-chunks": "2", "x-sim-chunk-interval-ms": "20"},
            json={"model": "claude", "max_tokens": 100, "stream": True,
                  "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status_code == 200
    assert resp.text.startswith("event: message_start")
    assert "event: error" in resp.text and "message_stop" not in resp.text


# -- cache and admin view -----------------------------------------------------------------


def test_response_cache_hit_is_marked(stack):
    messages = [{"role": "user", "content": f"cache me {scenario()}"}]
    first = client(stack).chat.completions.with_raw_response.create(
        model="cached", messages=messages)
    second = client(stack).chat.completions.with_raw_response.create(
        model="cached", messages=messages)
    assert first.headers["x-lockgate-cache"] == "miss"
    assert second.headers["x-lockgate-cache"] == "hit"
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    bypass = client(stack).chat.completions.with_raw_response.create(
        model="cached", messages=messages, extra_headers={"cache-control": "no-cache"})
    assert bypass.headers["x-lockgate-cache"] == "bypass"


def test_routes_cli_shows_the_table(stack):
    out = stack.cli("routes")
    assert out.returncode == 0, out.stderr
    assert "ALIAS" in out.stdout and "resilient" in out.stdout and "BREAKER" in out.stdout
    denied = stack.cli("routes", "--key", stack.create_key("dev-routes"))
    assert denied.returncode != 0 and "Traceback" not in denied.stderr
