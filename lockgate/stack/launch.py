"""Running the real Lockgate stack for a layout, in the foreground or detached.

The glue between `lockgate up` (arguments, messages) and the generic pieces:
it prepares the data directory and Envoy's config, builds the children,
runs the supervisor, and prints the endpoint and a newly created admin key.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from lockgate.stack import state as state_file
from lockgate.stack.children import build_children
from lockgate.stack.layout import SERVICES, StackLayout


class LaunchError(Exception):
    """The stack cannot be started as configured (message says why)."""


def prepare(layout: StackLayout) -> None:
    """Create the data directory tree and render run/envoy.yaml."""
    if layout.gateway_config is not None and not layout.gateway_config.is_file():
        raise LaunchError(f"gateway config {layout.gateway_config} does not exist")
    for path in (layout.data_dir, layout.logs_dir, layout.run_dir):
        path.mkdir(parents=True, exist_ok=True)
    from lockgate.stack.envoy_config import render

    layout.envoy_config_path.write_text(render(layout))


def check_not_running(layout: StackLayout) -> None:
    running = state_file.read_running(layout.state_path)
    if running is not None:
        raise LaunchError(
            f"Lockgate is already running from {layout.data_dir} (pid {running.pid});"
            " stop it with `lockgate down`"
        )


def endpoint_message(layout: StackLayout) -> str:
    url = layout.http_url
    return f"Lockgate is up: {url}  (OpenAI base URL {url}/v1)"


def admin_key_message(path: Path) -> str | None:
    """The one-time admin key line, or None when there is no key file."""
    try:
        key = path.read_text().strip()
    except OSError:
        return None
    return f"Admin API key (shown once, saved in {path}): {key}" if key else None


def run_foreground(
    layout: StackLayout,
    *,
    startup_timeout: float = 60.0,
    show_admin_key: bool = True,
    out: TextIO | None = None,
) -> int:
    """Supervise the stack until a signal stops it (0) or it fails to start (1)."""
    from lockgate.logs import setup_logging
    from lockgate.stack.supervisor import Supervisor

    out = out or sys.stdout
    setup_logging("supervisor", layout.log_level)
    check_not_running(layout)
    key_existed = layout.admin_key_path.exists()
    prepare(layout)

    def on_ready() -> None:
        print(endpoint_message(layout), file=out, flush=True)
        if show_admin_key and not key_existed:
            message = admin_key_message(layout.admin_key_path)
            if message:
                print(message, file=out, flush=True)
        if show_admin_key:  # a terminal is watching, not `up --detach`
            print(f"Logs in {layout.logs_dir}; Ctrl-C stops the stack.", file=out, flush=True)

    supervisor = Supervisor(
        build_children(layout),
        logs_dir=layout.logs_dir,
        state_path=layout.state_path,
        data_dir=layout.data_dir,
        http_url=layout.http_url,
        ports=layout.ports(),
        startup_timeout=startup_timeout,
        on_ready=on_ready,
    )
    code = asyncio.run(supervisor.run())
    if code != 0:
        raise LaunchError(supervisor.error or "the stack failed to start")
    return code


def run_detached(
    layout: StackLayout,
    argv: Sequence[str],
    *,
    startup_timeout: float = 60.0,
    out: TextIO | None = None,
) -> int:
    """Start `argv` (a foreground `lockgate up` for this layout) in the background,
    wait until it is ready, print the endpoint (and a new admin key)."""
    from lockgate.stack.detach import DetachError, start_detached

    out = out or sys.stdout
    check_not_running(layout)
    if layout.gateway_config is not None and not layout.gateway_config.is_file():
        raise LaunchError(f"gateway config {layout.gateway_config} does not exist")
    key_existed = layout.admin_key_path.exists()
    log_path = layout.log_path("supervisor")
    # Metrics ports have no flags: hand them over through the environment.
    env = dict(os.environ)
    env.update({f"LOCKGATE_{n.upper()}_METRICS_PORT": str(layout.metrics_port(n)) for n in SERVICES})
    try:
        ready = start_detached(
            argv,
            state_path=layout.state_path,
            log_path=log_path,
            timeout=startup_timeout + 30,
            env=env,
        )
    except DetachError as exc:
        raise LaunchError(str(exc)) from None
    print(endpoint_message(layout), file=out)
    if not key_existed:
        message = admin_key_message(layout.admin_key_path)
        if message:
            print(message, file=out)
    print(
        f"Running in the background (supervisor pid {ready.pid}, log {log_path}); "
        "`lockgate status` to check, `lockgate down` to stop.",
        file=out,
    )
    return 0


def foreground_argv(layout: StackLayout, startup_timeout: float) -> list[str]:
    """The `lockgate up` command line a detached supervisor runs: every layout
    value spelled out, so it cannot drift from what this process resolved."""
    argv = [
        sys.executable, "-m", "lockgate.cli.main", "up",
        "--data-dir", str(layout.data_dir),
        "--port", str(layout.http_port),
        "--admin-port", str(layout.envoy_admin_port),
        "--auth-port", str(layout.auth_port),
        "--router-port", str(layout.router_port),
        "--ledger-port", str(layout.ledger_port),
        "--registry-port", str(layout.registry_port),
        "--sim-port", str(layout.sim_port),
        "--max-request-bytes", str(layout.max_request_bytes),
        "--log-level", layout.log_level,
        "--processes", layout.processes,
        "--scheduling", layout.scheduling,
        "--timeout", f"{startup_timeout:g}",
        "--background",
    ]
    if layout.gateway_config is not None:
        argv += ["--config", str(layout.gateway_config)]
    return argv
