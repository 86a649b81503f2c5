"""The provider simulator over real HTTP, driven by the official openai SDK and
checked on the raw wire with aiohttp."""

from __future__ import annotations

import asyncio
import signal
import sys
import time

import aiohttp
import openai
import orjson
import pytest

from lockgate.sim import replies
from lockgate.sim import server as sim_server
from lockgate.sim.config import SimConfig
from lockgate.sim.server import serve
from tests.conftest import free_port

MESSAGES = [{"role": "user", "content": "Hello simulator, how are you?"}]


@pytest.fixture
async def start_sim():
    """start_sim(config) -> base URL (http://127.0.0.1:<port>) of a running simulator."""
    runners = []

    async def start(config: SimConfig | None = None) -> str:
        runner, port = await serve("127.0.0.1", 0, config or SimConfig())
        runners.append(runner)
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def base(start_sim):
    return await start_sim()


@pytest.fixture
async def client(base):
    c = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0)
    yield c
    await c.close()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


def expected_usage(messages, words=12):
    prompt = replies.prompt_tokens(messages)
    completion = replies.complete(replies.messages_key(messages), words).tokens
    return prompt, completion


# -- chat through the SDK --------------------------------------------------------


async def test_unary_chat(client):
    r = await client.chat.completions.create(model="sim-small", messages=MESSAGES)
    assert r.object == "chat.completion"
    assert r.id.startswith("chatcmpl-")
    assert r.model == "sim-small"
    assert r.system_fingerprint == "fp_lockgate_sim"
    assert isinstance(r.created, int) and abs(r.created - time.time()) < 60
    assert len(r.choices) == 1
    choice = r.choices[0]
    assert (choice.index, choice.finish_reason, choice.message.role) == (0, "stop", "assistant")
    assert choice.message.content == replies.reply_text(MESSAGES, 12)
    prompt, completion = expected_usage(MESSAGES)
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (prompt, completion)
    assert r.usage.total_tokens == prompt + completion
    assert r.usage.prompt_tokens_details.cached_tokens == 0
    assert r.usage.completion_tokens_details.reasoning_tokens == 0


async def test_replies_are_deterministic_and_ids_unique(client):
    a = await client.chat.completions.create(model="any-model-id", messages=MESSAGES)
    b = await client.chat.completions.create(model="other", messages=MESSAGES)
    c = await client.chat.completions.create(
        model="other", messages=[{"role": "user", "content": "different"}]
    )
    assert a.choices[0].message.content == b.choices[0].message.content
    assert a.choices[0].message.content != c.choices[0].message.content
    assert a.id != b.id


async def test_stream_matches_unary(client):
    unary = await client.chat.completions.create(model="m", messages=MESSAGES)
    stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    chunks = [chunk async for chunk in stream]  # the SDK stops at data: [DONE]
    assert all(c.object == "chat.completion.chunk" and c.usage is None for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    content = [c.choices[0].delta.content for c in chunks[1:-1]]
    assert len(content) == 12 + 1  # one chunk per word, one for the period
    assert "".join(content) == unary.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].choices[0].delta.content is None
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])


async def test_stream_include_usage(client):
    stream = await client.chat.completions.create(
        model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    last = chunks[-1]
    assert last.choices == []
    prompt, completion = expected_usage(MESSAGES)
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (prompt, completion)
    assert last.usage.total_tokens == prompt + completion
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-2].choices[0].finish_reason == "stop"


async def test_max_tokens_gives_finish_reason_length(client):
    for param in ("max_tokens", "max_completion_tokens"):
        r = await client.chat.completions.create(model="m", messages=MESSAGES, **{param: 4})
        assert r.choices[0].finish_reason == "length"
        assert 0 < r.usage.completion_tokens <= 4
        full = replies.reply_text(MESSAGES, 12)
        assert full.startswith(r.choices[0].message.content)

    stream = await client.chat.completions.create(
        model="m",
        messages=MESSAGES,
        max_tokens=4,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-2].choices[0].finish_reason == "length"
    assert 0 < chunks[-1].usage.completion_tokens <= 4


async def test_n_choices_and_stop(client):
    r = await client.chat.completions.create(model="m", messages=MESSAGES, n=3)
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert r.usage.completion_tokens == sum(
        replies.count_tokens(c.message.content) for c in r.choices
    )
    stream = await client.chat.completions.create(model="m", messages=MESSAGES, n=2, stream=True)
    texts = {0: "", 1: ""}
    async for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
    assert [texts[0], texts[1]] == [r.choices[0].message.content, r.choices[1].message.content]

    full = r.choices[0].message.content
    stop = full.split(" ")[2]
    cut = await client.chat.completions.create(model="m", messages=MESSAGES, stop=[stop])
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].message.content == full[: full.index(stop)]


async def test_reply_words_header_and_chunk_count_header(client):
    r = await client.chat.completions.create(
        model="m", messages=MESSAGES, extra_headers={"x-sim-reply-words": "3"}
    )
    assert len(r.choices[0].message.content.rstrip(".").split(" ")) == 3
    stream = await client.chat.completions.create(
        model="m", messages=MESSAGES, stream=True, extra_headers={"x-sim-chunk-count": "2"}
    )
    chunks = [chunk async for chunk in stream]
    assert len(chunks) == 1 + 2 + 1


async def test_models_and_embeddings(client):
    models = await client.models.list()
    assert [m.id for m in models.data] == ["sim-small", "sim-large"]
    assert (await client.models.retrieve("sim-large")).id == "sim-large"
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("nope")

    e = await client.embeddings.create(model="emb", input=["alpha", "beta"])  # base64 on the wire
    assert [d.index for d in e.data] == [0, 1]
    assert all(len(d.embedding) == 8 for d in e.data)
    assert e.usage.prompt_tokens == e.usage.total_tokens == 2
    again = await client.embeddings.create(
        model="emb", input="alpha", encoding_format="float", dimensions=16
    )
    assert len(again.data[0].embedding) == 16
    assert again.data[0].embedding == replies.embedding(b"alpha", 16)
    same = await client.embeddings.create(model="emb", input="alpha", encoding_format="float")
    assert same.data[0].embedding == pytest.approx(e.data[0].embedding, rel=1e-6)


# -- faults ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "exc"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (404, openai.NotFoundError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
async def test_status_header_raises_the_matching_sdk_error(client, status, exc):
    with pytest.raises(exc) as info:
        await client.chat.completions.create(
            model="m", messages=MESSAGES, extra_headers={"x-sim-status": str(status)}
        )
    assert info.value.status_code == status
    assert isinstance(info.value.body, dict) and info.value.body["message"]
    assert (info.value.response.headers.get("retry-after") == "1") == (status == 429)


async def test_status_header_on_a_stream(client):
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(
            model="m", messages=MESSAGES, stream=True, extra_headers={"x-sim-status": "429"}
        )


async def test_dropped_stream(client):
    stream = await client.chat.completions.create(
        model="m", messages=MESSAGES, stream=True, extra_headers={"x-sim-drop-after-chunks": "2"}
    )
    chunks = []
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            chunks.append(chunk)
    assert [c.choices[0].delta.content for c in chunks[1:]] == replies.reply_pieces(
        replies.messages_key(MESSAGES), 12
    )[:2]
    assert all(c.choices[0].finish_reason is None for c in chunks)


async def test_timing_headers(client):
    t0 = time.perf_counter()
    await client.chat.completions.create(
        model="m", messages=MESSAGES, extra_headers={"x-sim-latency-ms": "120"}
    )
    assert time.perf_counter() - t0 >= 0.11

    t0 = time.perf_counter()
    stream = await client.chat.completions.create(
        model="m",
        messages=MESSAGES,
        stream=True,
        extra_headers={
            "x-sim-ttft-ms": "60",
            "x-sim-chunk-interval-ms": "10",
            "x-sim-reply-words": "5",
        },
    )
    arrivals = []
    async for _ in stream:
        arrivals.append(time.perf_counter() - t0)
    assert arrivals[0] >= 0.055  # role chunk after ttft
    assert arrivals[-1] >= 0.055 + 5 * 0.009  # 6 content chunks, 5 pauses


async def test_api_key(start_sim):
    base = await start_sim(SimConfig(api_key="s3cret"))
    good = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="s3cret", max_retries=0)
    bad = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="wrong", max_retries=0)
    try:
        r = await good.chat.completions.create(model="m", messages=MESSAGES)
        assert r.choices[0].message.content
        with pytest.raises(openai.AuthenticationError) as info:
            await bad.chat.completions.create(model="m", messages=MESSAGES)
        assert info.value.code == "invalid_api_key"
        assert "wrong" not in info.value.message
        with pytest.raises(openai.AuthenticationError):
            await bad.models.list()
    finally:
        await good.close()
        await bad.close()
    async with aiohttp.ClientSession() as http, http.get(f"{base}/healthz") as resp:
        assert resp.status == 200  # health needs no key


async def test_error_rate_is_deterministic(start_sim):
    async def outcomes(base: str) -> list[int]:
        result = []
        async with aiohttp.ClientSession() as http:
            for _ in range(20):
                async with http.post(
                    f"{base}/v1/chat/completions", json={"model": "m", "messages": MESSAGES}
                ) as resp:
                    result.append(resp.status)
        return result

    config = SimConfig(error_rate=0.5, error_status=502, seed=7)
    first = await outcomes(await start_sim(config))
    second = await outcomes(await start_sim(config))
    assert first == second
    assert set(first) == {200, 502}
    always = await outcomes(await start_sim(SimConfig(error_rate=1.0)))
    assert set(always) == {503}


# -- raw wire ----------------------------------------------------------------------


async def test_raw_unary_wire(base, http):
    async with http.post(
        f"{base}/v1/chat/completions", json={"model": "m", "messages": MESSAGES}
    ) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("application/json")
        body = orjson.loads(await resp.read())
    assert list(body) == [
        "id",
        "object",
        "created",
        "model",
        "choices",
        "usage",
        "system_fingerprint",
    ]
    assert type(body["created"]) is int
    assert body["choices"][0] == {
        "index": 0,
        "message": {"role": "assistant", "content": replies.reply_text(MESSAGES), "refusal": None},
        "logprobs": None,
        "finish_reason": "stop",
    }
    prompt, completion = expected_usage(MESSAGES)
    assert body["usage"] == {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


@pytest.mark.parametrize("interval", ["0", "1"])
async def test_raw_stream_wire(base, http, interval):
    payload = {
        "model": "m",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with http.post(
        f"{base}/v1/chat/completions", json=payload, headers={"x-sim-chunk-interval-ms": interval}
    ) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        raw = await resp.read()
    assert raw.endswith(b"\n\ndata: [DONE]\n\n")
    events = raw.split(b"\n\n")
    assert events[-1] == b"" and events[-2] == b"data: [DONE]"
    chunks = []
    for event in events[:-2]:
        assert event.startswith(b"data: {") and b"\n" not in event
        chunks.append(orjson.loads(event[len(b"data: ") :]))
    role, *content, finish, usage = chunks
    for chunk in chunks:
        assert list(chunk) == [
            "id",
            "object",
            "created",
            "model",
            "system_fingerprint",
            "choices",
            "usage",
        ]
        assert type(chunk["created"]) is int and chunk["object"] == "chat.completion.chunk"
    assert role["choices"] == [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "logprobs": None,
            "finish_reason": None,
        }
    ]
    assert all(c["usage"] is None for c in chunks[:-1])
    assert all(c["choices"][0]["index"] == 0 for c in content)
    assert all(list(c["choices"][0]["delta"]) == ["content"] for c in content)
    assert finish["choices"] == [
        {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    ]
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] > 0


async def test_raw_stream_without_usage_has_no_usage_key(base, http):
    payload = {"model": "m", "messages": MESSAGES, "stream": True}
    async with http.post(f"{base}/v1/chat/completions", json=payload) as resp:
        raw = await resp.read()
    events = raw.split(b"\n\n")[:-2]
    assert all(b'"usage"' not in e for e in events)
    assert orjson.loads(events[-1][6:])["choices"][0]["finish_reason"] == "stop"


async def test_raw_dropped_stream_has_no_done(base, http):
    payload = {"model": "m", "messages": MESSAGES, "stream": True}
    async with http.post(
        f"{base}/v1/chat/completions", json=payload, headers={"x-sim-drop-after-chunks": "1"}
    ) as resp:
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', "model"),
        (b'{"model": "m"}', "messages"),
        (b'{"model": "m", "messages": []}', "messages"),
        (b'{"model": "m", "messages": ["hi"]}', "messages[0]"),
        (b'{"model": "m", "messages": [{"role": "robot", "content": "x"}]}', "messages[0].role"),
        (
            b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}',
            "max_tokens",
        ),
        (b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "n": "2"}', "n"),
        (
            b'{"model": "m", "messages": [{"role": "user", "content": "x"}], '
            b'"stream_options": {"include_usage": true}}',
            "stream_options",
        ),
    ],
)
async def test_validation_errors_are_openai_shaped(base, http, body, param):
    async with http.post(
        f"{base}/v1/chat/completions", data=body, headers={"Content-Type": "application/json"}
    ) as resp:
        assert resp.status == 400
        error = orjson.loads(await resp.read())["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert error["message"]


async def test_bad_sim_header_is_a_400(base, http):
    async with http.post(
        f"{base}/v1/chat/completions",
        json={"model": "m", "messages": MESSAGES},
        headers={"x-sim-latency-ms": "soon"},
    ) as resp:
        assert resp.status == 400
        assert orjson.loads(await resp.read())["error"]["param"] == "x-sim-latency-ms"


async def test_http_errors_are_openai_shaped(start_sim, http):
    base = await start_sim(SimConfig(max_body_bytes=2048))
    async with http.post(f"{base}/v1/nowhere", json={}) as resp:
        assert resp.status == 404
        assert orjson.loads(await resp.read())["error"]["type"] == "invalid_request_error"
    async with http.get(f"{base}/v1/chat/completions") as resp:
        assert resp.status == 405
        assert "error" in orjson.loads(await resp.read())
    big = {"model": "m", "messages": [{"role": "user", "content": "x" * 4096}]}
    async with http.post(f"{base}/v1/chat/completions", json=big) as resp:
        assert resp.status == 413
        assert "error" in orjson.loads(await resp.read())
    async with http.get(f"{base}/healthz") as resp:
        assert resp.status == 200 and await resp.text() == "ok"


async def test_unexpected_errors_are_a_500_without_trace(base, http, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(sim_server.replies, "prompt_tokens", boom)
    async with http.post(
        f"{base}/v1/chat/completions", json={"model": "m", "messages": MESSAGES}
    ) as resp:
        assert resp.status == 500
        raw = await resp.read()
    error = orjson.loads(raw)["error"]
    assert error["type"] == "server_error"
    assert b"secret internals" not in raw and b"Traceback" not in raw


# -- lifecycle ---------------------------------------------------------------------


async def test_cleanup_ends_delayed_requests_at_once():
    runner, port = await serve("127.0.0.1", 0, SimConfig())
    async with aiohttp.ClientSession() as http:
        slow = asyncio.create_task(
            http.post(
                f"http://127.0.0.1:{port}/v1/chat/completions",
                json={"model": "m", "messages": MESSAGES},
                headers={"x-sim-latency-ms": "30000"},
            )
        )
        await asyncio.sleep(0.1)
        t0 = time.perf_counter()
        await runner.cleanup()
        assert time.perf_counter() - t0 < 1.0
        resp = await slow
        assert resp.status == 503
        assert orjson.loads(await resp.read())["error"]["type"] == "server_error"


async def test_run_stops_cleanly_on_sigterm():
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        f"from lockgate.sim.server import run; run('127.0.0.1', {port})",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            else:
                pytest.fail("the simulator did not start")
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), 5)
        assert proc.returncode == 0, stderr.decode()
        assert b"Traceback" not in stderr
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_fail_first_fails_a_scenarios_first_requests_then_recovers(base, http):
    async def status(scenario, **extra):
        headers = {"x-sim-fail-first": "2", "x-sim-scenario": scenario, **extra}
        async with http.post(f"{base}/v1/chat/completions", headers=headers,
                             json={"model": "m", "messages": MESSAGES}) as resp:
            return resp.status

    assert [await status("a") for _ in range(3)] == [503, 503, 200]
    assert await status("b", **{"x-sim-status": "429"}) == 429  # its own count
    assert await status("a") == 200
    async with http.post(f"{base}/v1/chat/completions", headers={"x-sim-fail-first": "1"},
                         json={"model": "m", "messages": MESSAGES}) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["param"] == "x-sim-scenario"
