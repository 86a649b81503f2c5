"""S4: access policy decision and ext_authz Check latency, in one run.

1. policy decision: `PolicyEngine().evaluate("lockgate/access/decision", …)`
   (the shipped policies) with the very input Check builds for a typical
   allowed chat request by a developer key — the engine alone, no cache;
2. Check in process: a real AuthService on a temporary SQLite database and
   `Checker(service, PolicyEngine(), None)`, called with the CheckRequest
   Envoy sends for `POST /v1/chat/completions` (after the gRPC-JSON
   transcoder). "cached": the same request repeated (principal cache and
   decision cache hit); "uncached": the decision cache is emptied before every
   call (outside the timed region), so each call evaluates the policy; the
   principal cache stays warm, the database is never on the hot path. A
   counting wrapper checks both (0 and 50 evaluations per 50 calls).
   "cached_with_decision_log": cached, with the OPA-format decision log on, as
   the auth service runs by default (AuthSettings.decision_log);
3. Check over gRPC: the same Checker (no decision log) behind the server
   bootstrap every service runs (`GrpcService`: interceptor, health,
   reflection) on port 0 in this process, and a grpc.aio client in a child
   process (so the two do not share a core) at fixed concurrency 1 and 32,
   cached. The baseline is a bare `grpc.health.v1.Health/Check` (not
   intercepted) on the same server, from the same client process, which
   alternates health and Check in 0.5 s slices (H C C H H C …) so that noise
   on this shared machine lands on both alike: Check ÷ health is what to
   compare across runs. Per kind: the client's and the server's CPU (cores)
   over their slices show which side is saturated, and the machine's busy
   cores (/proc/stat) show how much else was running.

Parts 1 and 2 run interleaved in rounds (decision, cached, uncached, with log,
calibration loop) for the same reason. `calibration_us` (a fixed pure-Python
loop) tells how fast the machine was during the run.

Runnable alone: `.venv/bin/python -m bench.check_latency` prints the JSON
summary; `bench/run.py` (`make bench`) stores it as `s4_check_latency`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import orjson
from envoy.service.auth.v3 import attribute_context_pb2
from envoy.service.auth.v3 import external_auth_pb2 as authz
from envoy.service.auth.v3 import external_auth_pb2_grpc as authz_grpc
from google.api import httpbody_pb2
from google.rpc import code_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

import services.auth
from lockgate.db import open_database
from lockgate.decision_log import DecisionLog
from lockgate.errors import InvalidRequest
from lockgate.grpc_server import GrpcService
from lockgate.policy import PolicyEngine
from lockgate.router.v1 import router_service_pb2 as router_pb
from lockgate.settings import ServiceSettings
from services.auth.check import ACCESS_DECISION, Checker
from services.auth.principals import PrincipalCache
from services.auth.secrets import KeyHasher
from services.auth.service import AuthService
from services.auth.servicer import AuthorizationServicer

MIGRATIONS = Path(services.auth.__file__).parent / "migrations"
REPO = Path(__file__).resolve().parent.parent
CHAT = "/lockgate.router.v1.RouterService/OpenAIChatCompletions"
#: Issue 7: access decision p50, cached and uncached. We hold the whole Check
#: (key hash, body parse, cache, response) to them, which includes the decision.
TARGET_CACHED_P50_US = 50
TARGET_UNCACHED_P50_US = 500
#: Over gRPC, the client alternates health and Check in slices this long.
SLICE_S = 0.5


# -- helpers -----------------------------------------------------------------------


def _percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _summary(latencies_ns: list[int]) -> dict:
    """p50/p99/mean in µs and the sequential rate (1 / mean)."""
    ordered = sorted(x / 1000 for x in latencies_ns)
    mean = sum(ordered) / len(ordered)
    return {
        "calls": len(ordered),
        "p50_us": round(_percentile(ordered, 0.50), 1),
        "p99_us": round(_percentile(ordered, 0.99), 1),
        "mean_us": round(mean, 1),
        "calls_per_s": round(1e6 / mean),
    }


def _grpc_frame(message) -> bytes:
    data = message.SerializeToString()
    return b"\0" + len(data).to_bytes(4, "big") + data


def check_request(key: str) -> authz.CheckRequest:
    """What Envoy sends auth for a REST `POST /v1/chat/completions` after the
    gRPC-JSON transcoder: the gRPC method as path, the original path in a header,
    the body as a gRPC frame (as tests/integration/test_auth_check.py builds it)."""
    body = router_pb.OpenAIChatCompletionsRequest(
        http_body=httpbody_pb2.HttpBody(
            content_type="application/json",
            data=orjson.dumps({
                "model": "demo",
                "messages": [{"role": "user", "content": "Benchmark the gateway, please."}],
            }),
        )
    )
    headers = {
        "content-type": "application/grpc",
        "x-envoy-original-path": "/v1/chat/completions",
        "authorization": f"Bearer {key}",
    }
    http = attribute_context_pb2.AttributeContext.HttpRequest(
        method="POST", path=CHAT, headers=headers, raw_body=_grpc_frame(body)
    )
    return authz.CheckRequest(
        attributes=attribute_context_pb2.AttributeContext(
            request=attribute_context_pb2.AttributeContext.Request(http=http)
        )
    )


def _calibration() -> None:
    """A fixed pure-Python workload: how fast this machine was during the run."""
    total = 0
    for i in range(1000):
        total += i


class _CountingPolicy:
    """Wraps the engine to prove what "cached" and "uncached" do, and to catch the
    policy input Check builds (not used while timing)."""

    def __init__(self, inner):
        self.inner = inner
        self.evaluations = 0
        self.last_input: Any = None

    @property
    def revision(self) -> str:
        return self.inner.revision

    def evaluate(self, entrypoint: str, input: Any) -> Any:
        self.evaluations += 1
        self.last_input = input
        return self.inner.evaluate(entrypoint, input)

    async def evaluate_async(self, entrypoint: str, input: Any) -> Any:
        return self.evaluate(entrypoint, input)


def _forget_decisions(checker: Checker) -> None:
    # Uncached = a fresh, empty decision cache before the call. (Varying the path
    # would also miss, but only while the path stays part of the cache key; this
    # does not depend on what the key holds.)
    checker.decisions = type(checker.decisions)()


# -- parts 1 and 2: in process -------------------------------------------------------


def _drain(decision_log: DecisionLog) -> None:
    """Wait (briefly) for the log's writer thread, so it does not run into the next block."""
    pending = getattr(decision_log, "_queue", None)
    deadline = time.perf_counter() + 2.0
    while pending is not None and not pending.empty() and time.perf_counter() < deadline:
        time.sleep(0.001)
    time.sleep(0.005)  # the last entry being written


async def _in_process(checker: Checker, logged: Checker, decision_log: DecisionLog,
                      engine: PolicyEngine, request: authz.CheckRequest, calls: int,
                      rounds: int) -> dict:
    for candidate in (checker, logged):
        reply = await candidate.check(request)
        if reply.status.code != code_pb2.OK:
            raise RuntimeError(f"the bench Check is denied: {reply}")

    # Prove the two modes: no evaluation when cached, one per call when uncached.
    counting = _CountingPolicy(checker.policy)
    checker.policy = counting
    for _ in range(50):
        await checker.check(request)
    cached_evals = counting.evaluations
    for _ in range(50):
        _forget_decisions(checker)
        await checker.check(request)
    uncached_evals = counting.evaluations - cached_evals
    checker.policy = counting.inner

    # Part 1 evaluates exactly the input Check built for this request (it follows
    # the principal's and the request's shape as they change).
    decision_input = counting.last_input
    result = engine.evaluate(ACCESS_DECISION, decision_input)
    if not (isinstance(result, dict) and result.get("allow") is True):
        raise RuntimeError(f"the bench decision input is not allowed: {result!r}")

    clock = time.perf_counter_ns
    decision: list[int] = []
    cached: list[int] = []
    uncached: list[int] = []
    with_log: list[int] = []
    calibration: list[int] = []

    async def measure(per_round: int, record: bool) -> None:
        for _ in range(per_round):
            t0 = clock()
            engine.evaluate(ACCESS_DECISION, decision_input)
            t1 = clock()
            if record:
                decision.append(t1 - t0)
        for _ in range(per_round):
            t0 = clock()
            await checker.check(request)
            t1 = clock()
            if record:
                cached.append(t1 - t0)
        for _ in range(per_round):
            _forget_decisions(checker)
            t0 = clock()
            await checker.check(request)
            t1 = clock()
            if record:
                uncached.append(t1 - t0)
        for _ in range(per_round):
            t0 = clock()
            await logged.check(request)
            t1 = clock()
            if record:
                with_log.append(t1 - t0)
        _drain(decision_log)
        for _ in range(per_round):
            t0 = clock()
            _calibration()
            t1 = clock()
            if record:
                calibration.append(t1 - t0)

    await measure(max(100, calls // 10), record=False)  # warm-up
    for _ in range(rounds):
        await measure(calls // rounds, record=True)
    # Leave the cache holding the request again (the gRPC part measures cached).
    await checker.check(request)

    d, c, u, w = _summary(decision), _summary(cached), _summary(uncached), _summary(with_log)
    d.update(target_p50_us=TARGET_UNCACHED_P50_US,
             meets_target=d["p50_us"] <= TARGET_UNCACHED_P50_US)
    c.update(target_p50_us=TARGET_CACHED_P50_US,
             meets_target=c["p50_us"] <= TARGET_CACHED_P50_US)
    u.update(target_p50_us=TARGET_UNCACHED_P50_US,
             meets_target=u["p50_us"] <= TARGET_UNCACHED_P50_US)
    w.update(target_p50_us=TARGET_CACHED_P50_US,
             meets_target=w["p50_us"] <= TARGET_CACHED_P50_US)
    return {
        "policy_decision": d,
        "check_in_process": {
            "cached": c,
            "uncached": u,
            # The auth service's default (AuthSettings.decision_log): every Check, cached
            # or not, builds the policy input and queues an OPA-format log entry.
            "cached_with_decision_log": w,
            "uncached_vs_cached_p50": round(u["p50_us"] / c["p50_us"], 1),
            "decision_log_vs_cached_p50": round(w["p50_us"] / c["p50_us"], 1),
            # What Check adds around an engine evaluation (hash, parse, cache, reply).
            "uncached_minus_decision_p50_us": round(u["p50_us"] - d["p50_us"], 1),
            "policy_evaluations_per_50_calls": {"cached": cached_evals,
                                                "uncached": uncached_evals},
        },
        "decision_input": decision_input,
        "calibration_us": _summary(calibration)["p50_us"],
    }


# -- part 3: over gRPC ----------------------------------------------------------------

KINDS = ("health", "check")


def _cpu_ticks() -> tuple[int, int] | None:
    """(busy, total) jiffies of the whole machine, from /proc/stat (Linux), else None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


async def _client_main(port: int, concurrency: int, seconds: float, slice_s: float) -> None:
    """The load generator (child process): `concurrency` callers on one channel,
    alternating bare health checks and Checks in slices (H C C H H C …) so that
    noise on the machine lands on both alike. Prints `BEGIN <kind>` / `END <kind>`
    around every slice (the server reads its CPU there), then a JSON summary."""
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    check_reply_ok = code_pb2.OK
    serving = health_pb2.HealthCheckResponse.SERVING
    calls = {
        "check": (authz_grpc.AuthorizationStub(channel).Check,
                  check_request(os.environ["BENCH_CHECK_KEY"]),
                  lambda reply: reply.status.code == check_reply_ok),
        "health": (health_pb2_grpc.HealthStub(channel).Check, health_pb2.HealthCheckRequest(),
                   lambda reply: reply.status == serving),
    }
    clock = time.perf_counter_ns
    latencies: dict[str, list[int]] = {k: [] for k in KINDS}
    errors = dict.fromkeys(KINDS, 0)
    cpu = dict.fromkeys(KINDS, 0.0)
    wall = dict.fromkeys(KINDS, 0.0)

    async def caller(kind: str, until: float, record: bool) -> None:
        call, request, ok = calls[kind]
        while time.perf_counter() < until:
            t0 = clock()
            reply = await call(request)
            t1 = clock()
            if record:
                latencies[kind].append(t1 - t0)
                errors[kind] += not ok(reply)

    async def phase(kind: str, duration: float, record: bool) -> None:
        until = time.perf_counter() + duration
        await asyncio.gather(*(caller(kind, until, record) for _ in range(concurrency)))

    for kind in KINDS:  # warm-up
        await phase(kind, 0.5, record=False)
    slices = max(1, round(seconds / slice_s))
    for i in range(2 * slices):
        kind = KINDS[(i + 1) // 2 % 2]  # health, check, check, health, health, …
        print(f"BEGIN {kind}", flush=True)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await phase(kind, seconds / slices, record=True)
        cpu[kind] += time.process_time() - cpu0
        wall[kind] += time.perf_counter() - wall0
        print(f"END {kind}", flush=True)
    await channel.close()
    summary = {}
    for kind in KINDS:
        ordered = sorted(x / 1000 for x in latencies[kind])
        summary[kind] = {
            "calls": len(ordered),
            "errors": errors[kind],
            "rps": round(len(ordered) / wall[kind], 1),
            "p50_us": round(_percentile(ordered, 0.50), 1),
            "p99_us": round(_percentile(ordered, 0.99), 1),
            "wall_s": round(wall[kind], 3),
            "client_cpu_cores": round(cpu[kind] / wall[kind], 2),
        }
    print(json.dumps(summary), flush=True)


async def _drive(port: int, concurrency: int, seconds: float, key: str) -> dict:
    """Run one client process; the server's CPU (and the machine's) is read over
    the client's slices, per kind."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.check_latency", "--client", str(port), str(concurrency),
        str(seconds), stdout=asyncio.subprocess.PIPE, cwd=REPO,
        env={**os.environ, "BENCH_CHECK_KEY": key},
    )
    assert proc.stdout is not None
    server_cpu = dict.fromkeys(KINDS, 0.0)
    server_wall = dict.fromkeys(KINDS, 0.0)
    busy = dict.fromkeys(KINDS, 0)
    total = dict.fromkeys(KINDS, 0)
    start: tuple | None = None
    summary = None
    async for raw in proc.stdout:
        line = raw.decode().strip()
        if line.startswith("BEGIN "):
            start = (time.process_time(), time.perf_counter(), _cpu_ticks())
        elif line.startswith("END ") and start is not None:
            kind = line.split()[1]
            server_cpu[kind] += time.process_time() - start[0]
            server_wall[kind] += time.perf_counter() - start[1]
            ticks = _cpu_ticks()
            if ticks is not None and start[2] is not None:
                busy[kind] += ticks[0] - start[2][0]
                total[kind] += ticks[1] - start[2][1]
            start = None
        elif line.startswith("{"):
            summary = json.loads(line)
    if await proc.wait() != 0 or summary is None:
        raise RuntimeError(f"the gRPC client failed (exit {proc.returncode})")
    for kind in KINDS:
        row = summary[kind]
        row["server_cpu_cores"] = round(server_cpu[kind] / server_wall[kind], 2)
        row["server_cpu_us_per_call"] = round(server_cpu[kind] * 1e6 / max(1, row["calls"]), 1)
        if total[kind]:
            # Everything the machine ran meanwhile; what is left beside server and
            # client is other load on this shared box.
            machine = busy[kind] / total[kind] * (os.cpu_count() or 1)
            row["machine_busy_cores"] = round(machine, 2)
            row["other_load_cores"] = round(
                max(0.0, machine - row["server_cpu_cores"] - row["client_cpu_cores"]), 2
            )
    return summary


async def _over_grpc(checker: Checker, key: str, concurrencies: list[int],
                     seconds: float) -> dict:
    def register(server) -> list[str]:
        authz_grpc.add_AuthorizationServicer_to_server(AuthorizationServicer(checker), server)
        return [authz.DESCRIPTOR.services_by_name["Authorization"].full_name]

    settings = ServiceSettings(host="127.0.0.1", grpc_port=0, metrics_port=-1)
    server = GrpcService("auth", settings, register)
    port = await server.start()
    runs = []
    try:
        for concurrency in concurrencies:
            measured = await _drive(port, concurrency, seconds, key)
            health, check = measured["health"], measured["check"]
            runs.append({
                "concurrency": concurrency,
                "health_baseline": health,
                "check_cached": check,
                "check_vs_health_rps": round(check["rps"] / health["rps"], 3),
                "added_p50_us": round(check["p50_us"] - health["p50_us"], 1),
                "added_p99_us": round(check["p99_us"] - health["p99_us"], 1),
                "added_server_cpu_us_per_call": round(
                    check["server_cpu_us_per_call"] - health["server_cpu_us_per_call"], 1
                ),
            })
    finally:
        await server.stop(0)
    return {"seconds_per_kind": seconds, "slice_s": SLICE_S, "runs": runs}


# -- the scenario -------------------------------------------------------------------------


async def measure(calls: int = 5000, rounds: int = 10, concurrencies: tuple[int, ...] = (1, 32),
                  seconds: float = 5.0) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'auth.db'}"
        db, sessions = await open_database(url, MIGRATIONS, "alembic_version_auth")
        try:
            # A 60 s principal cache: after the first resolve the key never hits
            # the database again while a part runs (production default: 5 s).
            service = AuthService(sessions, KeyHasher(b"p" * 32), PrincipalCache(60))
            await service.bootstrap()
            key = await _developer_key(service)
            engine = PolicyEngine()
            checker = Checker(service, engine, None)
            decision_log = DecisionLog(Path(tmp) / "decisions-auth.jsonl", "auth")
            decision_log.start()
            logged = Checker(service, engine, decision_log)
            request = check_request(key)
            results = {"policy_revision": engine.revision}
            results.update(await _in_process(checker, logged, decision_log, engine, request,
                                             calls, rounds))
            await decision_log.close()
            # Over gRPC: the Checker without a decision log (as in parts 1-2).
            results["check_grpc"] = await _over_grpc(checker, key, list(concurrencies), seconds)
        finally:
            await db.dispose()
    return results


async def _developer_key(service: AuthService) -> str:
    """A developer key in tenant `default` (the bootstrap made the tenant)."""
    try:
        created = await service.create_key(None, "default", "bench", ["developer"], [])
    except InvalidRequest as exc:
        if exc.param != "owner":
            raise
        # Keys now belong to a user or service account: the bootstrap's admin account.
        created = await service.create_key(None, "default", "bench", ["developer"], [],
                                           owner="service-accounts/admin")
    return created.secret


def _loop_runner() -> tuple[str, Callable]:
    try:  # what the services run on (lockgate.grpc_server.run)
        import uvloop

        return "uvloop", uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a pinned dependency
        return "asyncio", asyncio.run


def run(seconds: float = 5.0, calls: int = 5000) -> dict:
    """S4 for bench/run.py: the summary as a JSON-ready dict."""
    loop, runner = _loop_runner()
    started = time.perf_counter()
    results = {
        "method": (
            "in process: policy decision and Checker.check (cached / decision cache emptied "
            "before each call / cached with decision log), interleaved in rounds; over gRPC: "
            "GrpcService + AuthorizationServicer in this process, grpc.aio client in a child "
            "process at fixed concurrency, alternating 0.5 s slices of Check and of a bare "
            "Health/Check (the same-run baseline)"
        ),
        "event_loop": loop,
        "cpus": os.cpu_count(),
        "targets_p50_us": {"cached": TARGET_CACHED_P50_US, "uncached": TARGET_UNCACHED_P50_US},
    }
    results.update(runner(measure(calls=calls, seconds=seconds)))
    results["elapsed_s"] = round(time.perf_counter() - started, 1)
    return results


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":  # internal: the load generator
        port, concurrency, seconds = sys.argv[2:5]
        _loop_runner()[1](_client_main(int(port), int(concurrency), float(seconds), SLICE_S))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="gRPC: seconds of health and of Check calls per concurrency")
    parser.add_argument("--calls", type=int, default=5000, help="timed calls per in-process mode")
    args = parser.parse_args()
    print(json.dumps(run(seconds=args.seconds, calls=args.calls), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
