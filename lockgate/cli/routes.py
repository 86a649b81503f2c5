"""`lockgate routes [show|reload]`: the router's effective routing table and
each deployment's health, through RouterAdminService (platform admins)."""

from __future__ import annotations

import argparse
import json

from lockgate.cli.options import add_gateway_options
from lockgate.cli.table import format_table

ALIAS_HEADERS = ("ALIAS", "KIND", "STRATEGY", "DEPLOYMENTS", "RETRIES", "CACHE TTL")
DEPLOYMENT_HEADERS = (
    "DEPLOYMENT", "PROVIDER", "MODEL", "REGION", "BREAKER", "ERR RATE", "IN FLIGHT",
    "LATENCY MS", "TTFT MS", "CALLS", "FAILURES", "LAST ERROR",
)


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "routes", help="show the routing table and deployment health, or reload the config",
        description="The router's effective routing table (RouterAdminService). "
        "Needs a platform_admin key.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    show = actions.add_parser("show", help="aliases, deployments and their health (default)")
    reload = actions.add_parser(
        "reload", help="re-read the gateway config file now (it is also watched)"
    )
    for sub in (parser, show, reload):
        sub.add_argument("--json", action="store_true", help="print the response as JSON")
        add_gateway_options(sub)
    parser.set_defaults(handler=run_show)
    show.set_defaults(handler=run_show)
    reload.set_defaults(handler=run_reload)


def _admin_call(args: argparse.Namespace, method: str, request):
    """One RouterAdminService call with the admin key."""
    from lockgate.cli.gateway import bearer, call, channel
    from lockgate.cli.options import admin_key, gateway_url
    from lockgate.router.v1 import router_service_pb2_grpc as pb_grpc

    metadata = bearer(admin_key(args))
    with channel(gateway_url(args)) as ch:
        rpc = getattr(pb_grpc.RouterAdminServiceStub(ch), method)
        return call(lambda: rpc(request, metadata=metadata, timeout=args.timeout))


def _print_json(message) -> None:
    from google.protobuf.json_format import MessageToDict

    print(json.dumps(MessageToDict(message, preserving_proto_field_name=True), indent=2))


def run_show(args: argparse.Namespace) -> int:
    from lockgate.router.v1 import router_service_pb2 as pb

    table = _admin_call(args, "GetRoutingTable", pb.GetRoutingTableRequest())
    if args.json:
        _print_json(table)
        return 0
    print(f"Routing table generation {table.generation} from {table.config_path}")
    if table.last_reload_error:
        print(f"Last reload was rejected (the previous config is in use):\n"
              f"{table.last_reload_error}")
    print()
    print(format_table(ALIAS_HEADERS, [
        (a.alias, a.kind, a.strategy, ",".join(a.deployments), a.retry_attempts,
         f"{a.cache_ttl_seconds}s" if a.cache_ttl_seconds else "-")
        for a in table.aliases
    ]))
    print()
    print(format_table(DEPLOYMENT_HEADERS, [
        (d.name, f"{d.provider} ({d.provider_type})", d.model, d.region or "-", d.breaker_state,
         f"{d.error_rate:.0%}", d.in_flight, f"{d.latency_ms:.1f}", f"{d.ttft_ms:.1f}", d.calls,
         d.failures, d.last_error or "-")
        for d in table.deployments
    ]))
    return 0


def run_reload(args: argparse.Namespace) -> int:
    from lockgate.router.v1 import router_service_pb2 as pb

    reply = _admin_call(args, "ReloadGatewayConfig", pb.ReloadGatewayConfigRequest())
    if args.json:
        _print_json(reply)
    elif reply.applied:
        print(f"Gateway config reloaded: routing table generation {reply.generation}.")
    else:
        print(f"Gateway config rejected; generation {reply.generation} stays in use:\n"
              f"{reply.error}")
    return 0 if reply.applied else 1
