"""`lockgate budgets set|list|delete`: spending caps on the caller's tenant, a team,
an API key or a subscription, per day, week, month or in total (LedgerService)."""

from __future__ import annotations

import argparse

from lockgate.cli.ledger_calls import (
    add_list_and_delete,
    add_scope_flags,
    invoke,
    respond,
    scope_of,
)
from lockgate.cli.table import format_table
from lockgate.money import parse_usd, usd

HEADERS = ("ID", "SCOPE", "SCOPE ID", "AMOUNT", "PERIOD", "KIND", "SPENT", "RESERVED",
           "RESETS")
#: services/ledger/scopes.py BUDGET_SCOPES and services/ledger/periods.py PERIODS.
SCOPES = ("tenant", "team", "key", "subscription")
PERIODS = ("day", "week", "month", "total")


def micro_usd(text: str) -> int:
    """--usd: dollars to integer micro-USD, exactly."""
    try:
        return parse_usd(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "budgets", help="manage budgets (spending caps per period)",
        description="Budgets of the caller's tenant. A hard budget refuses calls that could"
        " exceed it (429 budget_exceeded, naming the budget); a soft one only sends threshold"
        " events (50, 80, 100 %%). Periods start at midnight in the budget's time zone.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True,
                                    title="actions")

    setter = actions.add_parser(
        "set", help="create or replace the budget of one scope and period",
        description="Create or replace a budget (one per scope and period). Example:"
        " lockgate budgets set --key key_123 --usd 5 --period day --hard",
    )
    add_scope_flags(setter, "subscription", "ID", "a subscription (sub_…)")
    setter.add_argument("--usd", type=micro_usd, required=True, metavar="AMOUNT",
                        help="the amount per period in US dollars, e.g. 5 or 0.25")
    setter.add_argument("--period", choices=PERIODS, required=True,
                        help="calendar day, week (from Monday), month, or total (never resets)")
    setter.add_argument("--timezone", default="UTC", metavar="TZ",
                        help="IANA time zone whose midnight starts a period (UTC)")
    kind = setter.add_mutually_exclusive_group()
    kind.add_argument("--hard", dest="hard", action="store_true", default=False,
                      help="refuse calls that could exceed it")
    kind.add_argument("--soft", dest="hard", action="store_false",
                      help="only send threshold events (the default)")
    setter.set_defaults(handler=run_set)

    add_list_and_delete(actions, setter, noun="budget", scopes=SCOPES, id_dest="budget_id",
                        id_help="the budget's id (bgt_…)", run_list=run_list,
                        run_delete=run_delete)


def set_request(args: argparse.Namespace):
    from lockgate.ledger.v1 import ledger_service_pb2 as pb

    scope, scope_id = scope_of(args, "subscription")
    return pb.SetBudgetRequest(scope=scope, scope_id=scope_id, amount_micro_usd=args.usd,
                               period=args.period, timezone=args.timezone, hard=args.hard)


def describe(budget) -> str:
    per = "in total" if budget.period == "total" else f"per {budget.period}"
    tz = "" if budget.period == "total" or budget.timezone == "UTC" else f" ({budget.timezone})"
    kind = "hard" if budget.hard else "soft"
    return (f"{kind} budget {budget.budget_id} on {budget.scope} {budget.scope_id}:"
            f" {usd(budget.amount_micro_usd)} {per}{tz}")


def row(budget) -> tuple:
    resets = (budget.period_end.ToDatetime().strftime("%Y-%m-%d %H:%M UTC")
              if budget.HasField("period_end") else "never")
    return (budget.budget_id, budget.scope, budget.scope_id, usd(budget.amount_micro_usd),
            budget.period, "hard" if budget.hard else "soft", usd(budget.spent_micro_usd),
            usd(budget.reserved_micro_usd), resets)


def run_set(args: argparse.Namespace) -> int:
    reply = invoke(args, "SetBudget", set_request(args))
    return respond(args, reply, lambda: f"Set {describe(reply.budget)}; spent this period:"
                   f" {usd(reply.budget.spent_micro_usd)}.")


def run_list(args: argparse.Namespace) -> int:
    from lockgate.ledger.v1 import ledger_service_pb2 as pb

    reply = invoke(args, "ListBudgets", pb.ListBudgetsRequest(scope=args.scope))
    return respond(args, reply, lambda: format_table(HEADERS, [row(b) for b in reply.budgets])
                   if reply.budgets else "No budgets.")


def run_delete(args: argparse.Namespace) -> int:
    from lockgate.ledger.v1 import ledger_service_pb2 as pb

    reply = invoke(args, "DeleteBudget", pb.DeleteBudgetRequest(budget_id=args.budget_id))
    return respond(args, reply, lambda: f"Deleted budget {args.budget_id}.")
