"""`lockgate usage` report flags: parsing, the QueryUsage request, table and CSV rows."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from lockgate.cli import usage_report as report
from lockgate.cli.errors import CliError
from lockgate.cli.main import build_parser, main
from lockgate.cli.usage import report_request, wants_report
from lockgate.ledger.v1 import ledger_service_pb2 as pb
from services.ledger import analytics

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def args(*argv: str):
    return build_parser().parse_args(["usage", *argv])


def test_allowlists_match_the_ledger():
    assert report.DIMENSIONS == analytics.DIMENSIONS
    assert report.BUCKETS == analytics.BUCKETS
    assert report.MEASURES == analytics.MEASURES
    assert report.MAX_RANGE == analytics.MAX_RANGE


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", NOW - timedelta(minutes=30)),
        ("1h", NOW - timedelta(hours=1)),
        ("7d", NOW - timedelta(days=7)),
        ("2w", NOW - timedelta(weeks=2)),
        ("90s", NOW - timedelta(seconds=90)),
        ("2026-02-28T08:00:00", datetime(2026, 2, 28, 8, tzinfo=UTC)),
        ("2026-02-28T08:00:00Z", datetime(2026, 2, 28, 8, tzinfo=UTC)),
        ("2026-02-28T09:00:00+01:00", datetime(2026, 2, 28, 8, tzinfo=UTC)),
    ],
)
def test_parse_since(text, expected):
    assert report.parse_since(text, NOW) == expected


@pytest.mark.parametrize("text", ["", "1x", "h", "-1h", "0h", "yesterday", "99999999999999d"])
def test_bad_since_is_exit_2(text):
    with pytest.raises(CliError) as err:
        report.parse_since(text, NOW)
    assert err.value.code == 2 and "--since" in str(err.value)


def test_report_flags_build_the_request():
    assert not wants_report(args())
    assert not wants_report(args("--limit", "5", "--json"))
    request = report_request(
        args("--by", "alias", "--by", "provider,alias", "--since", "1h", "--bucket", "hour",
             "--top", "5"),
        NOW,
    )
    assert list(request.group_by) == ["alias", "provider"]
    assert (request.bucket, request.order_by, request.limit) == ("hour", "total_tokens", 5)
    assert request.start_time.ToDatetime(tzinfo=UTC) == NOW - timedelta(hours=1)
    plain = report_request(args("--csv"), NOW)
    assert not plain.HasField("start_time") and plain.limit == 0 and not plain.order_by
    assert report_request(args("--order-by", "errors"), NOW).order_by == "errors"


def test_report_groups_by_tenancy_and_governance_dimensions():
    request = report_request(
        args("--by", "team_id,principal", "--by", "api_id", "--by", "api_version"), NOW
    )
    assert list(request.group_by) == ["team_id", "principal", "api_id", "api_version"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--by", "tenant_id"), "unknown dimension 'tenant_id'"),
        (("--bucket", "week"), "--bucket: unknown value 'week'"),
        (("--order-by", "price"), "--order-by: unknown value 'price'"),
        (("--since", "soon"), "--since"),
        (("--since", "2999-01-01"), "in the future"),
        (("--since", "91d"), "at most 90 days"),
        (("--top", "0"), "--top must be positive"),
        (("--by", "alias", "--limit", "5"), "use --top"),
        (("--csv", "--json"), "one of --csv and --json"),
    ],
)
def test_bad_report_flags_exit_2_with_one_line(argv, message, capsys, tmp_path):
    code = main(["usage", "--data-dir", str(tmp_path), "--key", "k", *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def sample_rows() -> list[pb.UsageRow]:
    first = pb.UsageRow(
        group={"alias": "demo", "streamed": "true"}, requests=7, errors=2, error_rate=2 / 7,
        input_tokens=2050, output_tokens=1300, total_tokens=3350, cached_input_tokens=3,
        estimated_requests=1, cache_hits=1, latency_p50_ms=40.0, latency_p95_ms=270.0,
        latency_p99_ms=97.6, ttft_p50_ms=10.0, cost_micro_usd=1_234_567,
    )
    first.bucket_start.FromDatetime(NOW)
    second = pb.UsageRow(group={"alias": 'a,"b"', "streamed": "false"}, requests=1)
    second.bucket_start.FromDatetime(NOW + timedelta(hours=1))
    return [first, second]


def test_csv_has_a_header_and_one_line_per_row():
    text = report.to_csv(sample_rows(), ["alias", "streamed"], bucketed=True)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == [
        "bucket_start", "alias", "streamed", "requests", "errors", "error_rate",
        "input_tokens", "output_tokens", "total_tokens", "cost_usd", "cached_input_tokens",
        "estimated_requests", "cache_hits", "latency_p50_ms", "latency_p95_ms",
        "latency_p99_ms", "ttft_p50_ms",
    ]
    assert rows[1] == [
        "2026-03-01T12:00:00Z", "demo", "true", "7", "2", "0.285714", "2050", "1300", "3350",
        "1.234567", "3", "1", "1", "40", "270", "97.6", "10",
    ]
    assert rows[2][:4] == ["2026-03-01T13:00:00Z", 'a,"b"', "false", "1"]
    assert len(rows) == 3
    unbucketed = list(csv.reader(io.StringIO(report.to_csv([], [], bucketed=False))))
    assert unbucketed == [[name for name, _ in report.MEASURE_COLUMNS]]


def test_table_values_are_readable():
    headers = [h for _, h in report.columns(["alias"], bucketed=True)]
    assert headers[:4] == ["BUCKET", "ALIAS", "REQUESTS", "ERRORS"]
    cells = report.values(sample_rows()[0], ["alias"], bucketed=True, for_table=True)
    assert cells[:5] == ["2026-03-01 12:00", "demo", "7", "2", "28.6%"]
