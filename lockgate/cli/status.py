"""`lockgate status`: is the stack up, and is every component healthy?

Exit codes for scripts: 0 all healthy, 1 running but not (all) healthy, 3 not running.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from lockgate.cli.errors import CliError
from lockgate.cli.options import add_data_dir, layout_from
from lockgate.cli.table import format_table

NOT_RUNNING = 3


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "status",
        help="show the running stack and its health",
        description="Read <data dir>/run/stack.json, check the supervisor and each "
        "component's health. Exit 0 when all are healthy, 1 otherwise, 3 when no stack runs.",
    )
    add_data_dir(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from lockgate.stack import state as state_file
    from lockgate.stack.control import probe

    layout = layout_from(args)
    try:
        current = state_file.read(layout.state_path)
    except state_file.StateError as exc:
        raise CliError(str(exc)) from None
    if current is None or not current.alive():
        if args.json:
            print(json.dumps({"running": False, "data_dir": str(layout.data_dir)}))
        else:
            print(f"Lockgate is not running (data dir {layout.data_dir}).")
        return NOT_RUNNING

    components = asyncio.run(probe(current))
    healthy = current.state == state_file.READY and all(c.healthy for c in components)
    if args.json:
        print(json.dumps({
            "running": True,
            "healthy": healthy,
            "state": current.state,
            "pid": current.pid,
            "started_at": current.started_at,
            "data_dir": current.data_dir,
            "http_url": current.http_url,
            "ports": current.ports,
            "components": [
                {"name": c.name, "pid": c.pid, "healthy": c.healthy, "restarts": c.restarts,
                 "endpoint": c.endpoint, "log": c.log}
                for c in components
            ],
        }, indent=2))
    else:
        print(f"Lockgate {current.state} (supervisor pid {current.pid}, since {current.started_at})")
        if current.http_url:
            print(f"Endpoint: {current.http_url}  (OpenAI base URL {current.http_url}/v1)")
        print()
        rows = [
            (c.name, c.pid or "-", "healthy" if c.healthy else "UNHEALTHY", c.restarts, c.endpoint)
            for c in components
        ]
        print(format_table(("COMPONENT", "PID", "HEALTH", "RESTARTS", "ENDPOINT"), rows))
    return 0 if healthy else 1
