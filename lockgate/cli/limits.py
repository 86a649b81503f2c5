"""`lockgate limits set|list|delete`: requests and tokens per minute of the caller's
tenant, a team, an API key or a model alias (LedgerService rate-limit RPCs)."""

from __future__ import annotations

import argparse

from lockgate.cli.errors import CliError
from lockgate.cli.ledger_calls import (
    add_list_and_delete,
    add_scope_flags,
    invoke,
    respond,
    scope_of,
)

HEADERS = ("ID", "SCOPE", "SCOPE ID", "REQUESTS/MIN", "TOKENS/MIN", "UPDATED")
#: services/ledger/scopes.py RATE_LIMIT_SCOPES (a unit test keeps them equal).
SCOPES = ("tenant", "team", "key", "alias")


def _count(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "limits", help="manage rate limits (requests and tokens per minute)",
        description="Rate limits of the caller's tenant: requests per minute (enforced at"
        " the edge, 429 with Retry-After) and tokens per minute (enforced by the router)"
        " on the tenant, a team, an API key or a model alias.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True,
                                    title="actions")

    setter = actions.add_parser(
        "set", help="create or replace the limit of one scope",
        description="Create or replace the rate limit of one scope. Both rates are set:"
        " a rate that is not given is 0 (no limit of that kind).",
    )
    add_scope_flags(setter, "alias", "NAME", "a model alias, for the whole tenant")
    setter.add_argument("--rpm", type=_count, default=0, metavar="N",
                        help="requests per minute (0: no request limit)")
    setter.add_argument("--tpm", type=_count, default=0, metavar="N",
                        help="tokens (input + output) per minute (0: no token limit)")
    setter.set_defaults(handler=run_set)

    add_list_and_delete(actions, setter, noun="rate limit", scopes=SCOPES,
                        id_dest="rate_limit_id", id_help="the limit's id (rl_…)",
                        run_list=run_list, run_delete=run_delete)


def set_request(args: argparse.Namespace):
    from lockgate.ledger.v1 import ledger_service_pb2 as pb

    if not args.rpm and not args.tpm:
        raise CliError("give --rpm, --tpm or both (to remove a limit: lockgate limits delete)",
                       2)
    scope, scope_id = scope_of(args, "alias")
    return pb.SetRateLimitRequest(scope=scope, scope_id=scope_id,
                                  requests_per_minute=args.rpm, tokens_per_minute=args.tpm)


def rate(value: int) -> str:
    return f"{value:,}" if value else "-"


def row(limit) -> tuple:
    updated = limit.update_time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S")
    return (limit.rate_limit_id, limit.scope, limit.scope_id, rate(limit.requests_per_minute),
            rate(limit.tokens_per_minute), updated)


def describe(limit) -> str:
    rates = []
    if limit.requests_per_minute:
        rates.append(f"{limit.requests_per_minute:,} requests per minute")
    if limit.tokens_per_minute:
        rates.append(f"{limit.tokens_per_minute:,} tokens per minute")
    return f"{limit.scope} {limit.scope_id}: {' and '.join(rates)}"


def run_set(args: argparse.Namespace) -> int:
    reply = invoke(args, "SetRateLimit", set_request(args))
    return respond(args, reply, lambda: f"Rate limit {reply.rate_limit.rate_limit_id} set on"
                   f" {describe(reply.rate_limit)}.")


def run_list(args: argparse.Namespace) -> int:
    from lockgate.cli.table import format_table
    from lockgate.ledger.v1 import ledger_service_pb2 as pb

    reply = invoke(args, "ListRateLimits", pb.ListRateLimitsRequest(scope=args.scope))
    return respond(args, reply, lambda: format_table(HEADERS, [row(r) for r in reply.rate_limits])
                   if reply.rate_limits else "No rate limits.")


def run_delete(args: argparse.Namespace) -> int:
    from lockgate.ledger.v1 import ledger_service_pb2 as pb

    reply = invoke(args, "DeleteRateLimit",
                    pb.DeleteRateLimitRequest(rate_limit_id=args.rate_limit_id))
    return respond(args, reply, lambda: f"Deleted rate limit {args.rate_limit_id}.")
