"""`lockgate prices`: flags, the SetPrice request, the IN FORCE column."""

from __future__ import annotations

import pytest

from lockgate.cli.errors import CliError
from lockgate.cli.main import build_parser, main
from lockgate.cli.prices import rows, set_request
from lockgate.ledger.v1 import ledger_service_pb2 as pb


def args(*argv: str):
    return build_parser().parse_args(["prices", *argv])


def test_set_builds_the_request():
    request = set_request(args("set", "--provider", "anthropic", "--model", "claude-x",
                               "--input", "3.00", "--output", "15", "--cached-input", "0.30",
                               "--from", "2030-01-31"))
    assert request == pb.SetPriceRequest(
        provider="anthropic", model="claude-x", effective_date="2030-01-31",
        input_usd_per_mtok="3.00", output_usd_per_mtok="15", cached_input_usd_per_mtok="0.30",
    )
    plain = set_request(args("set", "--provider", "openai", "--model", "m", "--input", "1",
                             "--output", "2"))
    assert (plain.effective_date, plain.cached_input_usd_per_mtok) == ("", "")  # server defaults


@pytest.mark.parametrize("argv, message", [
    (["--input", "-1"], "--input: '-1' is negative"),
    (["--output", "1e3"], "--output: '1e3' is not a decimal number"),
    (["--cached-input", "0.0000001"], "--cached-input: '0.0000001' has more than 6"),
    (["--from", "tomorrow"], "--from: 'tomorrow' is not a date"),
    (["--from", "2030-02-30"], "--from: '2030-02-30' is not a date"),
    (["--model", " "], "--model must not be empty"),
])
def test_bad_flags_exit_2_with_one_line(argv, message):
    base = {"--provider": "openai", "--model": "m", "--input": "1", "--output": "2"}
    flags = dict(base)
    flags.update(dict(zip(argv[::2], argv[1::2], strict=True)))
    with pytest.raises(CliError) as err:
        set_request(args("set", *[x for pair in flags.items() for x in pair]))
    assert err.value.code == 2 and message in str(err.value)


def test_unknown_provider_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["prices", "list", "--provider", "bedrock"])
    assert exit_.value.code == 2
    assert "invalid choice: 'bedrock'" in capsys.readouterr().err


def version(model: str, date: str, source: str = "shipped", price_id: str = "") -> pb.PriceVersion:
    return pb.PriceVersion(provider="openai", model=model, effective_date=date, source=source,
                           price_id=price_id, input_usd_per_mtok="1", output_usd_per_mtok="2",
                           cached_input_usd_per_mtok="1")


def test_in_force_marks_the_version_that_prices_calls_today():
    listed = [
        version("a", "2031-01-01", "admin", "pr_future"),  # not yet
        version("a", "2030-06-01", "admin", "pr_today"),  # admin wins the same date
        version("a", "2030-06-01"),
        version("a", "2029-01-01"),
        version("b", "2030-07-01", "admin", "pr_b"),  # only a future version
    ]
    table = rows(listed, today="2030-06-01")
    assert [(r[1], r[2], r[6], r[7], r[8]) for r in table] == [
        ("a", "2031-01-01", "admin", "", "pr_future"),
        ("a", "2030-06-01", "admin", "yes", "pr_today"),
        ("a", "2030-06-01", "shipped", "", "-"),
        ("a", "2029-01-01", "shipped", "", "-"),
        ("b", "2030-07-01", "admin", "", "pr_b"),
    ]
