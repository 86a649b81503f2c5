"""Entry point of the `lockgate` command (console script and `python -m lockgate.cli.main`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lockgate.cli import (
    apis,
    audit,
    budgets,
    calls,
    down,
    keys,
    limits,
    policy,
    prices,
    routes,
    service_accounts,
    sim,
    status,
    subscriptions,
    teams,
    tenants,
    up,
    usage,
    users,
    versions,
    whoami,
)
from lockgate.cli.errors import CliError

COMMANDS = (
    up, down, status, whoami, tenants, teams, users, service_accounts, keys, audit, usage, calls,
    routes, policy, sim, apis, versions, subscriptions, limits, prices,
    budgets,
)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("lockgate")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lockgate",
        description="Lockgate: an LLM gateway with API governance.",
    )
    parser.add_argument("--version", action="version", version=f"lockgate {version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except CliError as exc:
        print(f"lockgate: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
