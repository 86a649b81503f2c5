"""UpstreamHTTP against a real local server: status mapping, passed-through
codes, Retry-After, SSE parsing, forwarded headers, bounds, and what a stream
does with its connection."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from lockgate.errors import InvalidRequest, RateLimited, UpstreamError, UpstreamTimeout
from lockgate.upstream_client import UpstreamClient
from services.router.config import TimeoutsConfig
from services.router.providers.http import CLIENT_HEADERS, UpstreamHTTP, retry_after_seconds
from services.router.providers.openai import is_done

TIMEOUTS = TimeoutsConfig(connect=1, first_token=1, total=2)


@pytest.fixture
async def server():
    seen: list[dict] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(dict(request.headers))
        kind = request.match_info["kind"]
        if kind == "context":
            return web.json_response({"error": {"message": "This model's maximum context length "
                                                "is 8192 tokens", "code": "context_length_exceeded",
                                                "type": "invalid_request_error"}}, status=400)
        if kind == "limited":
            return web.json_response({"error": {"message": "slow down", "code": "rate_limit_exceeded"}},
                                     status=429, headers={"retry-after-ms": "1500"})
        if kind == "big":
            return web.Response(body=b"x" * 5000, content_type="application/json")
        if kind == "slow":
            resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await resp.prepare(request)
            await resp.write(b": keep-alive\n\n")
            await asyncio.sleep(3)
            return resp
        if kind == "limited-stream":
            return web.json_response({"error": {"message": "slow down"}}, status=429,
                                     headers={"retry-after": "7"})
        if kind == "gzipped":
            return web.Response(body=b"\x1f\x8b", headers={"content-type": "text/event-stream",
                                                             "content-encoding": "gzip"})
        if kind == "cut":  # two events, then the connection drops midway through the third
            resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await resp.prepare(request)
            await resp.write(b"data: 1\n\ndata: 2\n\ndata: 3")
            request.transport.close()
            return resp
        if kind == "done-then-end":  # the last event, then the body's end 50 ms later
            resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await resp.prepare(request)
            await resp.write(b"data: {}\n\ndata: [DONE]\n\n")
            await asyncio.sleep(0.05)
            return resp
        if kind == "trickle":  # an event every 0.1 s, for 3 s
            resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await resp.prepare(request)
            for i in range(30):
                await resp.write(b"data: %d\n\n" % i)
                await asyncio.sleep(0.1)
            return resp
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b"event: a\ndata: one\ndata: two\n\n: comment\n\ndata: three\n\n")
        return resp

    app = web.Application()
    app.router.add_post("/{kind}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


@pytest.fixture
async def client():
    client = UpstreamClient(max_connections=8)
    yield client
    client.close()


async def test_context_length_code_passes_through(server, client):
    base, _ = server
    with pytest.raises(InvalidRequest) as err:
        await UpstreamHTTP("p", upstream=client).post_json(f"{base}/context", {}, {},
                                                                 TIMEOUTS)
    assert err.value.code == "context_length_exceeded"


async def test_rate_limit_keeps_retry_after_and_not_the_providers_code(server, client):
    base, _ = server
    with pytest.raises(RateLimited) as err:
        await UpstreamHTTP("p", upstream=client).post_json(f"{base}/limited", {}, {},
                                                                 TIMEOUTS)
    assert err.value.retry_after == 1.5 and err.value.code == "upstream_rate_limited"


async def test_oversized_responses_are_refused(server, client):
    base, _ = server
    with pytest.raises(UpstreamError, match="oversized"):
        await UpstreamHTTP("p", max_response_bytes=1024, upstream=client).post_json(
            f"{base}/big", {}, {}, TIMEOUTS)


async def test_a_unary_call_forwards_only_allowed_client_headers(server, client):
    base, seen = server
    CLIENT_HEADERS.set((("x-sim-status", "200"), ("x-other", "no"), ("authorization", "Bearer x")))
    http = UpstreamHTTP("p", forward_headers=["x-sim-*"], upstream=client)
    with pytest.raises(UpstreamError):  # the route answers an event stream, not JSON
        await http.post_json(f"{base}/sse", {"a": 1}, {"authorization": "Bearer mine"}, TIMEOUTS)
    assert seen[-1]["x-sim-status"] == "200" and "x-other" not in seen[-1]
    assert seen[-1]["Authorization"] == "Bearer mine"


async def test_sse_events_join_data_lines_and_skip_comments(server, client):
    base, _ = server
    events = [e async for e in UpstreamHTTP("p", upstream=client).post_sse(f"{base}/sse", {}, {}, TIMEOUTS)]
    assert [(e.event, e.data) for e in events] == [("a", b"one\ntwo"), ("", b"three")]


async def test_first_token_timeout_bounds_a_silent_stream(server, client):
    base, _ = server
    with pytest.raises(UpstreamTimeout):
        async for _ in UpstreamHTTP("p", upstream=client).post_sse(
            f"{base}/slow", {}, {}, TimeoutsConfig(connect=1, first_token=0.3, total=2)
        ):
            pass


async def test_total_bounds_a_stream_that_keeps_sending(server, client):
    base, _ = server
    received = []
    with pytest.raises(UpstreamTimeout):
        async for event in UpstreamHTTP("p", upstream=client).post_sse(
            f"{base}/trickle", {}, {}, TimeoutsConfig(connect=1, first_token=0.3, total=0.55)
        ):
            received.append(event.data)
    # The first event met first_token; the deadline then moved to `total`.
    assert 3 <= len(received) <= 7


async def test_a_finished_stream_leaves_no_timer_behind(server, client):
    base, _ = server
    [_ async for _ in UpstreamHTTP("p", upstream=client).post_sse(f"{base}/sse", {}, {}, TIMEOUTS)]
    timers = asyncio.get_running_loop()._scheduled  # noqa: SLF001 - the loop's timer heap
    assert not [t for t in timers if not t.cancelled() and "expire" in repr(t)]
    assert len(client.idle_connections()) == 1  # read to its end: kept for the next call


async def test_only_allowed_client_headers_are_forwarded(server, client):
    base, seen = server
    CLIENT_HEADERS.set((("x-sim-status", "200"), ("x-other", "no"), ("authorization", "Bearer x")))
    http = UpstreamHTTP("p", forward_headers=["x-sim-*"], upstream=client)
    [_ async for _ in http.post_sse(f"{base}/sse", {}, {"authorization": "Bearer mine"}, TIMEOUTS)]
    assert seen[-1]["x-sim-status"] == "200" and "x-other" not in seen[-1]
    assert seen[-1]["Authorization"] == "Bearer mine"


async def test_a_stream_answered_with_an_error_status_maps_like_a_unary_call(server, client):
    base, _ = server
    with pytest.raises(RateLimited, match="slow down") as err:
        [_ async for _ in UpstreamHTTP("p", upstream=client).post_sse(
            f"{base}/limited-stream", {}, {}, TIMEOUTS)]
    assert err.value.retry_after == 7.0


async def test_a_stream_cut_midway_is_an_upstream_error_after_the_whole_events(server, client):
    base, _ = server
    received = []
    with pytest.raises(UpstreamError, match="closed the connection"):
        async for event in UpstreamHTTP("p", upstream=client).post_sse(
                f"{base}/cut", {}, {}, TIMEOUTS):
            received.append(event.data)
    assert received == [b"1", b"2"]
    assert client.idle_connections() == []


async def test_an_encoded_stream_is_refused(server, client):
    base, _ = server
    with pytest.raises(UpstreamError, match="unreadable"):
        [_ async for _ in UpstreamHTTP("p", upstream=client).post_sse(
            f"{base}/gzipped", {}, {}, TIMEOUTS)]


async def test_a_stream_left_midway_closes_its_connection_and_frees_its_slot(server):
    base, _ = server
    client = UpstreamClient(max_connections=1)
    try:
        http = UpstreamHTTP("p", upstream=client)
        for _ in range(3):  # one slot: each stream must give it back when left
            events = http.post_sse(f"{base}/trickle", {}, {}, TIMEOUTS)
            assert (await anext(events)).data == b"0"
            await events.aclose()
            assert client.idle_connections() == []  # closed, not kept half-read
    finally:
        client.close()


async def test_a_reader_that_stops_at_the_last_event_leaves_the_connection(server, client):
    base, _ = server
    http = UpstreamHTTP("p", upstream=client)
    for _ in range(2):
        async for event in http.post_sse(f"{base}/done-then-end", {}, {}, TIMEOUTS,
                                         last_event=is_done):
            if is_done(event):
                break  # as the adapters do: the body's end is still on its way
        await asyncio.sleep(0.2)
        assert len(client.idle_connections()) == 1


def test_retry_after_forms():
    assert retry_after_seconds({"retry-after": "3"}) == 3.0
    assert retry_after_seconds({"retry-after-ms": "250"}) == 0.25
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None
