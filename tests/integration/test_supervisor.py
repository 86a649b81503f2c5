"""The supervisor as a real process with small fake children (Python one-file
HTTP servers): health gating, restarts with backoff, ordered stop, no orphans
after SIGTERM or SIGKILL, and the detach / status / down round trip. Also the
usage command's transport (paging, one-line errors) against a fake gateway; the
admin commands run against the real stack in tests/e2e/test_admin_e2e.py.

Run as a script (`python test_supervisor.py spec.json`) this file is the
supervisor under test: it builds the ChildSpecs the spec describes.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent import futures
from pathlib import Path

FAKE_CHILD = r'''
import http.server, json, os, signal, sys, threading, time

cfg = json.loads(sys.argv[1])
name, events = cfg["name"], cfg["events"]

def record(event):
    with open(events, "a") as f:
        f.write(f"{time.time():.6f} {name} {os.getpid()} {event}\n")

def on_term(signum, frame):
    record("term")
    if not cfg.get("ignore_term"):
        os._exit(0)

signal.signal(signal.SIGTERM, on_term)
record("start")
print(f"{name} starting", flush=True)
if "exit_now" in cfg:
    print(f"{name}: boom, cannot start", flush=True)
    sys.exit(cfg["exit_now"])
time.sleep(cfg.get("start_delay", 0))

class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        sick = cfg.get("never_healthy") or os.path.exists(cfg["events"] + "." + name + ".sick")
        self.send_response(503 if sick else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", cfg["port"]), Health)
counter = cfg["events"] + "." + name + ".crashes"
crashes = int(open(counter).read()) if os.path.exists(counter) else 0
if crashes < cfg.get("crash_times", 0):
    with open(counter, "w") as f:
        f.write(str(crashes + 1))

    def crash():
        record("crash")
        os._exit(3)

    threading.Timer(cfg.get("crash_after", 0.3), crash).start()
record("serving")
server.serve_forever()
'''


# -- script mode: the supervisor under test -------------------------------------------
def run_supervisor(spec_path: str) -> int:
    from lockgate.logs import setup_logging
    from lockgate.stack.backoff import Backoff
    from lockgate.stack.children import ChildSpec, Member
    from lockgate.stack.health import HttpCheck
    from lockgate.stack.supervisor import Supervisor

    spec = json.loads(Path(spec_path).read_text())
    data_dir = Path(spec["data_dir"])
    setup_logging("supervisor")
    children = [
        ChildSpec(
            name=c["name"],
            argv=(sys.executable, spec["fake"], json.dumps(c)),
            health=HttpCheck(f"http://127.0.0.1:{c['port']}/health"),
            ports=(c["port"],),
            endpoint=f"http://127.0.0.1:{c['port']}",
            # A process hosting several services: each is a component of its own.
            members=tuple(
                Member(m, HttpCheck(f"http://127.0.0.1:{c['port']}/health?{m}"),
                       f"http://127.0.0.1:{c['port']}/{m}")
                for m in c.get("members", ())
            ),
            batch=c.get("batch", False),
        )
        for c in spec["children"]
    ]
    b = spec.get("backoff", {})
    supervisor = Supervisor(
        children,
        logs_dir=data_dir / "logs",
        state_path=data_dir / "run" / "stack.json",
        data_dir=data_dir,
        startup_timeout=spec.get("startup_timeout", 10),
        stop_timeout=spec.get("stop_timeout", 10),
        backoff=lambda: Backoff(
            initial=b.get("initial", 0.5), maximum=b.get("maximum", 30),
            reset_after=b.get("reset_after", 60),
        ),
        on_ready=lambda: print(f"READY {time.time():.6f}", flush=True),
    )
    code = asyncio.run(supervisor.run())
    if supervisor.error:
        print(f"ERROR: {supervisor.error}", file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(run_supervisor(sys.argv[1]))


# -- tests ------------------------------------------------------------------------------
import grpc  # noqa: E402
import pytest  # noqa: E402

from lockgate.stack import state as state_file  # noqa: E402
from lockgate.stack.process import is_running  # noqa: E402
from tests.conftest import free_port  # noqa: E402


class Stack:
    """A spec on disk, the supervisor process running it, and what the children did."""

    def __init__(self, tmp_path: Path, children: list[dict], **options):
        self.dir = tmp_path
        self.events = tmp_path / "events.txt"
        fake = tmp_path / "fake_child.py"
        fake.write_text(FAKE_CHILD)
        for child in children:
            child.setdefault("port", free_port())
            child["events"] = str(self.events)
        self.children = children
        self.spec = tmp_path / "spec.json"
        self.spec.write_text(json.dumps(
            {"data_dir": str(tmp_path), "fake": str(fake), "children": children, **options}
        ))
        self.state_path = tmp_path / "run" / "stack.json"
        self.proc: subprocess.Popen | None = None

    def argv(self) -> list[str]:
        return [sys.executable, __file__, str(self.spec)]

    def start(self) -> Stack:
        self.proc = subprocess.Popen(
            self.argv(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        return self

    def wait_ready(self, timeout: float = 15) -> float:
        """Seconds since the epoch at which the supervisor said ready."""
        assert self.proc is not None and self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("READY"):
            self.proc.kill()
            raise AssertionError(f"not ready: {line!r}\n{self.proc.stderr.read()}")
        return float(line.split()[1])

    def finish(self, timeout: float = 20) -> tuple[int, list[dict], str]:
        """Exit code, JSON log records and the plain stderr lines of the supervisor."""
        assert self.proc is not None
        out, err = self.proc.communicate(timeout=timeout)
        records, plain = [], []
        for line in err.splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                plain.append(line)
        return self.proc.returncode, records, "\n".join(plain)

    def state(self) -> state_file.StackState:
        current = state_file.read(self.state_path)
        assert current is not None
        return current

    def pids(self) -> dict[str, int]:
        return {c.name: c.pid for c in self.state().components if c.pid}

    def recorded(self) -> list[tuple[float, str, int, str]]:
        if not self.events.exists():
            return []
        rows = []
        for line in self.events.read_text().splitlines():
            ts, name, pid, event = line.split()
            rows.append((float(ts), name, int(pid), event))
        return rows

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture
def stacks():
    started: list[Stack] = []
    yield started
    for stack in started:
        stack.kill()


def make(stacks, tmp_path, children, **options) -> Stack:
    stack = Stack(tmp_path, children, **options)
    stacks.append(stack)
    return stack


def wait_until(predicate, timeout: float = 10, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def all_gone(pids) -> bool:
    return not any(is_running(pid) for pid in pids)


# -- startup -----------------------------------------------------------------------------
def test_ready_only_when_every_child_is_healthy_then_sigterm_stops_in_reverse(
    stacks, tmp_path
):
    stack = make(stacks, tmp_path, [
        {"name": "first", "start_delay": 1.0},
        {"name": "second"},
        {"name": "stubborn", "ignore_term": True},
    ], stop_timeout=0.5).start()
    ready_at = stack.wait_ready()
    serving = {name: ts for ts, name, _, event in stack.recorded() if event == "serving"}
    assert ready_at >= serving["first"] >= max(serving["second"], serving["stubborn"])
    assert stack.state().state == state_file.READY
    pids = stack.pids()
    assert set(pids) == {"first", "second", "stubborn"}

    stack.proc.send_signal(signal.SIGTERM)
    code, records, _ = stack.finish()
    assert code == 0
    assert wait_until(lambda: all_gone(pids.values()), 3)
    assert not stack.state_path.exists()
    terms = [name for _, name, _, event in stack.recorded() if event == "term"]
    assert terms == ["stubborn", "second", "first"]
    killed = [r["child"] for r in records if r.get("event") == "child_killed"]
    assert killed == ["stubborn"]  # ignored SIGTERM for stop_timeout, then SIGKILL


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="SCHED_BATCH is Linux's")
def test_a_batch_child_and_every_thread_it_starts_run_under_sched_batch(stacks, tmp_path):
    stack = make(stacks, tmp_path, [{"name": "batch", "batch": True}, {"name": "plain"}]).start()
    stack.wait_ready()
    pids = stack.pids()

    def policies(pid: int) -> set[int]:
        return {os.sched_getscheduler(int(tid)) for tid in os.listdir(f"/proc/{pid}/task")}

    assert policies(pids["batch"]) == {os.SCHED_BATCH}
    assert policies(pids["plain"]) == {os.SCHED_OTHER}
    assert os.sched_getscheduler(stack.proc.pid) == os.SCHED_OTHER  # the supervisor itself
    stack.proc.send_signal(signal.SIGTERM)
    assert stack.finish()[0] == 0


def test_a_process_hosting_several_services_lists_each_as_a_component(stacks, tmp_path):
    stack = make(stacks, tmp_path, [
        {"name": "a+b", "members": ["a", "b"]}, {"name": "solo"},
    ]).start()
    stack.wait_ready()
    components = stack.state().components
    assert [c.name for c in components] == ["a", "b", "solo"]
    a, b, solo = components
    assert a.pid == b.pid != solo.pid
    assert a.log == b.log == str(tmp_path / "logs" / "a+b.log")
    assert (a.endpoint, b.endpoint) == (f"http://127.0.0.1:{stack.children[0]['port']}/a",
                                        f"http://127.0.0.1:{stack.children[0]['port']}/b")
    assert a.health["url"].endswith("/health?a") and b.health["url"].endswith("/health?b")
    stack.proc.send_signal(signal.SIGTERM)
    assert stack.finish()[0] == 0


def test_child_exiting_during_startup_fails_fast_naming_it_with_its_log(stacks, tmp_path):
    stack = make(stacks, tmp_path, [{"name": "fine"}, {"name": "broken", "exit_now": 2}])
    started = time.monotonic()
    stack.start()
    code, records, plain = stack.finish()
    assert code == 1 and time.monotonic() - started < 8
    assert "broken exited with code 2 while starting" in plain
    assert "broken: boom, cannot start" in plain  # the tail of logs/broken.log
    fine = [pid for _, name, pid, event in stack.recorded() if name == "fine" and event == "start"]
    assert wait_until(lambda: all_gone(fine), 3)
    assert not stack.state_path.exists()
    assert any(r.get("event") == "start_failed" for r in records)


def test_child_never_healthy_times_out(stacks, tmp_path):
    stack = make(stacks, tmp_path, [{"name": "ok"}, {"name": "sulky", "never_healthy": True}],
                 startup_timeout=1.5).start()
    code, _, plain = stack.finish()
    assert code == 1
    assert "sulky did not become healthy within 1.5 s" in plain
    assert "sulky starting" in plain


def test_sigterm_while_starting_stops_cleanly(stacks, tmp_path):
    stack = make(stacks, tmp_path, [{"name": "quick"}, {"name": "slow", "start_delay": 5}]).start()
    started = wait_until(
        lambda: len([e for _, _, _, e in stack.recorded() if e == "start"]) == 2, 5
    )
    assert started
    pids = [p for _, _, p, e in stack.recorded() if e == "start"]
    stack.proc.send_signal(signal.SIGTERM)
    code, _, _ = stack.finish()
    assert code == 0
    assert wait_until(lambda: all_gone(pids), 3)
    assert not stack.state_path.exists()


def test_port_in_use_is_refused_before_starting(stacks, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        stack = make(stacks, tmp_path, [{"name": "web", "port": port}]).start()
        code, _, plain = stack.finish()
    assert code == 1
    assert f"port {port} (web) is already in use" in plain
    assert stack.recorded() == []


# -- crashes -----------------------------------------------------------------------------
def test_crashed_child_is_restarted_with_backoff_and_logged(stacks, tmp_path):
    stack = make(stacks, tmp_path, [
        {"name": "steady"},
        {"name": "flaky", "crash_times": 3, "crash_after": 0.3},
    ], backoff={"initial": 0.2, "maximum": 0.4}).start()
    stack.wait_ready()

    def restarted_and_healthy():
        flaky = next(c for c in stack.state().components if c.name == "flaky")
        return flaky if flaky.restarts == 3 and flaky.pid else None

    flaky = wait_until(restarted_and_healthy, 10)
    # The fourth process stays up and is serving.
    assert wait_until(
        lambda: [e for _, n, p, e in stack.recorded() if n == "flaky" and p == flaky.pid
                 and e == "serving"], 5,
    )
    stack.proc.send_signal(signal.SIGTERM)
    code, records, _ = stack.finish()
    assert code == 0
    exits = [r for r in records if r.get("event") == "child_exited"]
    assert [r["child"] for r in exits] == ["flaky"] * 3
    assert [r["restart_in_s"] for r in exits] == [0.2, 0.4, 0.4]
    assert all(r["returncode"] == 3 and r["level"] == "warning" for r in exits)
    restarts = [r for r in records if r.get("event") == "child_restarted"]
    assert [r["restarts"] for r in restarts] == [1, 2, 3]
    flaky_pids = [p for _, n, p, e in stack.recorded() if n == "flaky" and e == "start"]
    assert len(set(flaky_pids)) == 4
    steady_starts = [e for _, n, _, e in stack.recorded() if n == "steady" and e == "start"]
    assert len(steady_starts) == 1


def test_backoff_resets_after_a_long_healthy_run(stacks, tmp_path):
    stack = make(stacks, tmp_path, [{"name": "flaky", "crash_times": 2, "crash_after": 1.0}],
                 backoff={"initial": 0.2, "maximum": 5, "reset_after": 0.4}).start()
    stack.wait_ready()
    wait_until(lambda: stack.state().components[0].restarts == 2, 10)
    stack.proc.send_signal(signal.SIGTERM)
    _, records, _ = stack.finish()
    delays = [r["restart_in_s"] for r in records if r.get("event") == "child_exited"]
    assert delays == [0.2, 0.2]


# -- no orphans --------------------------------------------------------------------------
def test_sigkill_of_the_supervisor_takes_every_child_down(stacks, tmp_path):
    stack = make(stacks, tmp_path, [{"name": "a"}, {"name": "b"}, {"name": "c"}]).start()
    stack.wait_ready()
    pids = stack.pids()
    assert len(pids) == 3 and all(is_running(p) for p in pids.values())
    stack.proc.kill()
    stack.proc.wait()
    assert wait_until(lambda: all_gone(pids.values()), 3)


# -- detach, status, down ------------------------------------------------------------------
def cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lockgate.cli.main", *args],
        capture_output=True, text=True, timeout=timeout,
    )


def test_detach_status_down_round_trip(stacks, tmp_path):
    from lockgate.stack.detach import start_detached

    stack = make(stacks, tmp_path, [{"name": "alpha"}, {"name": "beta"}])
    ready = start_detached(
        stack.argv(), state_path=stack.state_path, log_path=tmp_path / "logs" / "supervisor.log",
        timeout=20,
    )
    assert ready.state == state_file.READY and is_running(ready.pid)
    assert os.getpgid(ready.pid) == ready.pid  # its own session and group
    pids = stack.pids()
    try:
        done = cli("status", "--data-dir", str(tmp_path), "--json")
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["running"] and report["healthy"] and report["pid"] == ready.pid
        assert [(c["name"], c["healthy"]) for c in report["components"]] == [
            ("alpha", True), ("beta", True)
        ]

        Path(f"{stack.events}.beta.sick").touch()
        done = cli("status", "--data-dir", str(tmp_path))
        assert done.returncode == 1
        assert "UNHEALTHY" in done.stdout and "beta" in done.stdout
        Path(f"{stack.events}.beta.sick").unlink()

        again = cli("up", "--detach", "--data-dir", str(tmp_path))
        assert again.returncode == 1 and "already running" in again.stderr
    finally:
        done = cli("down", "--data-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert f"Lockgate stopped (supervisor pid {ready.pid})" in done.stdout
    assert not is_running(ready.pid)
    assert wait_until(lambda: all_gone(pids.values()), 3)
    assert not stack.state_path.exists()
    assert cli("status", "--data-dir", str(tmp_path)).returncode == 3
    log = (tmp_path / "logs" / "supervisor.log").read_text()
    assert '"event":"ready"' in log and '"event":"stopped"' in log


def test_detach_reports_a_failed_start(stacks, tmp_path):
    from lockgate.stack.detach import DetachError, start_detached

    stack = make(stacks, tmp_path, [{"name": "broken", "exit_now": 4}])
    with pytest.raises(DetachError) as failure:
        start_detached(stack.argv(), state_path=stack.state_path,
                       log_path=tmp_path / "logs" / "supervisor.log", timeout=20)
    assert "supervisor exit code 1" in str(failure.value)
    assert "broken exited with code 4 while starting" in str(failure.value)


# -- usage against a fake gateway --------------------------------------------------
ADMIN = "lg_admin_secret_for_tests"


@pytest.fixture
def gateway():
    from google.protobuf.timestamp_pb2 import Timestamp

    from lockgate.common.v1 import common_pb2
    from lockgate.ledger.v1 import ledger_service_pb2 as ledger_pb
    from lockgate.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc

    def authorized(context) -> bool:
        if dict(context.invocation_metadata()).get("authorization") != f"Bearer {ADMIN}":
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid API key")
        return True

    entries = [
        ledger_pb.UsageEntry(
            request_id=f"req-{i}", alias="demo", provider_model="sim-small",
            usage=common_pb2.TokenUsage(input_tokens=10 + i, output_tokens=20 + i),
            latency_ms=5 * i, status="ok", create_time=Timestamp(seconds=1_700_000_000 + i),
        )
        for i in range(5)
    ]

    class Ledger(ledger_grpc.LedgerServiceServicer):
        def ListUsage(self, request, context):
            authorized(context)
            start = int(request.page_token or 0)
            end = start + (request.page_size or 50)
            return ledger_pb.ListUsageResponse(
                entries=entries[start:end],
                next_page_token=str(end) if end < len(entries) else "",
            )

    server = grpc.server(futures.ThreadPoolExecutor(4))
    ledger_grpc.add_LedgerServiceServicer_to_server(Ledger(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0)


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.delenv("LOCKGATE_URL", raising=False)
    monkeypatch.setenv("LOCKGATE_KEY", ADMIN)
    monkeypatch.setenv("LOCKGATE_DATA_DIR", str(tmp_path))


def test_usage_table_json_lines_and_paging(gateway, env, capsys):
    from lockgate.cli.main import main

    assert main(["usage", "--url", gateway]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["TIME", "REQUEST", "ID", "ALIAS", "PROVIDER", "MODEL", "IN",
                                "OUT", "LATENCY", "MS", "STATUS"]
    assert len(lines) == 6 and "req-4" in lines[5] and "sim-small" in lines[5]

    assert main(["usage", "--url", gateway, "--json", "--limit", "3"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["request_id"] for r in rows] == ["req-0", "req-1", "req-2"]
    assert rows[1]["usage"]["input_tokens"] == "11"  # proto field names, int64 as string


def test_grpc_errors_are_one_clear_line(gateway, env, capsys, monkeypatch):
    from lockgate.cli.main import main

    monkeypatch.setenv("LOCKGATE_KEY", "lg_wrong")
    assert main(["usage", "--url", gateway]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lockgate: UNAUTHENTICATED: invalid API key")
    assert err.count("\n") == 1 and "Traceback" not in err

    assert main(["usage", "--url", f"127.0.0.1:{free_port()}", "--timeout", "2"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lockgate: UNAVAILABLE") and err.count("\n") == 1
