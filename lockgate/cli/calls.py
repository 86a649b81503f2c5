"""`lockgate calls`: recent calls through the gateway (the call log, from Envoy's
access log), newest first, each with its metered usage when there is one."""

from __future__ import annotations

import argparse
import json

from lockgate.cli.errors import CliError
from lockgate.cli.options import add_gateway_options
from lockgate.cli.table import format_table

#: The ledger's page size limit.
MAX_PAGE = 1000
HEADERS = ("TIME", "REQUEST ID", "METHOD", "PATH", "STATUS", "FLAGS", "MS", "UPSTREAM",
           "ALIAS", "TOKENS")
#: Paths longer than this are cut in the table (--json has them whole).
MAX_PATH_COLUMN = 48


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "calls",
        help="show recent calls through the gateway (the call log)",
        description="List the tenant's recent calls through the gateway, newest first"
        " (LedgerService/ListCalls): status, Envoy response flags, duration, upstream, and"
        " the metered usage of model calls. Bodies appear with --json, for APIs that opted"
        " in to body logging (redacted).",
    )
    parser.add_argument("--limit", type=int, default=50, metavar="N",
                        help="how many calls to list (50)")
    parser.add_argument("--request-id", default="", metavar="ID",
                        help="only the call with this request id (x-request-id)")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per line (with usage and bodies) instead of a table")
    add_gateway_options(parser)
    parser.set_defaults(handler=run)


def row(call) -> tuple[str, ...]:
    """One table row for a CallRecord."""
    when = (
        call.start_time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S")
        if call.HasField("start_time") else "-"
    )
    path = call.path
    if len(path) > MAX_PATH_COLUMN:
        path = path[: MAX_PATH_COLUMN - 1] + "…"
    metered = call.HasField("usage")
    return (
        when,
        call.request_id,
        call.http_method or "-",
        path or "-",
        str(call.response_code),
        call.response_flags or "-",
        str(call.duration_ms),
        call.upstream_cluster or "-",
        (call.usage.alias or "-") if metered else "-",
        str(call.usage.usage.input_tokens + call.usage.usage.output_tokens) if metered else "-",
    )


def run(args: argparse.Namespace) -> int:
    from google.protobuf.json_format import MessageToDict

    from lockgate.cli.ledger_calls import invoke
    from lockgate.ledger.v1 import ledger_service_pb2 as pb

    if args.limit <= 0:
        raise CliError("--limit must be positive", 2)
    calls: list = []
    token = ""
    while len(calls) < args.limit:
        page = invoke(args, "ListCalls", pb.ListCallsRequest(
            page_size=min(MAX_PAGE, args.limit - len(calls)), page_token=token,
            request_id=args.request_id,
        ))
        calls.extend(page.calls)
        token = page.next_page_token
        if not token or not page.calls:
            break
    calls = calls[: args.limit]
    if args.json:
        for c in calls:
            print(json.dumps(MessageToDict(c, preserving_proto_field_name=True)))
        return 0
    if not calls:
        print("No calls with this request id." if args.request_id else "No calls logged yet.")
        return 0
    print(format_table(HEADERS, [row(c) for c in calls]))
    return 0
