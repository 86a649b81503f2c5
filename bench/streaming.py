"""S2 (first cut): concurrent SSE streams, direct to the simulator vs through
the gateway, in one run: every stream must complete with every chunk; the
result is time to first token (TTFT) and its overhead over direct.

The simulator paces the streams (x-sim-chunk-count / x-sim-chunk-interval-ms,
passed through the gateway by the bench config's forward_headers), so the
load is many long-lived streams, as in production, not a burst of bytes.
The client is one asyncio process with aiohttp; it reads every event, and
the direct run shows what the client itself costs.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import aiohttp
import orjson


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _one(session: aiohttp.ClientSession, url: str, headers: dict, body: bytes,
               chunks: int) -> tuple[float, bool]:
    started = time.perf_counter()
    ttft = None
    content = 0
    done = False
    async with session.post(url, data=body, headers=headers) as resp:
        if resp.status != 200:
            await resp.read()
            return 0.0, False
        async for line in resp.content:
            if not line.startswith(b"data: "):
                continue
            if line.startswith(b"data: [DONE]"):
                done = True
                break
            chunk = orjson.loads(line[6:])
            choices = chunk.get("choices") or ()
            if choices and choices[0].get("delta", {}).get("content"):
                if ttft is None:
                    ttft = time.perf_counter() - started
                content += 1
    return (ttft or 0.0), done and content == chunks


async def run_streams(url: str, key: str | None, streams: int, chunks: int,
                      interval_ms: int) -> dict:
    headers = {"content-type": "application/json", "x-sim-chunk-count": str(chunks),
               "x-sim-chunk-interval-ms": str(interval_ms)}
    if key:
        headers["authorization"] = f"Bearer {key}"
    body = orjson.dumps({"model": "demo", "stream": True, "messages": [
        {"role": "user", "content": "Stream a long answer for the benchmark, please."}]})
    connector = aiohttp.TCPConnector(limit=streams)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(_one(session, url, headers, body, chunks) for _ in range(8)))
        started = time.perf_counter()
        results = await asyncio.gather(
            *(_one(session, url, headers, body, chunks) for _ in range(streams)),
            return_exceptions=True,
        )
        wall = time.perf_counter() - started
    ok = [r for r in results if not isinstance(r, BaseException) and r[1]]
    ttfts = [r[0] * 1000 for r in ok]
    return {
        "streams": streams,
        "complete": len(ok),
        "wall_s": round(wall, 2),
        "ttft_p50_ms": round(statistics.median(ttfts), 2) if ttfts else None,
        "ttft_p99_ms": round(_percentile(ttfts, 0.99), 2) if ttfts else None,
    }


def compare(direct_url: str, governed_url: str, key: str, streams: int = 200,
            chunks: int = 50, interval_ms: int = 20) -> dict:
    direct = asyncio.run(run_streams(direct_url, None, streams, chunks, interval_ms))
    governed = asyncio.run(run_streams(governed_url, key, streams, chunks, interval_ms))
    row = {"chunks_per_stream": chunks, "chunk_interval_ms": interval_ms,
           "direct": direct, "governed": governed}
    if direct["ttft_p50_ms"] is not None and governed["ttft_p50_ms"] is not None:
        row["added_ttft_p50_ms"] = round(governed["ttft_p50_ms"] - direct["ttft_p50_ms"], 2)
        row["added_ttft_p99_ms"] = round(governed["ttft_p99_ms"] - direct["ttft_p99_ms"], 2)
        row["governed_vs_direct_ttft_p50"] = round(
            governed["ttft_p50_ms"] / max(direct["ttft_p50_ms"], 0.001), 2)
    return row
