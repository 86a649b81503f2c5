"""`make bench`: the governed path against the simulator called directly, in one run.

S1 (unary chat): wrk at concurrency 1 and 50 against
  - direct:   the provider simulator's /v1/chat/completions
  - governed: Envoy -> auth (key, policy) -> router -> simulator, usage ledgered
Both in the same run on the same machine, so the ratio is what counts.
S2: 1,000 concurrent paced SSE streams, direct vs governed: completion,
  time-to-first-token overhead, and the peak RSS of all Lockgate processes
  (bench/streaming.py).
S3: ledger ingestion, sustained entries/s through RecordUsage into a ledger
  process on SQLite and on PostgreSQL, one and four senders (bench/ledger_ingest.py).
S4: access policy decision and ext_authz Check latency (in process, cached and
  uncached, and over gRPC against a bare health check; bench/check_latency.py).
Writes bench/results/latest.json and a dated copy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from bench import check_latency, ledger_ingest, streaming
from lockgate.stack import state as stack_state
from lockgate.stack.ephemeral import EphemeralStack

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
GATEWAY = ROOT / "gateway.yaml"
BODY = json.dumps(
    {"model": "demo", "messages": [{"role": "user", "content": "Benchmark the gateway, please."}]}
)


def wrk(url: str, concurrency: int, seconds: int, key: str | None,
        headers: dict[str, str] | None = None) -> dict:
    """wrk POSTing BODY at fixed concurrency; `headers` are sent as well (other
    gateways' routing headers, see bench/peers.py)."""
    threads = max(1, min(2, concurrency))
    env = {**os.environ, "BENCH_BODY": BODY, "BENCH_AUTH": key or "",
           "BENCH_HEADERS": "\n".join(f"{name}: {value}" for name, value in (headers or {}).items())}
    proc = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{seconds}s", "--timeout", "10s",
         "-s", str(ROOT / "wrk_report.lua"), url],
        capture_output=True, text=True, env=env, check=True,
    )
    line = next(x for x in proc.stdout.splitlines() if x.startswith("BENCH_JSON "))
    raw = json.loads(line.split(" ", 1)[1])
    duration = raw["duration_us"] / 1e6
    return {
        "requests": raw["requests"],
        "rps": round(raw["requests"] / duration, 1),
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "errors": raw["socket_errors"] + raw["non_2xx"],
    }


def lockgate_pids(stack) -> dict[str, int]:
    """Every process of the stack but the simulator (the upstream): Envoy, the
    four services and the supervisor, by name."""
    saved = stack_state.read(stack.data_dir / "run" / "stack.json")
    if saved is None:
        raise RuntimeError("the stack wrote no state file")
    pids = {c.name: c.pid for c in saved.components if c.pid and c.name != "sim"}
    pids["supervisor"] = saved.pid
    return pids


def rate_limiter_stats(stack) -> dict[str, int]:
    """Envoy's counters of the edge rate limiter on the route to the router: `ok`,
    `over_limit`, `error` and `failure_mode_allowed` (calls let through unchecked
    because the ledger did not answer within the filter's timeout)."""
    port = stack.ports["LOCKGATE_ENVOY_ADMIN_PORT"]
    text = urllib.request.urlopen(  # noqa: S310 - the stack's own admin port on loopback
        f"http://127.0.0.1:{port}/stats?filter=^cluster\\.router\\.ratelimit\\.", timeout=5
    ).read().decode()
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        out[name.rsplit(".", 1)[-1]] = int(value)
    return out


def govern(stack) -> dict:
    """Make the governed path pay for everything a governed call does: a hard
    budget and a rate limit (requests and tokens) on the tenant, so every call is
    admitted by the ledger (Admit) and counted by the edge rate limiter (RLS),
    both far from their caps so no call is refused."""
    commands = (
        ("budgets", "set", "--tenant", "--usd", "1000000", "--period", "day", "--hard"),
        ("limits", "set", "--tenant", "--rpm", "10000000", "--tpm", "10000000000"),
    )
    for args in commands:
        done = stack.cli(*args, "--admin-key", stack.admin_key)
        if done.returncode != 0:
            raise RuntimeError(f"lockgate {' '.join(args)}: {done.stderr}")
    return {"tenant_budget_usd_per_day": 1_000_000, "tenant_rpm": 10_000_000,
            "tenant_tpm": 10_000_000_000}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="duration of each wrk run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--streams", type=int, default=1000, help="concurrent streams of S2")
    parser.add_argument("--ingest-seconds", type=float, default=10.0,
                        help="S3: measured seconds per backend and sender count")
    parser.add_argument("--check-seconds", type=float, default=5.0,
                        help="S4: seconds of health and of Check calls per gRPC concurrency")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk); `make bench` installs it", file=sys.stderr)
        return 2
    results: dict = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "method": "wrk fixed concurrency, same run, same simulator (no artificial latency)",
        "seconds_per_run": args.seconds,
        "s1_unary_chat": [],
    }
    with EphemeralStack(config=GATEWAY) as stack:
        results["governance"] = govern(stack)
        direct_url = f"{stack.sim_url}/chat/completions"
        governed_url = f"{stack.base_url}/chat/completions"
        for url, key in ((direct_url, None), (governed_url, stack.admin_key)):  # warm up
            wrk(url, 4, 2, key)
        for concurrency in args.concurrency:
            direct = wrk(direct_url, concurrency, args.seconds, None)
            limiter_before = rate_limiter_stats(stack)
            governed = wrk(governed_url, concurrency, args.seconds, stack.admin_key)
            limiter = rate_limiter_stats(stack)
            # Every governed call must have been counted by the edge rate limiter:
            # a call the limiter let through unchecked (it did not answer in time)
            # is a governance gap, reported beside the throughput it bought.
            governed["rate_limiter"] = {k: v - limiter_before.get(k, 0) for k, v in limiter.items()}
            row = {
                "concurrency": concurrency,
                "direct": direct,
                "governed": governed,
                "governed_vs_direct_rps": round(governed["rps"] / direct["rps"], 3),
                "added_p50_ms": round(governed["p50_ms"] - direct["p50_ms"], 3),
                "added_p99_ms": round(governed["p99_ms"] - direct["p99_ms"], 3),
            }
            results["s1_unary_chat"].append(row)
            print(json.dumps(row))
        limiter_before = rate_limiter_stats(stack)
        results["s2_streaming"] = streaming.compare(
            f"{stack.sim_url}/chat/completions", f"{stack.base_url}/chat/completions",
            stack.admin_key, streams=args.streams, lockgate_pids=lockgate_pids(stack),
        )
        results["s2_streaming"]["governed"]["rate_limiter"] = {
            k: v - limiter_before.get(k, 0) for k, v in rate_limiter_stats(stack).items()}
        print(json.dumps(results["s2_streaming"]))
    results["s3_ledger_ingest"] = asyncio.run(ledger_ingest.run(seconds=args.ingest_seconds))
    print(json.dumps(results["s3_ledger_ingest"]))
    # After the stack is down: S4 runs its own auth service and client in-process.
    results["s4_check_latency"] = check_latency.run(seconds=args.check_seconds)
    print(json.dumps(results["s4_check_latency"]))
    RESULTS.mkdir(exist_ok=True)
    text = json.dumps(results, indent=2) + "\n"
    (RESULTS / "latest.json").write_text(text)
    (RESULTS / f"{time.strftime('%Y-%m-%d')}.json").write_text(text)
    print(f"wrote {RESULTS / 'latest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
