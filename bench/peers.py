"""`make bench-peers`: S1 (unary chat) through Lockgate, LiteLLM proxy and
Portkey's gateway, all in front of the same simulator, in one run.

- installs the peers, pinned, into bench/.peers (ignored by git; reused when
  the pinned version is there): LiteLLM proxy from PyPI in its own virtualenv,
  Portkey's gateway from npm;
- starts one Lockgate stack (`lockgate up`, bench/gateway.yaml) governed as in
  `make bench` (tenant budget and rate limits, so every call pays for Admit and
  the rate limiter), LiteLLM proxy (2 workers, master key) and Portkey (OpenAI
  provider with the simulator as custom host), all pointed at the stack's
  simulator;
- checks that each answers a valid completion, then runs wrk with the same body
  at each concurrency, interleaved, in rounds (3 by default; each round starts
  with the next contender): direct, lockgate, litellm, portkey; each figure
  reported is its median over the rounds, each ratio the median of the ratios
  within a round (bench/rounds.py);
- writes bench/results/peers-latest.json and a dated copy, prints a table and
  issue 7's S1 targets, met or not.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

from bench import peer_install, peer_report, peer_servers, rounds
from bench.run import BODY, GATEWAY, RESULTS, ROOT, govern, wrk
from lockgate.stack.ephemeral import EphemeralStack, free_ports

PEERS_DIR = ROOT / ".peers"
WARMUP_SECONDS = 2
WARMUP_CONCURRENCY = 4


def _terminate_as_exit(signum: int, _frame: object) -> None:
    # SIGTERM unwinds like Ctrl-C, so every `with` stops its processes.
    raise SystemExit(128 + signum)


def _tool_version(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def _lockgate_revision() -> str:
    return _tool_version(["git", "-C", str(ROOT.parent), "rev-parse", "--short", "HEAD"])


def install() -> dict[str, str]:
    PEERS_DIR.mkdir(parents=True, exist_ok=True)
    versions = {}
    for installer, label in ((peer_install.install_litellm, "LiteLLM proxy"),
                             (peer_install.install_portkey, "Portkey gateway")):
        print(f"{label}: installing into {PEERS_DIR} if needed ...", flush=True)
        done = installer(PEERS_DIR)
        print(f"{label} {done.version}: {'reused' if done.reused else 'installed'}", flush=True)
        versions[done.name] = done.version
    return versions


def measure(args: argparse.Namespace, results: dict) -> None:
    logs = PEERS_DIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with EphemeralStack(config=GATEWAY) as stack, contextlib.ExitStack() as running:
        results["governance"] = govern(stack)
        litellm_port, portkey_port = free_ports(2)
        master_key = "sk-bench-" + secrets.token_hex(16)
        config = peer_servers.write_litellm_config(
            PEERS_DIR / "litellm-config.yaml", stack.sim_url, master_key)
        litellm = running.enter_context(peer_servers.PeerProcess(
            "LiteLLM proxy",
            peer_servers.litellm_command(peer_install.litellm_executable(PEERS_DIR), config,
                                         litellm_port),
            peer_servers.litellm_env(dict(os.environ)), logs / "litellm.log"))
        portkey = running.enter_context(peer_servers.PeerProcess(
            "Portkey gateway",
            peer_servers.portkey_command(peer_install.portkey_entry(PEERS_DIR), portkey_port),
            peer_servers.portkey_env(dict(os.environ)), logs / "portkey.log"))
        litellm.wait_ready(f"http://127.0.0.1:{litellm_port}/health/liveliness")
        portkey.wait_ready(f"http://127.0.0.1:{portkey_port}/")

        # name -> (URL, bearer key for wrk's Authorization, extra headers)
        contenders: dict[str, tuple[str, str | None, dict[str, str]]] = {
            "direct": (f"{stack.sim_url}/chat/completions", None, {}),
            "lockgate": (f"{stack.base_url}/chat/completions", stack.admin_key, {}),
            "litellm": (f"http://127.0.0.1:{litellm_port}/v1/chat/completions", None,
                        peer_servers.litellm_headers(master_key)),
            "portkey": (f"http://127.0.0.1:{portkey_port}/v1/chat/completions", None,
                        peer_servers.portkey_headers(stack.sim_url)),
        }
        results["contenders"] = {
            "direct": "the provider simulator's /v1/chat/completions",
            "lockgate": "Envoy -> auth (key, policy) -> router (Admit: budget, rate limits) -> "
                        "simulator, usage ledgered; admin key",
            "litellm": f"LiteLLM proxy, {peer_servers.LITELLM_WORKERS} uvicorn workers, master "
                       "key, no database; model `demo` = openai/sim-small at the simulator",
            "portkey": "Portkey gateway (Node, headless), x-portkey-provider: openai, "
                       "x-portkey-custom-host: the simulator",
        }
        for name, (url, key, headers) in contenders.items():
            auth = {"Authorization": f"Bearer {key}"} if key else {}
            peer_servers.check_completion(name, url, BODY, {**auth, **headers})
        print("every contender answers a valid completion; warming up ...", flush=True)
        for url, key, headers in contenders.values():
            wrk(url, WARMUP_CONCURRENCY, WARMUP_SECONDS, key, headers)
        names = list(contenders)
        for concurrency in args.concurrency:
            measured_rounds = []
            for round_ in range(args.rounds):
                # Each round starts with the next contender, so that none always
                # runs right after the same one (whose leftovers it would inherit).
                order = names[round_ % len(names):] + names[:round_ % len(names)]
                measured = {}
                for name in order:
                    url, key, headers = contenders[name]
                    measured[name] = wrk(url, concurrency, args.seconds, key, headers)
                measured_rounds.append(peer_report.compare(concurrency, measured))
                print(json.dumps(measured_rounds[-1]), flush=True)
            results["s1_unary_chat"].append(rounds.combine(measured_rounds))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="duration of each wrk run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds per concurrency; figures are their medians")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    for tool, hint in (("wrk", "apt-get install wrk; `make bench-peers` installs it"),
                       ("node", "Portkey's gateway runs on Node.js")):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed ({hint})", file=sys.stderr)
            return 2
    signal.signal(signal.SIGTERM, _terminate_as_exit)
    try:
        versions = install()
    except peer_install.PeerInstallError as error:
        print(f"bench-peers: install failed: {error}", file=sys.stderr)
        return 2
    results: dict = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "method": "wrk fixed concurrency, same run, same simulator (no artificial latency), "
                  "contenders interleaved per concurrency, in rounds; each figure the median "
                  "over the rounds, each ratio the median of the ratios within a round",
        "seconds_per_run": args.seconds,
        "rounds": args.rounds,
        "versions": {**versions, "lockgate": _lockgate_revision(),
                     "node": _tool_version(["node", "--version"]),
                     "wrk": _tool_version(["wrk", "--version"]).split(" Copyright")[0]},
        "s1_unary_chat": [],
    }
    try:
        measure(args, results)
    except peer_servers.PeerError as error:
        print(f"bench-peers: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # every process is stopped by now
        print("bench-peers: interrupted, nothing written", file=sys.stderr)
        return 130
    results["targets"] = peer_report.targets(results["s1_unary_chat"])
    RESULTS.mkdir(exist_ok=True)
    text = json.dumps(results, indent=2) + "\n"
    (RESULTS / "peers-latest.json").write_text(text)
    (RESULTS / f"peers-{time.strftime('%Y-%m-%d')}.json").write_text(text)
    print()
    print(f"medians over {args.rounds} round(s) of {args.seconds} s per contender and concurrency:")
    print(peer_report.table(results["s1_unary_chat"]))
    print()
    print(peer_report.targets_text(results["targets"]))
    print(f"wrote {RESULTS / 'peers-latest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
