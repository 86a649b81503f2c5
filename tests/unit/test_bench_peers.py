"""`make bench-peers` pieces that run without installing anything: the
comparison arithmetic, issue 7's targets, peer configuration, install reuse,
peer process lifecycle (real processes), and wrk's extra headers (real wrk)."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socketserver
import stat
import sys
import threading
import time

import pytest
import yaml

from bench import peer_install, peer_report, peer_servers
from lockgate.stack.ephemeral import free_ports


def wrk_result(rps: float, p50: float, p99: float, errors: int = 0) -> dict:
    return {"requests": int(rps * 10), "rps": rps, "p50_ms": p50, "p90_ms": p50, "p99_ms": p99,
            "errors": errors}


def measured(lockgate_rps: float = 400.0, lockgate_p50: float = 5.0, lockgate_p99: float = 60.0,
             lockgate_errors: int = 0) -> dict[str, dict]:
    return {
        "direct": wrk_result(4000.0, 0.25, 2.0),
        "lockgate": wrk_result(lockgate_rps, lockgate_p50, lockgate_p99, lockgate_errors),
        "litellm": wrk_result(160.0, 20.0, 40.0),
        "portkey": wrk_result(500.0, 2.5, 9.0),
    }


# -- comparison ---------------------------------------------------------------------


def test_ratio_rounds_and_has_no_value_over_zero():
    assert peer_report.ratio(400.0, 160.0) == 2.5
    assert peer_report.ratio(1.0, 3.0) == 0.333
    assert peer_report.ratio(5.0, 0.0) is None


def test_compare_adds_ratios_to_direct_and_lockgate_over_each_peer():
    row = peer_report.compare(50, measured())
    assert row["concurrency"] == 50
    assert "vs_direct_rps" not in row["direct"]
    assert row["lockgate"]["vs_direct_rps"] == 0.1
    assert row["lockgate"]["added_p50_ms"] == 4.75
    assert row["lockgate"]["added_p99_ms"] == 58.0
    assert row["litellm"]["vs_direct_rps"] == 0.04
    assert row["portkey"]["added_p50_ms"] == 2.25
    assert row["lockgate_over_litellm_rps"] == 2.5
    assert row["lockgate_over_portkey_rps"] == 0.8


def test_compare_leaves_out_a_contender_not_measured():
    runs = measured()
    del runs["portkey"]
    row = peer_report.compare(1, runs)
    assert "portkey" not in row and "lockgate_over_portkey_rps" not in row
    assert row["lockgate_over_litellm_rps"] == 2.5


def test_compare_does_not_change_the_measurements():
    runs = measured()
    before = json.dumps(runs, sort_keys=True)
    peer_report.compare(10, runs)
    assert json.dumps(runs, sort_keys=True) == before


# -- targets ------------------------------------------------------------------------


def checks_by_name(rows: list[dict]) -> dict[str, dict]:
    return {check["target"]: check for check in peer_report.targets(rows)}


def test_targets_report_what_is_not_met():
    rows = [peer_report.compare(1, measured()), peer_report.compare(50, measured())]
    checks = checks_by_name(rows)
    assert checks["c=50 Lockgate rps / portkey rps"] == {
        "target": "c=50 Lockgate rps / portkey rps", "required": ">= 2.5", "measured": 0.8,
        "met": False}
    assert checks["c=50 Lockgate rps / litellm rps"]["met"] is False
    assert checks["c=50 Lockgate p99 ms"]["measured"] == 60.0
    assert checks["c=50 Lockgate p99 ms"]["met"] is False
    assert checks["c=50 Lockgate errors"]["met"] is True
    assert checks["c=1 Lockgate added p50 ms over direct"]["measured"] == 4.75
    assert checks["c=1 Lockgate added p50 ms over direct"]["met"] is False


def test_targets_met_at_their_bounds():
    fast = measured(lockgate_rps=1440.0, lockgate_p50=1.25, lockgate_p99=50.0)
    checks = checks_by_name([peer_report.compare(1, fast), peer_report.compare(50, fast)])
    # 1440 / 500 = 2.88 >= 2.5; 1440 / 160 = 9.0 >= 9; p99 50 <= 50; added p50 1.0 <= 1.0
    assert all(check["met"] for check in checks.values()), checks


def test_targets_count_errors_and_skip_unmeasured_concurrencies():
    checks = checks_by_name([peer_report.compare(50, measured(lockgate_errors=3))])
    assert checks["c=50 Lockgate errors"] == {
        "target": "c=50 Lockgate errors", "required": "0", "measured": 3, "met": False}
    assert not any(name.startswith("c=1 ") for name in checks)
    assert peer_report.targets([peer_report.compare(10, measured())]) == []


def test_a_peer_that_served_nothing_fails_the_target():
    runs = measured()
    runs["portkey"] = wrk_result(0.0, 0.0, 0.0, errors=100)
    checks = checks_by_name([peer_report.compare(50, runs)])
    assert checks["c=50 Lockgate rps / portkey rps"]["measured"] is None
    assert checks["c=50 Lockgate rps / portkey rps"]["met"] is False


def test_table_has_a_line_per_contender_and_concurrency():
    text = peer_report.table([peer_report.compare(1, measured()), peer_report.compare(50, measured())])
    lines = text.splitlines()
    assert len(lines) == 1 + 2 * 4
    litellm_c50 = next(line.split() for line in lines if line.split()[:2] == ["50", "litellm"])
    assert litellm_c50 == ["50", "litellm", "160.0", "20.00", "40.00", "0", "0.040", "19.75", "2.50"]
    direct_c1 = next(line.split() for line in lines if line.split()[:2] == ["1", "direct"])
    assert direct_c1 == ["1", "direct", "4000.0", "0.25", "2.00", "0", "-", "-", "-"]


def test_targets_text_says_met_or_not():
    text = peer_report.targets_text(peer_report.targets([peer_report.compare(50, measured())]))
    assert "NOT met  c=50 Lockgate rps / portkey rps: 0.8 (target >= 2.5)" in text
    assert "    met  c=50 Lockgate errors: 0 (target 0)" in text


# -- peer configuration ---------------------------------------------------------------


def test_litellm_config_routes_the_alias_to_the_simulator(tmp_path):
    path = peer_servers.write_litellm_config(tmp_path / "litellm.yaml", "http://127.0.0.1:9/v1",
                                             "sk-bench-x")
    config = yaml.safe_load(path.read_text())
    assert config["model_list"] == [{
        "model_name": "demo",
        "litellm_params": {"model": "openai/sim-small", "api_base": "http://127.0.0.1:9/v1",
                           "api_key": "sim-unused"},
    }]
    assert config["general_settings"] == {"master_key": "sk-bench-x"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_peer_commands_and_headers(tmp_path):
    command = peer_servers.litellm_command(tmp_path / "litellm", tmp_path / "c.yaml", 4000)
    assert command[command.index("--num_workers") + 1] == "2"
    assert command[command.index("--port") + 1] == "4000"
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert peer_servers.litellm_env({})["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
    assert peer_servers.litellm_headers("sk-1") == {"Authorization": "Bearer sk-1"}
    assert peer_servers.portkey_command(tmp_path / "s.js", 8790)[1:] == [
        str(tmp_path / "s.js"), "--port=8790", "--headless"]
    assert peer_servers.portkey_headers("http://127.0.0.1:9/v1") == {
        "x-portkey-provider": "openai", "x-portkey-custom-host": "http://127.0.0.1:9/v1",
        "Authorization": "Bearer sim-unused"}


@pytest.mark.parametrize(("status", "body", "problem"), [
    (200, b'{"choices":[{"message":{"role":"assistant","content":"Hi."}}]}', None),
    (401, b'{"error":"no key"}', "status 401"),
    (200, b"<html>", "not an OpenAI chat completion"),
    (200, b'{"choices":[]}', "not an OpenAI chat completion"),
    (200, b'{"choices":[{"message":{"content":""}}]}', "empty completion"),
    (200, b'{"choices":[{"message":{"content":null}}]}', "empty completion"),
])
def test_valid_completion(status, body, problem):
    found = peer_servers.valid_completion(status, body)
    if problem is None:
        assert found is None
    else:
        assert found is not None and found.startswith(problem)


# -- install reuse --------------------------------------------------------------------


def test_litellm_is_reused_only_with_the_pinned_marker_and_executable(tmp_path):
    venv = peer_install.litellm_venv(tmp_path)
    (venv / "bin").mkdir(parents=True)
    assert not peer_install.litellm_installed(tmp_path)
    peer_install.litellm_executable(tmp_path).write_text("")
    assert not peer_install.litellm_installed(tmp_path)  # interrupted: no marker
    (venv / peer_install.LITELLM_MARKER).write_text("litellm[proxy]==0.0.1\n")
    assert not peer_install.litellm_installed(tmp_path)  # another pin
    (venv / peer_install.LITELLM_MARKER).write_text(peer_install.LITELLM_SPEC + "\n")
    assert peer_install.litellm_installed(tmp_path)
    assert peer_install.install_litellm(tmp_path) == peer_install.Installed(
        "litellm", peer_install.LITELLM_VERSION, reused=True)


def test_portkey_is_reused_only_at_the_pinned_version(tmp_path):
    package = peer_install.portkey_dir(tmp_path) / "node_modules" / peer_install.PORTKEY_PACKAGE
    assert peer_install.portkey_installed_version(tmp_path) is None
    (package / "build").mkdir(parents=True)
    (package / "package.json").write_text("{not json")
    assert peer_install.portkey_installed_version(tmp_path) is None
    (package / "package.json").write_text(json.dumps({"version": peer_install.PORTKEY_VERSION}))
    assert peer_install.portkey_installed_version(tmp_path) is None  # no server script
    peer_install.portkey_entry(tmp_path).write_text("")
    assert peer_install.portkey_installed_version(tmp_path) == peer_install.PORTKEY_VERSION
    assert peer_install.install_portkey(tmp_path).reused is True
    manifest = peer_install.portkey_manifest()
    assert manifest["dependencies"] == {"@portkey-ai/gateway": peer_install.PORTKEY_VERSION}


def test_a_failed_install_step_says_what_and_why():
    with pytest.raises(peer_install.PeerInstallError, match=r"(?s)LiteLLM proxy: .* exited with 3:\nboom"):
        peer_install._run("LiteLLM proxy", [sys.executable, "-c",
                                            "import sys; print('boom'); sys.exit(3)"])


# -- peer processes (real processes, no install) --------------------------------------

# A server whose worker is a child process, as uvicorn's are: stopping the peer
# must stop both.
SERVER_WITH_WORKER = """
import http.server, subprocess, sys
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
open(sys.argv[2], "w").write(str(worker.pid))
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])),
                                http.server.SimpleHTTPRequestHandler).serve_forever()
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purpose (its parent has not reaped it yet).
    try:
        with open(f"/proc/{pid}/stat") as stat_file:
            return stat_file.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_peer_process_stops_its_workers(tmp_path):
    (port,) = free_ports(1)
    pid_file = tmp_path / "worker.pid"
    peer = peer_servers.PeerProcess(
        "toy", [sys.executable, "-c", SERVER_WITH_WORKER, str(port), str(pid_file)],
        dict(os.environ), tmp_path / "toy.log")
    with peer:
        peer.wait_ready(f"http://127.0.0.1:{port}/", timeout=30)
        leader = peer.process.pid
        worker = int(pid_file.read_text())
        assert alive(leader) and alive(worker)
    deadline = time.monotonic() + 10
    while alive(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(worker)
    assert peer.process is None
    peer.stop()  # idempotent


def test_wait_ready_fails_early_with_the_log_when_the_peer_exits(tmp_path):
    (port,) = free_ports(1)
    peer = peer_servers.PeerProcess(
        "broken", [sys.executable, "-c", "import sys; print('bad config'); sys.exit(1)"],
        dict(os.environ), tmp_path / "broken.log")
    started = time.monotonic()
    with peer, pytest.raises(peer_servers.PeerError, match=r"(?s)broken exited.*bad config"):
        peer.wait_ready(f"http://127.0.0.1:{port}/", timeout=60)
    assert time.monotonic() - started < 30


# -- wrk's extra headers (real wrk) -------------------------------------------------------


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (make bench installs it)")
def test_wrk_sends_the_body_bearer_key_and_extra_headers():
    from bench.run import BODY, wrk

    seen: list[tuple[dict[str, str], bytes]] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if len(seen) < 5:
                seen.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Recorder)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1/chat/completions"
        result = wrk(url, 1, 1, "sk-key", {"x-portkey-provider": "openai",
                                           "x-portkey-custom-host": "http://127.0.0.1:9/v1"})
        with_headers = seen[:]
        seen.clear()
        plain = wrk(url, 1, 1, None)  # what `make bench` sends to the simulator
    finally:
        server.shutdown()
        server.server_close()
    assert result["requests"] > 0 and result["errors"] == 0
    assert plain["requests"] > 0 and plain["errors"] == 0
    headers, body = with_headers[0]
    assert body == BODY.encode()
    assert headers["authorization"] == "Bearer sk-key"
    assert headers["x-portkey-provider"] == "openai"
    assert headers["x-portkey-custom-host"] == "http://127.0.0.1:9/v1"
    assert headers["content-type"] == "application/json"
    plain_headers, plain_body = seen[0]
    assert plain_body == BODY.encode()
    assert "authorization" not in plain_headers
    assert not any(name.startswith("x-portkey") for name in plain_headers)
