"""`lockgate prices list|set|delete`: the gateway's price book (LedgerService).

Prices are USD per million tokens, given and shown as exact decimals. `set` adds
a version effective from a UTC date (today by default; never in the past, so
past usage keeps its price); `delete` removes an admin version not in force yet.
Changing prices needs a platform_admin key; any key may list them.
"""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime

from lockgate.cli.errors import CliError
from lockgate.cli.ledger_calls import invoke, respond
from lockgate.cli.options import add_gateway_options
from lockgate.prices import PROVIDER_TYPES, amount

HEADERS = ("PROVIDER", "MODEL", "FROM", "INPUT", "OUTPUT", "CACHED INPUT", "SOURCE", "IN FORCE",
           "ID")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "prices", help="show or change the price book",
        description="The price book through the gateway (LedgerService): shipped list prices"
        " and the versions platform admins set, in USD per million tokens.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True,
                                    title="actions")

    listing = actions.add_parser(
        "list", help="list price versions (newest first per model)",
        description="List the shipped and admin-set price versions, by provider and model,"
        " newest effective date first; IN FORCE marks the version that applies today (UTC).",
    )
    listing.add_argument("--provider", default="", choices=PROVIDER_TYPES, metavar="PROVIDER",
                         help=f"only this provider type ({', '.join(PROVIDER_TYPES)})")
    listing.add_argument("--model", default="", help="only this provider model (exact name)")
    listing.set_defaults(handler=run_list)

    setting = actions.add_parser(
        "set", help="set a model's price from a date (platform admins)",
        description="Add a price version for a provider model, in force from --from (UTC;"
        " today by default, never in the past). Setting the same model and date again"
        " replaces that version. Amounts are USD per million tokens, e.g. 2.50.",
    )
    setting.add_argument("--provider", required=True, choices=PROVIDER_TYPES,
                         metavar="PROVIDER", help=f"provider type ({', '.join(PROVIDER_TYPES)})")
    setting.add_argument("--model", required=True,
                         help="the model name the provider knows (a deployment's `model:`)")
    setting.add_argument("--input", required=True, metavar="USD",
                         help="price of a million input tokens")
    setting.add_argument("--output", required=True, metavar="USD",
                         help="price of a million output tokens (reasoning tokens included)")
    setting.add_argument("--cached-input", default="", metavar="USD",
                         help="price of a million input tokens read from the provider's"
                         " prompt cache (default: the input price)")
    setting.add_argument("--from", dest="effective_date", default="", metavar="YYYY-MM-DD",
                         help="the UTC date the price takes effect (default: today)")
    setting.set_defaults(handler=run_set)

    deleting = actions.add_parser(
        "delete", help="delete an admin price version not in force yet (platform admins)")
    deleting.add_argument("price_id", metavar="ID", help="the version's id (pr_…)")
    deleting.set_defaults(handler=run_delete)

    for sub in (listing, setting, deleting):
        sub.add_argument("--json", action="store_true", help="print the response as JSON")
        add_gateway_options(sub)


# -- requests ------------------------------------------------------------------------


def _amount(flag: str, text: str) -> str:
    try:
        amount(text)
    except ValueError as exc:
        raise CliError(f"{flag}: {exc}", 2) from None
    return text.strip()


def set_request(args: argparse.Namespace):
    """The SetPriceRequest for `prices set`; CliError (exit 2) on a malformed flag."""
    from lockgate.ledger.v1 import ledger_service_pb2 as pb

    if not args.model.strip():
        raise CliError("--model must not be empty", 2)
    if args.effective_date:
        try:
            if not _DATE.match(args.effective_date):
                raise ValueError
            datetime.strptime(args.effective_date, "%Y-%m-%d")
        except ValueError:
            raise CliError(f"--from: {args.effective_date!r} is not a date (YYYY-MM-DD)",
                           2) from None
    return pb.SetPriceRequest(
        provider=args.provider,
        model=args.model,
        effective_date=args.effective_date,
        input_usd_per_mtok=_amount("--input", args.input),
        output_usd_per_mtok=_amount("--output", args.output),
        cached_input_usd_per_mtok=(
            _amount("--cached-input", args.cached_input) if args.cached_input else ""
        ),
    )


# -- output --------------------------------------------------------------------------


def rows(prices, today: str) -> list[tuple]:
    """Table rows; IN FORCE marks each model's first version (newest first) dated
    today or earlier: the one that prices calls today."""
    out, seen = [], set()
    for p in prices:
        key = (p.provider, p.model)
        in_force = key not in seen and p.effective_date <= today
        if in_force:
            seen.add(key)
        out.append((p.provider, p.model, p.effective_date, p.input_usd_per_mtok,
                    p.output_usd_per_mtok, p.cached_input_usd_per_mtok, p.source,
                    "yes" if in_force else "", p.price_id or "-"))
    return out


# -- commands ------------------------------------------------------------------------


def run_list(args: argparse.Namespace) -> int:
    from lockgate.cli.table import format_table
    from lockgate.ledger.v1 import ledger_service_pb2 as pb

    reply = invoke(args, "ListPrices", pb.ListPricesRequest(provider=args.provider,
                                                            model=args.model))
    today = datetime.now(UTC).date().isoformat()
    return respond(args, reply, lambda: format_table(HEADERS, rows(reply.prices, today))
                   if reply.prices else "No prices.")


def run_set(args: argparse.Namespace) -> int:
    reply = invoke(args, "SetPrice", set_request(args))
    p = reply.price
    return respond(args, reply, lambda: (
        f"Set {p.provider}/{p.model} from {p.effective_date} (UTC): input {p.input_usd_per_mtok},"
        f" output {p.output_usd_per_mtok}, cached input {p.cached_input_usd_per_mtok}"
        f" USD per million tokens ({p.price_id}). Routers use it within their refresh"
        " interval (30 s by default)."))


def run_delete(args: argparse.Namespace) -> int:
    from lockgate.ledger.v1 import ledger_service_pb2 as pb

    reply = invoke(args, "DeletePrice", pb.DeletePriceRequest(price_id=args.price_id))
    return respond(args, reply, lambda: f"Deleted price version {args.price_id}.")
