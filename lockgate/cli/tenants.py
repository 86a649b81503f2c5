"""`lockgate tenants list|get|create|update` (AuthService; creating tenants and
seeing other tenants needs a platform_admin key)."""

from __future__ import annotations

import argparse

from lockgate.cli import admin
from lockgate.cli.errors import CliError

HEADERS = ("NAME", "ID", "DISPLAY NAME", "CREATED", "ETAG")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "tenants", help="list, show, create and update tenants",
        description="Manage tenants through the gateway's admin API (AuthService).",
    )
    actions = admin.actions_of(parser, "actions")

    listing = actions.add_parser("list", help="list the tenants the key may see")
    listing.add_argument("--name-prefix", default="", help="only names starting with this")
    admin.add_list_options(listing)
    listing.set_defaults(handler=run_list)

    get = actions.add_parser("get", help="show one tenant")
    get.add_argument("tenant", metavar="TENANT", help="tenant name or id")
    get.set_defaults(handler=run_get)

    create = actions.add_parser("create", help="create a tenant (platform admins)")
    create.add_argument("--name", required=True,
                        help="unique lower-case name (letters, digits, dashes)")
    create.add_argument("--display-name", default="", help="a human-readable name")
    create.set_defaults(handler=run_create)

    update = actions.add_parser("update", help="change a tenant's display name")
    update.add_argument("tenant", metavar="TENANT", help="tenant name or id")
    update.add_argument("--display-name", default=None, help="the new display name")
    admin.add_etag(update)
    update.set_defaults(handler=run_update)

    for sub in (listing, get, create, update):
        admin.add_common(sub)


def row(t) -> tuple:
    return (t.name, t.id, t.display_name or "-", admin.when(t, "create_time"), t.etag)


def format_tenant(t) -> str:
    return admin.format_detail([
        ("Name", t.name), ("ID", t.id), ("Display name", t.display_name or "-"),
        ("Created", admin.when(t, "create_time")), ("Updated", admin.when(t, "update_time")),
        ("Etag", t.etag),
    ])


def list_request(args: argparse.Namespace):
    from lockgate.auth.v1 import auth_service_pb2 as pb

    return pb.ListTenantsRequest(name_prefix=args.name_prefix)


def update_request(args: argparse.Namespace):
    from lockgate.auth.v1 import auth_service_pb2 as pb

    request = pb.UpdateTenantRequest(tenant=args.tenant, etag=args.etag)
    if args.display_name is not None:
        request.patch.display_name = args.display_name
        request.update_mask.paths.append("display_name")
    if not request.update_mask.paths:
        raise admin.nothing_to_update(["--display-name"])
    return request


def _show(args: argparse.Namespace, reply, message: str) -> int:
    if args.json:
        admin.print_json(reply)
    else:
        if message:
            print(message)
        print(format_tenant(reply.tenant))
    return 0


def run_list(args: argparse.Namespace) -> int:
    reply = admin.list_pages(args, "ListTenants", list_request(args), "tenants")
    return admin.print_list(reply, "tenants", HEADERS, row, args.json, "No tenants.")


def run_get(args: argparse.Namespace) -> int:
    from lockgate.auth.v1 import auth_service_pb2 as pb

    return _show(args, admin.one_call(args, "GetTenant", pb.GetTenantRequest(tenant=args.tenant)),
                 "")


def run_create(args: argparse.Namespace) -> int:
    from lockgate.auth.v1 import auth_service_pb2 as pb

    if not args.name.strip():
        raise CliError("--name must not be empty", 2)
    request = pb.CreateTenantRequest(name=args.name, display_name=args.display_name)
    reply = admin.one_call(args, "CreateTenant", request)
    return _show(args, reply, f"Created tenant {reply.tenant.name!r}.")


def run_update(args: argparse.Namespace) -> int:
    reply = admin.one_call(args, "UpdateTenant", update_request(args))
    return _show(args, reply, f"Updated tenant {reply.tenant.name!r}.")
