"""`lockgate budgets`: dollar amounts parse exactly; flags map to SetBudgetRequest."""

from __future__ import annotations

import argparse

import pytest

from lockgate.cli import budgets
from lockgate.cli.budgets import micro_usd, set_request
from lockgate.cli.errors import CliError
from lockgate.cli.main import build_parser
from services.ledger import periods, scopes


@pytest.mark.parametrize(("text", "micro"), [
    ("5", 5_000_000), ("0.25", 250_000), ("$1.50", 1_500_000), ("0.000001", 1),
    ("1_000", 1_000_000_000),
])
def test_amounts_are_exact_micro_dollars(text, micro):
    assert micro_usd(text) == micro


@pytest.mark.parametrize("text", ["0", "-1", "abc", "0.0000001", "nan", "inf", ""])
def test_bad_amounts_are_refused(text):
    with pytest.raises(argparse.ArgumentTypeError):
        micro_usd(text)


def test_set_maps_flags_to_the_request():
    args = build_parser().parse_args([
        "budgets", "set", "--key", "key_1", "--usd", "5", "--period", "day", "--hard",
        "--admin-key", "lg_x_y",
    ])
    request = set_request(args)
    assert (request.scope, request.scope_id, request.amount_micro_usd, request.period,
            request.timezone, request.hard) == ("key", "key_1", 5_000_000, "day", "UTC", True)
    assert args.key == "lg_x_y"  # the admin key, not the budgeted one
    soft = set_request(build_parser().parse_args([
        "budgets", "set", "--tenant", "--usd", "1", "--period", "total"]))
    assert (soft.scope, soft.scope_id, soft.hard) == ("tenant", "", False)
    with pytest.raises(CliError):
        set_request(build_parser().parse_args([
            "budgets", "set", "--team", " ", "--usd", "1", "--period", "week"]))


def test_vocabulary_matches_the_ledger():
    assert budgets.SCOPES == scopes.BUDGET_SCOPES
    assert budgets.PERIODS == periods.PERIODS
