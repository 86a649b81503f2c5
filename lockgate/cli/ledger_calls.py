"""What the ledger admin commands share (budgets, limits, prices, calls): one
LedgerService call with the admin key, and JSON output of a reply."""

from __future__ import annotations

import argparse
import json


def invoke(args: argparse.Namespace, method: str, request):
    """LedgerService/<method>(request) through the gateway; a failure is CliError."""
    from lockgate.cli.gateway import bearer, call, channel
    from lockgate.cli.options import admin_key, gateway_url
    from lockgate.ledger.v1 import ledger_service_pb2_grpc as pb_grpc

    key, url = admin_key(args), gateway_url(args)
    with channel(url) as ch:
        rpc = getattr(pb_grpc.LedgerServiceStub(ch), method)
        return call(lambda: rpc(request, metadata=bearer(key), timeout=args.timeout))


def print_json(message) -> None:
    from google.protobuf.json_format import MessageToDict

    print(json.dumps(MessageToDict(message, preserving_proto_field_name=True,
                                   always_print_fields_with_no_presence=True), indent=2))
