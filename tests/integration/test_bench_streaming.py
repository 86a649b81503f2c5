"""bench/streaming.py and bench/proxy_floor.py against a real simulator and a
real Envoy: the floor relays every stream intact, S2's row reports what each
path adds, and the floor runs under the scheduling policy it is asked for."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.request

import pytest

from bench import streaming
from bench.proxy_floor import EnvoyFloor, runs_batch
from tests.conftest import free_port


@pytest.fixture(scope="module")
def sim_url():
    port = free_port()
    proc = subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "lockgate.cli.main", "sim", "--host", "127.0.0.1",
         "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{base}/healthz", timeout=1).read()  # noqa: S310 - loopback
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("the simulator did not start") from None
            time.sleep(0.1)
    yield f"{base}/v1"
    proc.terminate()
    proc.wait(timeout=10)


def test_the_floor_relays_every_stream_with_every_chunk(sim_url):
    with EnvoyFloor(sim_url, batch=False) as floor:
        assert floor.url.endswith("/v1") and floor.url != sim_url
        row = streaming.compare(
            f"{sim_url}/chat/completions", f"{floor.url}/chat/completions", "unused-key",
            streams=20, chunks=5, interval_ms=5, floor_url=f"{floor.url}/chat/completions",
        )
    for leg in ("direct", "envoy_only", "governed"):
        assert row[leg]["complete"] == 20, (leg, row[leg])
        assert row[leg]["ttft_p50_ms"] > 0
    assert row["envoy_only_added_ttft_p50_ms"] == pytest.approx(
        row["envoy_only"]["ttft_p50_ms"] - row["direct"]["ttft_p50_ms"], abs=0.01)
    assert row["added_over_envoy_only_ttft_p50_ms"] == pytest.approx(
        row["governed"]["ttft_p50_ms"] - row["envoy_only"]["ttft_p50_ms"], abs=0.01)
    assert {"added_ttft_p50_ms", "added_ttft_p99_ms", "envoy_only_added_ttft_p99_ms",
            "added_over_envoy_only_ttft_p99_ms"} <= row.keys()


@pytest.mark.skipif(getattr(os, "SCHED_BATCH", None) is None, reason="Linux's SCHED_BATCH")
def test_the_floor_runs_under_the_policy_asked_for(sim_url):
    assert not runs_batch(os.getpid())
    with EnvoyFloor(sim_url, batch=True) as floor:
        assert runs_batch(floor.pid)
    with EnvoyFloor(sim_url, batch=False) as floor:
        assert not runs_batch(floor.pid)
    assert floor.process.poll() is not None  # stopped on leaving the block


def test_the_floor_only_proxies_a_loopback_upstream():
    with pytest.raises(ValueError, match="loopback"):
        EnvoyFloor("http://example.com:80/v1")


def test_added_is_the_difference_of_two_legs_or_nothing():
    direct = {"ttft_p50_ms": 10.0, "ttft_p99_ms": 20.0}
    governed = {"ttft_p50_ms": 12.5, "ttft_p99_ms": 30.0}
    assert streaming._added(governed, direct, "added_ttft") == {
        "added_ttft_p50_ms": 2.5, "added_ttft_p99_ms": 10.0}
    assert streaming._added(governed, {"ttft_p50_ms": None}, "added_ttft") == {}


def _sse(*events: bytes) -> bytes:
    body = b"".join(b"data: %s\n\n" % e for e in events)
    return (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body))


CONTENT = b'{"choices":[{"delta":{"content":"hi"}}]}'
ROLE = b'{"choices":[{"delta":{"role":"assistant"}}]}'


@pytest.mark.parametrize(("answer", "complete"), [
    (_sse(ROLE, CONTENT, CONTENT, b"[DONE]"), True),
    (_sse(ROLE, CONTENT, b"[DONE]"), False),  # a chunk missing
    (_sse(ROLE, CONTENT, CONTENT), False),  # no [DONE]
    (b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\n\r\nno", False),
    (_sse(ROLE, CONTENT)[:-10], False),  # cut short
])
async def test_a_stream_counts_only_when_every_chunk_and_done_came(answer, complete):
    requests = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        requests.append(head + await reader.readexactly(length))
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        row = await streaming.run_streams(f"http://127.0.0.1:{port}/v1/chat/completions",
                                          "k-1", streams=3, chunks=2, interval_ms=7)
    finally:
        server.close()
    assert row["complete"] == (3 if complete else 0)
    assert (row["ttft_p50_ms"] is not None) == complete
    assert b"POST /v1/chat/completions HTTP/1.1\r\n" in requests[0]
    assert b"authorization: Bearer k-1\r\n" in requests[0]
    assert b"x-sim-chunk-count: 2\r\n" in requests[0]
    assert b"x-sim-chunk-interval-ms: 7\r\n" in requests[0]
