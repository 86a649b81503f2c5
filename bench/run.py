"""`make bench`: the governed path against the simulator called directly, in one run.

S1 (unary chat): wrk at concurrency 1, 10 and 50 against
  - direct:   the provider simulator's /v1/chat/completions
  - governed: Envoy -> auth (key, policy) -> router -> simulator, usage ledgered
Both in the same run on the same machine, so the ratio is what counts; in
rounds (3 by default), each figure their median (bench/rounds.py).
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

from bench import check_latency, ledger_ingest, rounds, streaming
from bench.proxy_floor import EnvoyFloor, runs_batch
from lockgate.stack import state as stack_state
from lockgate.stack.ephemeral import EphemeralStack

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
GATEWAY = ROOT / "gateway.yaml"
#: Admission tickets live 1 s and the router hands unused ones back every 0.25 s:
#: after this, a run's request counts are final.
TICKETS_BACK_SECONDS = 1.5
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
    service processes and the supervisor, by name ("ledger+registry" for a
    process hosting two services)."""
    saved = stack_state.read(stack.data_dir / "run" / "stack.json")
    if saved is None:
        raise RuntimeError("the stack wrote no state file")
    hosts: dict[int, list[str]] = {}
    for c in saved.components:
        if c.pid and c.name != "sim":
            hosts.setdefault(c.pid, []).append(c.name)
    pids = {"+".join(names): pid for pid, names in hosts.items()}
    pids["supervisor"] = saved.pid
    return pids


def _get(url: str) -> str:
    return urllib.request.urlopen(url, timeout=5).read().decode()  # noqa: S310 - loopback


def _prometheus(text: str, name: str, by: str, **where: str) -> dict[str, int]:
    """Label `by`'s value -> count, of the samples of counter `name` whose other
    labels match `where`."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        labels, _, value = line[len(name) + 1:].partition("} ")
        found = {k: v.strip('"') for k, v in (part.split("=", 1) for part in labels.split(","))}
        if all(found.get(k) == v for k, v in where.items()):
            out[found.get(by, "")] = out.get(found.get(by, ""), 0) + int(float(value))
    return out


def governance_checks(stack) -> dict[str, dict[str, int]]:
    """How the governed calls were counted against their rate limits, as counters
    (take the difference of two readings, `checks_since`):
    - `requests`: the ledger's request-limit checks by outcome (`ok` counted,
      `over_limit`, `unlimited`, `error`: counters unreachable, allowed);
    - `requests_counted`: the requests those checks counted (`counted`, also
      ahead of their calls for admission tickets) and took back (`uncounted`:
      tickets handed back unused; `window_ended`: handed back after their
      minute ended, nothing to take back). Once the run's unused tickets are
      back, counted - uncounted - window_ended is the number of calls;
    - `admission`: the router's admission checks by outcome (`unavailable`:
      the ledger did not answer in time and the call went ahead unchecked;
      `ticket`: admitted ahead, see services/router/admission_tickets.py);
    - `edge_limiter`: Envoy's rate limit filter, which only gRPC calls to the
      router pass (`failure_mode_allowed`: let through unchecked). The bench's
      REST calls do not: the router's admission counts them."""
    ports = stack.ports
    ledger = _get(f"http://127.0.0.1:{ports['LOCKGATE_LEDGER_METRICS_PORT']}/metrics")
    router = _get(f"http://127.0.0.1:{ports['LOCKGATE_ROUTER_METRICS_PORT']}/metrics")
    envoy = _get(f"http://127.0.0.1:{ports['LOCKGATE_ENVOY_ADMIN_PORT']}/stats"
                 "?filter=^cluster\\.router_grpc\\.ratelimit\\.")
    edge = {}
    for line in envoy.splitlines():
        name, _, value = line.partition(": ")
        edge[name.rsplit(".", 1)[-1]] = int(value)
    return {
        "requests": _prometheus(ledger, "lockgate_ledger_rate_limit_checks_total", "outcome",
                                kind="requests"),
        "requests_counted": _prometheus(ledger, "lockgate_ledger_rate_limit_requests_total",
                                        "outcome"),
        "admission": _prometheus(router, "lockgate_router_admissions_total", "outcome"),
        "edge_limiter": edge,
    }


def checks_since(before: dict, after: dict) -> dict:
    return {group: {k: v - before[group].get(k, 0) for k, v in counts.items()}
            for group, counts in after.items()}


def govern(stack) -> dict:
    """Make the governed path pay for everything a governed call does: a hard
    budget and a rate limit (requests and tokens) on the tenant, so every call is
    admitted by the ledger (Admit: the request counted, the tokens checked, the
    cost reserved), far from the caps so no call is refused."""
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


def s1_round(stack, direct_url: str, governed_url: str, concurrency: int, seconds: int,
             *, governed_first: bool) -> dict:
    """One round of S1 at one concurrency: the simulator directly and the governed
    path, one after the other, with the ratio and added latency between them."""

    def run_governed() -> dict:
        checks_before = governance_checks(stack)
        governed = wrk(governed_url, concurrency, seconds, stack.admin_key)
        # Every governed call must have been counted against the rate limits: a
        # call let through unchecked (the ledger did not answer in time) is a
        # governance gap, reported beside the throughput it bought. Read once the
        # run's unused admission tickets are back.
        time.sleep(TICKETS_BACK_SECONDS)
        governed["governance_checks"] = checks_since(checks_before, governance_checks(stack))
        return governed

    if governed_first:
        governed = run_governed()
        direct = wrk(direct_url, concurrency, seconds, None)
    else:
        direct = wrk(direct_url, concurrency, seconds, None)
        governed = run_governed()
    return {
        "concurrency": concurrency,
        "direct": direct,
        "governed": governed,
        "governed_vs_direct_rps": round(governed["rps"] / direct["rps"], 3),
        "added_p50_ms": round(governed["p50_ms"] - direct["p50_ms"], 3),
        "added_p99_ms": round(governed["p99_ms"] - direct["p99_ms"], 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="duration of each wrk run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--rounds", type=int, default=3,
                        help="S1: rounds per concurrency (direct and governed in each); "
                             "figures are their medians")
    parser.add_argument("--streams", type=int, default=1000, help="concurrent streams of S2")
    parser.add_argument("--ingest-seconds", type=float, default=10.0,
                        help="S3: measured seconds per backend and sender count")
    parser.add_argument("--check-seconds", type=float, default=5.0,
                        help="S4: seconds of health and of Check calls per gRPC concurrency")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk); `make bench` installs it", file=sys.stderr)
        return 2
    results: dict = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "method": "wrk fixed concurrency, same run, same simulator (no artificial latency); "
                  "S1 in rounds (direct and governed in each, alternating which goes first): "
                  "each figure the median over the rounds, each ratio and added latency the "
                  "median of those within a round, requests, errors and governance checks "
                  "totals",
        "seconds_per_run": args.seconds,
        "rounds": args.rounds,
        "s1_unary_chat": [],
    }
    with EphemeralStack(config=GATEWAY) as stack:
        results["governance"] = govern(stack)
        direct_url = f"{stack.sim_url}/chat/completions"
        governed_url = f"{stack.base_url}/chat/completions"
        for url, key in ((direct_url, None), (governed_url, stack.admin_key)):  # warm up
            wrk(url, 4, 2, key)
        for concurrency in args.concurrency:
            measured = []
            for round_ in range(args.rounds):
                # Every other round runs the governed path first, so that neither
                # side always follows the other.
                row = s1_round(stack, direct_url, governed_url, concurrency, args.seconds,
                               governed_first=round_ % 2 == 1)
                measured.append(row)
                print(json.dumps(row), flush=True)
            results["s1_unary_chat"].append(rounds.combine(measured))
        checks_before = governance_checks(stack)
        pids = lockgate_pids(stack)
        with EnvoyFloor(stack.sim_url, batch=runs_batch(pids["envoy"])) as floor:
            results["s2_streaming"] = streaming.compare(
                f"{stack.sim_url}/chat/completions", f"{stack.base_url}/chat/completions",
                stack.admin_key, streams=args.streams, lockgate_pids=pids,
                floor_url=f"{floor.url}/chat/completions",
            )
        time.sleep(TICKETS_BACK_SECONDS)
        results["s2_streaming"]["governed"]["governance_checks"] = checks_since(
            checks_before, governance_checks(stack))
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
