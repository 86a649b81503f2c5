"""Options several commands share (data dir, gateway address, admin key), and
how they resolve against environment variables and a running stack."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from lockgate.cli.errors import CliError


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", type=Path, default=None,
        help="stack data directory (env LOCKGATE_DATA_DIR, default ./.lockgate)",
    )


def layout_from(args: argparse.Namespace, **overrides: object):
    """The StackLayout for these arguments (env and defaults underneath)."""
    from lockgate.stack.layout import LayoutError, StackLayout

    try:
        return StackLayout.from_sources(data_dir=args.data_dir, **overrides)
    except LayoutError as exc:
        raise CliError(str(exc), 2) from None


def add_gateway_options(parser: argparse.ArgumentParser, key_flag: str = "--key") -> None:
    """--data-dir, --url, the admin key flag and --timeout. Commands whose own
    `--key` names a key they act on (budgets and limits set) pass
    key_flag="--admin-key"."""
    add_data_dir(parser)
    parser.add_argument(
        "--url", default=None,
        help="gateway address, host:port or http(s)://host:port (env LOCKGATE_URL;"
        " default: the running stack's, else 127.0.0.1:8080)",
    )
    parser.add_argument(
        key_flag, dest="key", default=None,
        help="admin API key (env LOCKGATE_KEY; default: <data dir>/admin.key)",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per call (10)")


def gateway_url(args: argparse.Namespace) -> str:
    """--url, LOCKGATE_URL, the running stack's port, or the configured HTTP port."""
    if args.url:
        return args.url
    if os.environ.get("LOCKGATE_URL"):
        return os.environ["LOCKGATE_URL"]
    from lockgate.stack import state as state_file

    layout = layout_from(args)
    running = state_file.read_running(layout.state_path)
    if running is not None and running.http_url:
        return running.http_url
    return f"127.0.0.1:{layout.http_port}"


def admin_key(args: argparse.Namespace) -> str:
    """--key, LOCKGATE_KEY, or the key file the first start wrote."""
    if args.key:
        return args.key
    if os.environ.get("LOCKGATE_KEY"):
        return os.environ["LOCKGATE_KEY"]
    path = layout_from(args).admin_key_path
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        raise CliError(
            f"no admin key: {path} does not exist; pass --key or set LOCKGATE_KEY"
        ) from None
    except OSError as exc:
        raise CliError(f"cannot read admin key {path}: {exc.strerror}") from None
    if not key:
        raise CliError(f"admin key file {path} is empty")
    return key
