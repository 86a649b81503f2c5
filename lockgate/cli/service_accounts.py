"""`lockgate service-accounts list|get|create|update|delete --tenant T` (AuthService).

A service account belongs to one team and holds roles there; its keys act in
that team. `update` changes only the fields whose flags are given.
"""

from __future__ import annotations

import argparse

from lockgate.cli import admin

HEADERS = ("NAME", "ID", "TEAM", "ROLES", "STATUS", "CREATED")
UPDATE_FLAGS = ("--display-name", "--role", "--status")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "service-accounts", help="list, show, create, update and delete service accounts",
        description="Manage the service accounts of a tenant through the gateway's admin API.",
    )
    actions = admin.actions_of(parser, "actions")

    listing = actions.add_parser("list", help="list the tenant's service accounts")
    listing.add_argument("--team", default="", help="only this team's (name or id)")
    admin.add_list_options(listing)
    listing.set_defaults(handler=run_list)

    get = actions.add_parser("get", help="show one service account")
    get.add_argument("service_account", metavar="NAME", help="name or id")
    get.set_defaults(handler=run_get)

    create = actions.add_parser("create", help="create a service account in a team")
    create.add_argument("--team", required=True, help="the team it belongs to (name or id)")
    create.add_argument("--name", required=True,
                        help="unique in the tenant; lower-case letters, digits and dashes")
    create.add_argument("--display-name", default="", help="a human-readable name")
    _role_flag(create, "default: developer")
    create.set_defaults(handler=run_create)

    update = actions.add_parser(
        "update", help="change a service account (only the fields whose flags are given)")
    update.add_argument("service_account", metavar="NAME", help="name or id")
    update.add_argument("--display-name", default=None, help="the new display name")
    _role_flag(update, "replaces its roles")
    update.add_argument("--status", choices=admin.STATUSES, default=None,
                        help="disable (its keys are refused) or re-enable")
    admin.add_etag(update)
    update.set_defaults(handler=run_update)

    delete = actions.add_parser(
        "delete", help="delete a service account and revoke every key it owns")
    delete.add_argument("service_account", metavar="NAME", help="name or id")
    admin.add_etag(delete)
    delete.set_defaults(handler=run_delete)

    for sub in (listing, get, create, update, delete):
        admin.add_tenant(sub)
        admin.add_common(sub)


def _role_flag(parser: argparse.ArgumentParser, note: str) -> None:
    parser.add_argument("--role", dest="roles", action="append", default=None,
                        choices=admin.ROLES, metavar="ROLE",
                        help=f"role in its team (repeatable; {note}; "
                        f"{', '.join(admin.ROLES)})")


def row(a) -> tuple:
    return (a.name, a.id, a.team_id, admin.joined(a.roles), a.status,
            admin.when(a, "create_time"))


def format_service_account(a) -> str:
    return admin.format_detail([
        ("Name", a.name), ("ID", a.id), ("Tenant", a.tenant_id), ("Team", a.team_id),
        ("Display name", a.display_name or "-"), ("Roles", admin.joined(a.roles)),
        ("Status", a.status), ("Created", admin.when(a, "create_time")),
        ("Updated", admin.when(a, "update_time")), ("Etag", a.etag),
    ])


def create_request(args: argparse.Namespace):
    from lockgate.auth.v1 import auth_service_pb2 as pb

    return pb.CreateServiceAccountRequest(
        tenant=args.tenant, team=args.team, name=args.name, display_name=args.display_name,
        roles=list(dict.fromkeys(args.roles or [])),
    )


def update_request(args: argparse.Namespace):
    from lockgate.auth.v1 import auth_service_pb2 as pb

    request = pb.UpdateServiceAccountRequest(
        tenant=args.tenant, service_account=args.service_account, etag=args.etag)
    patch, paths = request.patch, request.update_mask.paths
    if args.display_name is not None:
        patch.display_name = args.display_name
        paths.append("display_name")
    if args.roles is not None:
        patch.roles.extend(dict.fromkeys(args.roles))
        paths.append("roles")
    if args.status is not None:
        patch.status = args.status
        paths.append("status")
    if not paths:
        raise admin.nothing_to_update(UPDATE_FLAGS)
    return request


def _show(args: argparse.Namespace, reply, message: str) -> int:
    if args.json:
        admin.print_json(reply)
    else:
        if message:
            print(message)
        print(format_service_account(reply.service_account))
    return 0


def run_list(args: argparse.Namespace) -> int:
    from lockgate.auth.v1 import auth_service_pb2 as pb

    request = pb.ListServiceAccountsRequest(tenant=args.tenant, team=args.team)
    reply = admin.list_pages(args, "ListServiceAccounts", request, "service_accounts")
    return admin.print_list(reply, "service_accounts", HEADERS, row, args.json,
                            "No service accounts.")


def run_get(args: argparse.Namespace) -> int:
    from lockgate.auth.v1 import auth_service_pb2 as pb

    request = pb.GetServiceAccountRequest(tenant=args.tenant,
                                          service_account=args.service_account)
    return _show(args, admin.one_call(args, "GetServiceAccount", request), "")


def run_create(args: argparse.Namespace) -> int:
    reply = admin.one_call(args, "CreateServiceAccount", create_request(args))
    return _show(args, reply, f"Created service account {reply.service_account.name!r} in "
                 f"tenant {args.tenant}.")


def run_update(args: argparse.Namespace) -> int:
    reply = admin.one_call(args, "UpdateServiceAccount", update_request(args))
    return _show(args, reply, f"Updated service account {reply.service_account.name!r}.")


def run_delete(args: argparse.Namespace) -> int:
    from lockgate.auth.v1 import auth_service_pb2 as pb

    request = pb.DeleteServiceAccountRequest(
        tenant=args.tenant, service_account=args.service_account, etag=args.etag)
    reply = admin.one_call(args, "DeleteServiceAccount", request)
    if args.json:
        admin.print_json(reply)
    else:
        print(f"Deleted service account {args.service_account!r} of tenant {args.tenant}; "
              "its keys are revoked.")
    return 0
