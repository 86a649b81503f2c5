"""`lockgate users list|get|create|update|delete --tenant T` (AuthService).

A user has tenant-wide roles (--role) and roles in teams (--member TEAM=ROLE[,ROLE]);
`update` changes only the fields whose flags are given (its update mask).
"""

from __future__ import annotations

import argparse

from lockgate.cli import admin

HEADERS = ("EMAIL", "ID", "DISPLAY NAME", "ROLES", "TEAMS", "STATUS", "CREATED")
UPDATE_FLAGS = ("--display-name", "--role", "--clear-roles", "--member", "--clear-members",
                "--status")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "users", help="list, show, create, update and delete users",
        description="Manage the users of a tenant through the gateway's admin API.",
    )
    actions = admin.actions_of(parser, "actions")

    listing = actions.add_parser("list", help="list the tenant's users (that the key may see)")
    listing.add_argument("--team", default="", help="only members of this team (name or id)")
    listing.add_argument("--email-prefix", default="", help="only e-mails starting with this")
    admin.add_list_options(listing)
    listing.set_defaults(handler=run_list)

    get = actions.add_parser("get", help="show one user")
    get.add_argument("user", metavar="USER", help="e-mail or id")
    get.set_defaults(handler=run_get)

    create = actions.add_parser("create", help="create a user")
    create.add_argument("--email", required=True, help="the user's e-mail (unique)")
    create.add_argument("--display-name", default="", help="a human-readable name")
    _role_flags(create)
    create.set_defaults(handler=run_create)

    update = actions.add_parser(
        "update", help="change a user (only the fields whose flags are given)")
    update.add_argument("user", metavar="USER", help="e-mail or id")
    update.add_argument("--display-name", default=None, help="the new display name")
    _role_flags(update)
    update.add_argument("--clear-roles", action="store_true", help="remove every tenant-wide role")
    update.add_argument("--clear-members", action="store_true",
                        help="remove the user from every team")
    update.add_argument("--status", choices=admin.STATUSES, default=None,
                        help="disable (its keys and tokens are refused) or re-enable")
    admin.add_etag(update)
    update.set_defaults(handler=run_update)

    delete = actions.add_parser("delete", help="delete a user and revoke every key they own")
    delete.add_argument("user", metavar="USER", help="e-mail or id")
    admin.add_etag(delete)
    delete.set_defaults(handler=run_delete)

    for sub in (listing, get, create, update, delete):
        admin.add_tenant(sub)
        admin.add_common(sub)


def _role_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--role", dest="roles", action="append", default=None,
                        choices=admin.ROLES, metavar="ROLE",
                        help=f"tenant-wide role, in every team (repeatable; {', '.join(admin.ROLES)})")
    parser.add_argument("--member", dest="members", action="append", default=None,
                        metavar="TEAM=ROLE[,ROLE]",
                        help="roles in one team (repeatable; roles: "
                        f"{', '.join(admin.TEAM_ROLES)}), e.g. --member ml=developer")


def memberships(user) -> str:
    return " ".join(f"{m.team}:{','.join(m.roles)}" for m in user.memberships) or "-"


def row(u) -> tuple:
    return (u.email, u.id, u.display_name or "-", admin.joined(u.roles), memberships(u),
            u.status, admin.when(u, "create_time"))


def format_user(u) -> str:
    return admin.format_detail([
        ("E-mail", u.email), ("ID", u.id), ("Tenant", u.tenant_id),
        ("Display name", u.display_name or "-"), ("Roles", admin.joined(u.roles)),
        ("Teams", memberships(u)), ("Status", u.status),
        ("Created", admin.when(u, "create_time")), ("Updated", admin.when(u, "update_time")),
        ("Etag", u.etag),
    ])


def create_request(args: argparse.Namespace):
    from lockgate.auth.v1 import auth_service_pb2 as pb

    return pb.CreateUserRequest(
        tenant=args.tenant, email=args.email, display_name=args.display_name,
        roles=list(dict.fromkeys(args.roles or [])),
        memberships=admin.parse_members(args.members or []),
    )


def update_request(args: argparse.Namespace):
    from lockgate.auth.v1 import auth_service_pb2 as pb

    admin.exclusive("--role", args.roles, "--clear-roles", args.clear_roles)
    admin.exclusive("--member", args.members, "--clear-members", args.clear_members)
    request = pb.UpdateUserRequest(tenant=args.tenant, user=args.user, etag=args.etag)
    patch, paths = request.patch, request.update_mask.paths
    if args.display_name is not None:
        patch.display_name = args.display_name
        paths.append("display_name")
    if args.roles is not None or args.clear_roles:
        patch.roles.extend(dict.fromkeys(args.roles or []))
        paths.append("roles")
    if args.members is not None or args.clear_members:
        patch.memberships.extend(admin.parse_members(args.members or []))
        paths.append("memberships")
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
        print(format_user(reply.user))
    return 0


def run_list(args: argparse.Namespace) -> int:
    from lockgate.auth.v1 import auth_service_pb2 as pb

    request = pb.ListUsersRequest(tenant=args.tenant, team=args.team,
                                  email_prefix=args.email_prefix)
    reply = admin.list_pages(args, "ListUsers", request, "users")
    return admin.print_list(reply, "users", HEADERS, row, args.json, "No users.")


def run_get(args: argparse.Namespace) -> int:
    from lockgate.auth.v1 import auth_service_pb2 as pb

    request = pb.GetUserRequest(tenant=args.tenant, user=args.user)
    return _show(args, admin.one_call(args, "GetUser", request), "")


def run_create(args: argparse.Namespace) -> int:
    reply = admin.one_call(args, "CreateUser", create_request(args))
    return _show(args, reply, f"Created user {reply.user.email} in tenant {args.tenant}.")


def run_update(args: argparse.Namespace) -> int:
    reply = admin.one_call(args, "UpdateUser", update_request(args))
    return _show(args, reply, f"Updated user {reply.user.email}.")


def run_delete(args: argparse.Namespace) -> int:
    from lockgate.auth.v1 import auth_service_pb2 as pb

    request = pb.DeleteUserRequest(tenant=args.tenant, user=args.user, etag=args.etag)
    reply = admin.one_call(args, "DeleteUser", request)
    if args.json:
        admin.print_json(reply)
    else:
        print(f"Deleted user {args.user} of tenant {args.tenant}; their keys are revoked.")
    return 0
