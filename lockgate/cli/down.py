"""`lockgate down`: stop a stack started with `lockgate up` (usually --detach)."""

from __future__ import annotations

import argparse

from lockgate.cli.options import add_data_dir, layout_from


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "down",
        help="stop the running stack",
        description="Send SIGTERM to the stack's supervisor and wait until it has stopped "
        "every component; kill it after --timeout seconds.",
    )
    add_data_dir(parser)
    parser.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                        help="seconds to wait before killing the stack (30)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from lockgate.stack.control import stop

    layout = layout_from(args)
    result = stop(layout.state_path, timeout=args.timeout)
    if result is None:
        print(f"Lockgate is not running (data dir {layout.data_dir}).")
    elif result.graceful:
        print(f"Lockgate stopped (supervisor pid {result.pid}).")
    else:
        print(f"Lockgate did not stop within {args.timeout:g} s; killed supervisor {result.pid}.")
    return 0
