"""`lockgate up`: start the whole gateway (Envoy, services, simulator) and keep it running."""

from __future__ import annotations

import argparse
from pathlib import Path

from lockgate.cli.errors import CliError
from lockgate.cli.options import add_data_dir, layout_from

#: Flag -> layout field (flags override LOCKGATE_* environment variables).
PORT_FLAGS = {
    "--port": ("http_port", "public HTTP/gRPC port of Envoy (env LOCKGATE_HTTP_PORT, 8080)"),
    "--admin-port": ("envoy_admin_port", "Envoy admin port (env LOCKGATE_ENVOY_ADMIN_PORT, 9901)"),
    "--auth-port": ("auth_port", "auth gRPC port (env LOCKGATE_AUTH_GRPC_PORT, 50061)"),
    "--auth-check-port": (
        "auth_check_port", "auth HTTP access-check port (env LOCKGATE_AUTH_CHECK_PORT, 50065)"
    ),
    "--ledger-admit-port": (
        "ledger_admit_port", "ledger HTTP Admit port (env LOCKGATE_LEDGER_ADMIT_PORT, 50066)"
    ),
    "--router-port": ("router_port", "router gRPC port (env LOCKGATE_ROUTER_GRPC_PORT, 50062)"),
    "--ledger-port": ("ledger_port", "ledger gRPC port (env LOCKGATE_LEDGER_GRPC_PORT, 50063)"),
    "--router-http-port": (
        "router_http_port", "router HTTP port, behind Envoy (env LOCKGATE_ROUTER_HTTP_PORT, 50067)"
    ),
    "--registry-port": (
        "registry_port", "registry gRPC port (env LOCKGATE_REGISTRY_GRPC_PORT, 50064)"
    ),
    "--sim-port": ("sim_port", "provider simulator port (env LOCKGATE_SIM_PORT, 18090)"),
}


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "up",
        help="start the gateway stack",
        description="Start Envoy, the services and the provider simulator on 127.0.0.1, "
        "wait until all are healthy, and supervise them until Ctrl-C / SIGTERM.",
    )
    add_data_dir(parser)
    for flag, (dest, text) in PORT_FLAGS.items():
        parser.add_argument(flag, dest=dest, type=int, default=None, metavar="PORT", help=text)
    parser.add_argument(
        "--config", dest="gateway_config", type=Path, default=None, metavar="FILE",
        help="gateway config YAML for the router (default: the embedded demo config)",
    )
    parser.add_argument(
        "--max-request-bytes", type=int, default=None, metavar="N",
        help="largest request body Envoy accepts (env LOCKGATE_MAX_REQUEST_BYTES, 4 MiB)",
    )
    parser.add_argument(
        "--log-level", default=None, choices=["debug", "info", "warning", "error"],
        help="log level of every service (env LOCKGATE_LOG_LEVEL, info)",
    )
    parser.add_argument(
        "--processes", default=None, choices=["grouped", "separate"],
        help="grouped: the four services in two processes, ≈ 180 MB less memory;"
        " separate: one process each (env LOCKGATE_PROCESSES, grouped)",
    )
    parser.add_argument(
        "--scheduling", default=None, choices=["batch", "normal"],
        help="batch: Envoy, the ledger, the registry and the simulator under Linux's"
        " SCHED_BATCH, so they do not preempt the router mid-call (more throughput on a"
        " busy machine);"
        " normal: the default policy for all (env LOCKGATE_SCHEDULING, batch)",
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, metavar="SECONDS",
        help="how long to wait for every component to be healthy (60)",
    )
    parser.add_argument(
        "-d", "--detach", action="store_true",
        help="run in the background; `lockgate status` / `lockgate down` manage it",
    )
    # Set by --detach for the background supervisor: the parent prints the admin key.
    parser.add_argument("--background", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from lockgate.stack.launch import (
        LaunchError,
        foreground_argv,
        run_detached,
        run_foreground,
    )

    overrides = {dest: getattr(args, dest) for dest, _ in PORT_FLAGS.values()}
    layout = layout_from(
        args,
        gateway_config=args.gateway_config,
        max_request_bytes=args.max_request_bytes,
        log_level=args.log_level,
        processes=args.processes,
        scheduling=args.scheduling,
        **overrides,
    )
    try:
        if args.detach:
            return run_detached(
                layout, foreground_argv(layout, args.timeout), startup_timeout=args.timeout
            )
        return run_foreground(
            layout, startup_timeout=args.timeout, show_admin_key=not args.background
        )
    except LaunchError as exc:
        raise CliError(str(exc)) from None
