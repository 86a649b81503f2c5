"""`lockgate teams list|get|create|update|delete --tenant T` (AuthService)."""

from __future__ import annotations

import argparse

from lockgate.cli import admin

HEADERS = ("NAME", "ID", "DISPLAY NAME", "CREATED", "ETAG")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "teams", help="list, show, create, update and delete teams",
        description="Manage the teams of a tenant through the gateway's admin API.",
    )
    actions = admin.actions_of(parser, "actions")

    listing = actions.add_parser("list", help="list the tenant's teams (that the key may see)")
    listing.add_argument("--name-prefix", default="", help="only names starting with this")
    admin.add_list_options(listing)
    listing.set_defaults(handler=run_list)

    get = actions.add_parser("get", help="show one team")
    get.add_argument("team", metavar="TEAM", help="team name or id")
    get.set_defaults(handler=run_get)

    create = actions.add_parser("create", help="create a team")
    create.add_argument("--name", required=True,
                        help="unique in the tenant; lower-case letters, digits and dashes")
    create.add_argument("--display-name", default="", help="a human-readable name")
    create.set_defaults(handler=run_create)

    update = actions.add_parser("update", help="change a team's display name")
    update.add_argument("team", metavar="TEAM", help="team name or id")
    update.add_argument("--display-name", default=None, help="the new display name")
    admin.add_etag(update)
    update.set_defaults(handler=run_update)

    delete = actions.add_parser(
        "delete", help="delete an empty team (no members, service accounts or active keys)")
    delete.add_argument("team", metavar="TEAM", help="team name or id")
    admin.add_etag(delete)
    delete.set_defaults(handler=run_delete)

    for sub in (listing, get, create, update, delete):
        admin.add_tenant(sub)
        admin.add_common(sub)


def row(t) -> tuple:
    return (t.name, t.id, t.display_name or "-", admin.when(t, "create_time"), t.etag)


def format_team(t) -> str:
    return admin.format_detail([
        ("Name", t.name), ("ID", t.id), ("Tenant", t.tenant_id),
        ("Display name", t.display_name or "-"), ("Created", admin.when(t, "create_time")),
        ("Updated", admin.when(t, "update_time")), ("Etag", t.etag),
    ])


def update_request(args: argparse.Namespace):
    from lockgate.auth.v1 import auth_service_pb2 as pb

    request = pb.UpdateTeamRequest(tenant=args.tenant, team=args.team, etag=args.etag)
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
        print(format_team(reply.team))
    return 0


def run_list(args: argparse.Namespace) -> int:
    from lockgate.auth.v1 import auth_service_pb2 as pb

    request = pb.ListTeamsRequest(tenant=args.tenant, name_prefix=args.name_prefix)
    reply = admin.list_pages(args, "ListTeams", request, "teams")
    return admin.print_list(reply, "teams", HEADERS, row, args.json, "No teams.")


def run_get(args: argparse.Namespace) -> int:
    from lockgate.auth.v1 import auth_service_pb2 as pb

    request = pb.GetTeamRequest(tenant=args.tenant, team=args.team)
    return _show(args, admin.one_call(args, "GetTeam", request), "")


def run_create(args: argparse.Namespace) -> int:
    from lockgate.auth.v1 import auth_service_pb2 as pb

    request = pb.CreateTeamRequest(tenant=args.tenant, name=args.name,
                                   display_name=args.display_name)
    reply = admin.one_call(args, "CreateTeam", request)
    return _show(args, reply, f"Created team {reply.team.name!r} in tenant {args.tenant}.")


def run_update(args: argparse.Namespace) -> int:
    reply = admin.one_call(args, "UpdateTeam", update_request(args))
    return _show(args, reply, f"Updated team {reply.team.name!r}.")


def run_delete(args: argparse.Namespace) -> int:
    from lockgate.auth.v1 import auth_service_pb2 as pb

    request = pb.DeleteTeamRequest(tenant=args.tenant, team=args.team, etag=args.etag)
    reply = admin.one_call(args, "DeleteTeam", request)
    if args.json:
        admin.print_json(reply)
    else:
        print(f"Deleted team {args.team!r} of tenant {args.tenant}.")
    return 0
