"""`lockgate sim`: run the built-in provider simulator (an OpenAI-compatible
fake provider, so the gateway works without any provider key). `lockgate up`
runs it as one of its children."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from lockgate.cli.errors import CliError


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "sim",
        help="run the provider simulator",
        description="Serve the OpenAI-compatible provider simulator until SIGTERM / Ctrl-C.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=18090, help="port (18090)")
    parser.add_argument("--config", type=Path, default=None, metavar="FILE",
                        help="simulator config YAML (latency, token rates, faults)")
    parser.add_argument(
        "--log-level", default=None, choices=["debug", "info", "warning", "error"],
        help="log level (env LOCKGATE_LOG_LEVEL, info)",
    )
    parser.set_defaults(handler=run)


def load_config(path: Path | None):
    """The SimConfig from a YAML file, or the defaults; a clear error otherwise."""
    import yaml

    from lockgate.sim.config import SimConfig

    if path is None:
        return SimConfig()
    try:
        return SimConfig.from_file(path)
    except OSError as exc:
        raise CliError(f"cannot read simulator config {path}: {exc.strerror}", 2) from None
    except yaml.YAMLError as exc:
        raise CliError(f"simulator config {path} is not valid YAML: {exc}", 2) from None
    except ValueError as exc:  # pydantic's ValidationError included
        raise CliError(f"invalid simulator config {path}:\n{exc}", 2) from None


def run(args: argparse.Namespace) -> int:
    from lockgate.logs import setup_logging
    from lockgate.sim.server import run as serve

    config = load_config(args.config)
    setup_logging("sim", args.log_level or os.environ.get("LOCKGATE_LOG_LEVEL") or "info")
    serve(args.host, args.port, config)
    return 0
