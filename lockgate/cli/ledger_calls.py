"""What the ledger commands share (budgets, limits, prices, calls): one
LedgerService call with the admin key, its answer as JSON or text, and the scope flags of `budgets set` and
`limits set` (--tenant | --team ID | --key ID | their own last one)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from lockgate.cli.admin import print_json
from lockgate.cli.errors import CliError
from lockgate.cli.options import add_gateway_options


def invoke(args: argparse.Namespace, method: str, request):
    """LedgerService/<method>(request) through the gateway; a failure is CliError."""
    from lockgate.cli.gateway import bearer, call, channel
    from lockgate.cli.options import admin_key, gateway_url
    from lockgate.ledger.v1 import ledger_service_pb2_grpc as pb_grpc

    key, url = admin_key(args), gateway_url(args)
    with channel(url) as ch:
        rpc = getattr(pb_grpc.LedgerServiceStub(ch), method)
        return call(lambda: rpc(request, metadata=bearer(key), timeout=args.timeout))


def respond(args: argparse.Namespace, reply, text: Callable[[], str]) -> int:
    """The reply as JSON with --json, else `text()` for people; exit code 0."""
    if args.json:
        print_json(reply)
    else:
        print(text())
    return 0


def add_scope_flags(parser: argparse.ArgumentParser, last: str, metavar: str, help: str) -> None:
    """--tenant | --team ID | --key ID | --<last> <metavar>, exactly one."""
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--tenant", action="store_true", help="the caller's whole tenant")
    target.add_argument("--team", metavar="ID", help="a team (team_…)")
    target.add_argument("--key", dest="key_id", metavar="ID", help="an API key (key_…)")
    target.add_argument(f"--{last}", metavar=metavar, help=help)


def scope_of(args: argparse.Namespace, last: str) -> tuple[str, str]:
    """(scope, scope id) from the flags of add_scope_flags; "" for the tenant."""
    if args.tenant:
        return "tenant", ""
    for scope, value in (("team", args.team), ("key", args.key_id), (last, getattr(args, last))):
        if value is not None:
            if not value.strip():
                raise CliError(f"--{scope} needs a value", 2)
            return scope, value.strip()
    raise CliError("give one of --tenant, --team, --key or --" + last, 2)


def add_list_and_delete(actions, setter: argparse.ArgumentParser, *, noun: str,
                        scopes: tuple[str, ...], id_dest: str, id_help: str,
                        run_list: Callable, run_delete: Callable) -> None:
    """`list` and `delete` beside a scoped `set`, and the options all three share."""
    listing = actions.add_parser("list", help=f"list the tenant's {noun}s")
    listing.add_argument("--scope", choices=scopes, default="", help="only this scope")
    listing.set_defaults(handler=run_list)
    delete = actions.add_parser("delete", help=f"remove a {noun}")
    delete.add_argument(id_dest, metavar="ID", help=id_help)
    delete.set_defaults(handler=run_delete)
    for sub in (setter, listing, delete):
        sub.add_argument("--json", action="store_true", help="print the response as JSON")
    # `set --key ID` names the key the setting is for, so there the admin key is --admin-key.
    add_gateway_options(setter, key_flag="--admin-key")
    add_gateway_options(listing)
    add_gateway_options(delete)
