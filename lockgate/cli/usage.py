"""`lockgate usage`: recent metered calls of the caller's tenant, from the ledger."""

from __future__ import annotations

import argparse
import json

from lockgate.cli.errors import CliError
from lockgate.cli.options import add_gateway_options
from lockgate.cli.table import format_table

#: The ledger's page size limit.
MAX_PAGE = 1000
HEADERS = ("TIME", "REQUEST ID", "ALIAS", "PROVIDER MODEL", "IN", "OUT", "LATENCY MS", "STATUS")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "usage",
        help="show recent usage",
        description="List recent usage entries (newest first) with LedgerService/ListUsage.",
    )
    parser.add_argument("--limit", type=int, default=50, metavar="N",
                        help="how many entries (50)")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per line instead of a table")
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


def run(args: argparse.Namespace) -> int:
    from google.protobuf.json_format import MessageToDict

    from lockgate.cli.gateway import bearer, call, channel
    from lockgate.cli.options import admin_key, gateway_url
    from lockgate.ledger.v1 import ledger_service_pb2 as pb
    from lockgate.ledger.v1 import ledger_service_pb2_grpc as pb_grpc

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
