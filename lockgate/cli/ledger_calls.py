"""What the ledger commands share (budgets, limits, prices, calls): one
LedgerService call with the admin key."""

from __future__ import annotations

import argparse


def invoke(args: argparse.Namespace, method: str, request):
    """LedgerService/<method>(request) through the gateway; a failure is CliError."""
    from lockgate.cli.gateway import bearer, call, channel
    from lockgate.cli.options import admin_key, gateway_url
    from lockgate.ledger.v1 import ledger_service_pb2_grpc as pb_grpc

    key, url = admin_key(args), gateway_url(args)
    with channel(url) as ch:
        rpc = getattr(pb_grpc.LedgerServiceStub(ch), method)
        return call(lambda: rpc(request, metadata=bearer(key), timeout=args.timeout))
