"""`lockgate usage`: recent metered calls of the caller's tenant, from the ledger;
with --by/--since/--bucket/--top/--csv, an aggregated report (QueryUsage)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

from lockgate.cli.errors import CliError
from lockgate.cli.options import add_gateway_options
from lockgate.cli.table import format_table
from lockgate.cli.usage_report import BUCKETS, DIMENSIONS, MEASURES

#: The ledger's page size limit.
MAX_PAGE = 1000
HEADERS = ("TIME", "REQUEST ID", "ALIAS", "PROVIDER MODEL", "IN", "OUT", "LATENCY MS", "STATUS")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "usage",
        help="show recent usage, or a usage report",
        description="List recent usage entries (newest first) with LedgerService/ListUsage."
        " With any of --by, --since, --bucket, --top, --order-by or --csv: an aggregated"
        " report of the tenant's usage (LedgerService/QueryUsage; default range: 24 h).",
    )
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="how many entries to list (50); for a report, use --top")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per line instead of a table")
    report = parser.add_argument_group("report")
    report.add_argument("--by", action="append", metavar="DIM",
                        help=f"group by a dimension; repeatable or comma-separated"
                        f" ({', '.join(DIMENSIONS)})")
    report.add_argument("--since", metavar="WHEN",
                        help="start of the range: 30m, 1h, 7d, 2w back from now, or an ISO"
                        " time (UTC when no offset is given); default 24h, at most 90d")
    report.add_argument("--bucket", metavar="SIZE",
                        help=f"time buckets, in UTC ({', '.join(BUCKETS)})")
    report.add_argument("--top", type=int, metavar="N",
                        help="only the N largest rows (by --order-by, default total_tokens)")
    report.add_argument("--order-by", metavar="MEASURE",
                        help=f"sort rows largest first ({', '.join(MEASURES)})")
    report.add_argument("--csv", action="store_true",
                        help="CSV (header row, then one line per row) instead of a table")
    add_gateway_options(parser)
    parser.set_defaults(handler=run)


def row(entry) -> tuple[str, ...]:
    """One table row for a UsageEntry."""
    when = (
        entry.create_time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S")
        if entry.HasField("create_time") else "-"
    )
    status = entry.status or "-"
    if entry.error_type:
        status = f"{status} ({entry.error_type})"
    return (
        when,
        entry.request_id,
        entry.alias,
        entry.provider_model,
        str(entry.usage.input_tokens),
        str(entry.usage.output_tokens),
        str(entry.latency_ms),
        status,
    )


def wants_report(args: argparse.Namespace) -> bool:
    return bool(
        args.by or args.since or args.bucket or args.top is not None or args.order_by
        or args.csv
    )


def run(args: argparse.Namespace) -> int:
    if wants_report(args):
        return run_report(args)
    return run_list(args)


def report_request(args: argparse.Namespace, now=None):
    """The QueryUsageRequest for the report flags; CliError (exit 2) on bad input."""
    from lockgate.cli import usage_report as report
    from lockgate.ledger.v1 import ledger_service_pb2 as pb

    if args.limit is not None:
        raise CliError("--limit lists entries; with a report, use --top N", 2)
    if args.csv and args.json:
        raise CliError("choose one of --csv and --json", 2)
    if args.top is not None and args.top <= 0:
        raise CliError("--top must be positive", 2)
    dims = report.dimensions(args.by)
    bucket = report.check_choice("--bucket", args.bucket, report.BUCKETS)
    order = report.check_choice("--order-by", args.order_by, report.MEASURES)
    if args.top is not None and not order:
        order = report.DEFAULT_TOP_ORDER
    request = pb.QueryUsageRequest(
        bucket=bucket, group_by=dims, order_by=order, limit=args.top or 0
    )
    if args.since:
        now = now or datetime.now(UTC)
        start = report.parse_since(args.since, now)
        if start >= now:
            raise CliError(f"--since: {args.since!r} is in the future", 2)
        if now - start > report.MAX_RANGE:
            raise CliError(f"--since: the range may span at most {report.MAX_RANGE.days} days", 2)
        request.start_time.FromDatetime(start)
    return request


def run_report(args: argparse.Namespace) -> int:
    from google.protobuf.json_format import MessageToDict

    from lockgate.cli import usage_report as report
    from lockgate.cli.gateway import bearer, call, channel
    from lockgate.cli.options import admin_key, gateway_url
    from lockgate.ledger.v1 import ledger_service_pb2_grpc as pb_grpc

    request = report_request(args)
    dims, bucketed = list(request.group_by), bool(request.bucket)
    key, url = admin_key(args), gateway_url(args)
    with channel(url) as ch:
        stub = pb_grpc.LedgerServiceStub(ch)
        reply = call(lambda: stub.QueryUsage(request, metadata=bearer(key), timeout=args.timeout))
    if args.csv:
        print(report.to_csv(reply.rows, dims, bucketed), end="")
        return 0
    if args.json:
        for r in reply.rows:
            print(json.dumps(MessageToDict(r, preserving_proto_field_name=True)))
        return 0
    if not reply.rows:
        print("No usage in this range.")
        return 0
    headers = [header for _, header in report.columns(dims, bucketed)]
    print(format_table(headers, [report.values(r, dims, bucketed, for_table=True)
                                 for r in reply.rows]))
    return 0


def run_list(args: argparse.Namespace) -> int:
    from google.protobuf.json_format import MessageToDict

    from lockgate.cli.gateway import bearer, call, channel
    from lockgate.cli.options import admin_key, gateway_url
    from lockgate.ledger.v1 import ledger_service_pb2 as pb
    from lockgate.ledger.v1 import ledger_service_pb2_grpc as pb_grpc

    if args.limit is None:
        args.limit = 50
    if args.limit <= 0:
        raise CliError("--limit must be positive", 2)
    key, url = admin_key(args), gateway_url(args)
    entries: list = []
    token = ""
    with channel(url) as ch:
        stub = pb_grpc.LedgerServiceStub(ch)
        while len(entries) < args.limit:
            request = pb.ListUsageRequest(
                page_size=min(MAX_PAGE, args.limit - len(entries)), page_token=token
            )
            page = call(lambda r=request: stub.ListUsage(r, metadata=bearer(key),
                                                         timeout=args.timeout))
            entries.extend(page.entries)
            token = page.next_page_token
            if not token or not page.entries:
                break
    entries = entries[: args.limit]
    if args.json:
        for entry in entries:
            print(json.dumps(MessageToDict(entry, preserving_proto_field_name=True)))
        return 0
    if not entries:
        print("No usage recorded yet.")
        return 0
    print(format_table(HEADERS, [row(e) for e in entries]))
    return 0
