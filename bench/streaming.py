"""S2: concurrent SSE streams, direct to the simulator vs through the gateway,
in one run: every stream must complete with every chunk; the result is time
to first token (TTFT) and its overhead over direct, and the peak resident
memory (RSS) of all Lockgate processes while the governed streams run.

The simulator paces the streams (x-sim-chunk-count / x-sim-chunk-interval-ms,
passed through the gateway by the bench config's forward_headers), so the
load is many long-lived streams, as in production, not a burst of bytes.
The client is one uvloop process reading every event of every stream through
the gateway's own lean client (lockgate/upstream_client.py: httptools, one
future per read), so that it costs a fraction of what an aiohttp client did (`client_cpu_cores` reports it: near 1.0 the client
would bound its own measurement); the direct run shows what it costs.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import threading
import time

import orjson
import uvloop

from lockgate.upstream_client import UpstreamClient


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _content_events(events: list[bytes]) -> tuple[int, bool]:
    """How many of these whole events carry content, and whether one is [DONE]."""
    content, done = 0, False
    for event in events:
        for line in event.split(b"\n"):
            if not line.startswith(b"data: "):
                continue
            if line == b"data: [DONE]":
                done = True
                continue
            choices = orjson.loads(line[6:]).get("choices") or ()
            if choices and choices[0].get("delta", {}).get("content"):
                content += 1
    return content, done


async def _one(client: UpstreamClient, url: str, headers: dict[str, str], body: bytes,
               chunks: int) -> tuple[float, bool]:
    """One stream read through the gateway's own lean client (lockgate/upstream_client.py):
    the time to its first content chunk, and whether every chunk and [DONE] came
    after a 200."""
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    stream = await client.stream(url, body, headers, connect_timeout=10,
                                 head_by=loop.time() + 120)
    ttft, content, done, pending = None, 0, False, b""
    try:
        while piece := await stream.read():
            events = (pending + piece).split(b"\n\n")
            pending = events.pop()  # an event not complete yet
            more, ended = _content_events(events)
            if more and ttft is None:
                ttft = time.perf_counter() - started
            content += more
            done = done or ended
    finally:
        stream.close()
    return (ttft or 0.0), stream.status == 200 and done and content == chunks


async def run_streams(url: str, key: str | None, streams: int, chunks: int,
                      interval_ms: int) -> dict:
    headers = {"content-type": "application/json", "x-sim-chunk-count": str(chunks),
               "x-sim-chunk-interval-ms": str(interval_ms)}
    if key:
        headers["authorization"] = f"Bearer {key}"
    body = orjson.dumps({"model": "demo", "stream": True, "messages": [
        {"role": "user", "content": "Stream a long answer for the benchmark, please."}]})
    client = UpstreamClient(max_connections=streams)

    def one() -> asyncio.Future:
        return asyncio.wait_for(_one(client, url, headers, body, chunks), 120)

    await asyncio.gather(*(one() for _ in range(8)), return_exceptions=True)  # warm-up
    started, cpu_started = time.perf_counter(), time.process_time()
    results = await asyncio.gather(*(one() for _ in range(streams)), return_exceptions=True)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    client.close()
    ok = [r for r in results if not isinstance(r, BaseException) and r[1]]
    ttfts = [r[0] * 1000 for r in ok]
    return {
        "streams": streams,
        "complete": len(ok),
        "wall_s": round(wall, 2),
        # The client's own CPU: near 1.0 core it would be the bottleneck of its
        # measurement (one event loop, one core at most).
        "client_cpu_cores": round(cpu / wall, 2),
        "ttft_p50_ms": round(statistics.median(ttfts), 2) if ttfts else None,
        "ttft_p99_ms": round(_percentile(ttfts, 0.99), 2) if ttfts else None,
    }


def rss_bytes(pid: int) -> int:
    """Resident memory of one process (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class PeakRss:
    """Samples the summed RSS of some processes every `interval` seconds in a
    thread (the asyncio client must not be slowed), keeping the peak."""

    def __init__(self, pids: dict[str, int], interval: float = 0.05):
        self.pids = pids
        self.interval = interval
        self.peak_total = 0
        self.peak_by_process: dict[str, int] = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            sizes = {name: rss_bytes(pid) for name, pid in self.pids.items()}
            self.peak_total = max(self.peak_total, sum(sizes.values()))
            for name, size in sizes.items():
                self.peak_by_process[name] = max(self.peak_by_process[name], size)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        mb = 1024 * 1024
        return {"peak_rss_mb": round(self.peak_total / mb, 1),
                "peak_rss_mb_by_process": {n: round(v / mb, 1)
                                           for n, v in sorted(self.peak_by_process.items())}}


def _added(slower: dict, faster: dict, name: str) -> dict:
    """`{name}_p50_ms` and `{name}_p99_ms`: the time to first token `slower` adds
    over `faster` (empty when either has none)."""
    if slower["ttft_p50_ms"] is None or faster["ttft_p50_ms"] is None:
        return {}
    return {f"{name}_p50_ms": round(slower["ttft_p50_ms"] - faster["ttft_p50_ms"], 2),
            f"{name}_p99_ms": round(slower["ttft_p99_ms"] - faster["ttft_p99_ms"], 2)}


def compare(direct_url: str, governed_url: str, key: str, streams: int = 200,
            chunks: int = 50, interval_ms: int = 20,
            lockgate_pids: dict[str, int] | None = None,
            floor_url: str | None = None) -> dict:
    """The streams directly, then through the proxy floor (`floor_url`, Envoy alone:
    bench/proxy_floor.py) when given, then through the governed path, one after
    the other. `lockgate_pids`: the processes whose summed peak RSS is reported
    (name -> pid)."""
    direct = uvloop.run(run_streams(direct_url, None, streams, chunks, interval_ms))
    floor = None
    if floor_url is not None:
        floor = uvloop.run(run_streams(floor_url, None, streams, chunks, interval_ms))
    with PeakRss(lockgate_pids or {}) as memory:
        governed = uvloop.run(run_streams(governed_url, key, streams, chunks, interval_ms))
    if lockgate_pids:
        governed.update(memory.summary())
    row = {"chunks_per_stream": chunks, "chunk_interval_ms": interval_ms,
           "direct": direct, "governed": governed, **_added(governed, direct, "added_ttft")}
    if direct["ttft_p50_ms"] is not None and governed["ttft_p50_ms"] is not None:
        row["governed_vs_direct_ttft_p50"] = round(
            governed["ttft_p50_ms"] / max(direct["ttft_p50_ms"], 0.001), 2)
    if floor is not None:
        row["envoy_only"] = floor
        row.update(_added(floor, direct, "envoy_only_added_ttft"))
        # Lockgate's own share: what the governed path adds over Envoy alone.
        row.update(_added(governed, floor, "added_over_envoy_only_ttft"))
    return row
