"""The peer gateways of `make bench-peers` as processes: their configuration,
command lines and request headers, started in their own process group and
stopped with it (no orphans, also on Ctrl-C or an error).

Every peer points at the same upstream as Lockgate, the stack's provider
simulator, and answers the same OpenAI request body (model alias `demo`).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

ALIAS = "demo"  # the model the bench body names, Lockgate's alias in bench/gateway.yaml
UPSTREAM_MODEL = "sim-small"  # the deployment model Lockgate sends upstream for it
LITELLM_WORKERS = 2  # as in issue 7's reference measurement on this machine


class PeerError(RuntimeError):
    """A peer did not start, or did not answer a valid completion."""


def litellm_config(sim_url: str, master_key: str) -> dict:
    """LiteLLM proxy config: the alias on an OpenAI-compatible deployment at the
    simulator, key auth with a master key (no database: nothing to provision)."""
    return {
        "model_list": [{
            "model_name": ALIAS,
            "litellm_params": {
                "model": f"openai/{UPSTREAM_MODEL}",
                "api_base": sim_url,
                "api_key": "sim-unused",  # the simulator asks for no key
            },
        }],
        "general_settings": {"master_key": master_key},
    }


def write_litellm_config(path: Path, sim_url: str, master_key: str) -> Path:
    path.write_text(yaml.safe_dump(litellm_config(sim_url, master_key), sort_keys=False))
    path.chmod(0o600)  # it holds the master key
    return path


def litellm_command(executable: Path, config: Path, port: int,
                    workers: int = LITELLM_WORKERS) -> list[str]:
    return [str(executable), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
            "--num_workers", str(workers), "--telemetry", "False"]


def litellm_env(base: dict[str, str]) -> dict[str, str]:
    # Use the price map the package ships instead of fetching it at start-up
    # (there is no internet here), and log errors only, as in production.
    return {**base, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}


def litellm_headers(master_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {master_key}"}


def portkey_command(entry: Path, port: int) -> list[str]:
    # --headless: no UI or log-stream endpoints, the gateway alone.
    return ["node", str(entry), f"--port={port}", "--headless"]


def portkey_env(base: dict[str, str]) -> dict[str, str]:
    return {**base, "NODE_ENV": "production"}


def portkey_headers(sim_url: str) -> dict[str, str]:
    """Portkey routes by headers: provider `openai` at a custom host (the
    simulator; 127.0.0.1 is in its default trusted hosts), with the provider key
    in Authorization."""
    return {"x-portkey-provider": "openai", "x-portkey-custom-host": sim_url,
            "Authorization": "Bearer sim-unused"}


def valid_completion(status: int, body: bytes) -> str | None:
    """Why a chat completion answer is not a valid one, or None if it is."""
    if status != 200:
        return f"status {status}: {body[:300]!r}"
    try:
        reply = json.loads(body)
        content = reply["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return f"not an OpenAI chat completion: {body[:300]!r}"
    if not isinstance(content, str) or not content:
        return f"empty completion: {body[:300]!r}"
    return None


def check_completion(name: str, url: str, body: str, headers: dict[str, str]) -> None:
    request = urllib.request.Request(
        url, data=body.encode(), method="POST",
        headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, payload = error.code, error.read()
    except OSError as error:
        raise PeerError(f"{name}: POST {url} failed: {error}") from error
    problem = valid_completion(status, payload)
    if problem is not None:
        raise PeerError(f"{name}: POST {url}: {problem}")


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the bench process dies, even by
    SIGKILL, so a peer never outlives the run (Linux prctl PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


class PeerProcess:
    """One peer server: started in its own session (so its workers form one
    process group), readiness polled over HTTP, stopped as a group."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path):
        self.name = name
        self.command = command
        self.env = env
        self.log = log
        self.process: subprocess.Popen | None = None

    def start(self) -> PeerProcess:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                self.command, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        return self

    def wait_ready(self, url: str, timeout: float = 120.0) -> None:
        """Until GET url answers below 500; fails early if the process exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise PeerError(f"{self.name} exited during start-up:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status < 500:
                        return
            except urllib.error.HTTPError as error:
                if error.code < 500:
                    return
            except OSError:
                pass
            time.sleep(0.25)
        raise PeerError(f"{self.name} not ready at {url} after {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        # The whole group: uvicorn's worker processes, not just their parent.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                process.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        # The leader may be gone while workers linger: make sure none survive.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    def __enter__(self) -> PeerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
