"""`lockgate whoami`: the principal behind the admin key (AuthService/GetCaller)."""

from __future__ import annotations

import argparse

from lockgate.cli import admin


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "whoami", help="show who the key belongs to: tenant, team, principal, roles",
        description="Show the principal behind the key (AuthService/GetCaller): its tenant, "
        "team, owner, roles, API scopes and models.",
    )
    admin.add_common(parser)
    parser.set_defaults(handler=run)


def format_caller(reply) -> str:
    tenant = f"{reply.tenant_name} ({reply.tenant_id})" if reply.tenant_name else reply.tenant_id
    principal = f"{reply.principal_kind} {reply.principal_id}".strip()
    return admin.format_detail([
        ("Tenant", tenant or "-"),
        ("Team", reply.team_id or "- (tenant-wide)"),
        ("Principal", principal or "-"),
        ("Key", reply.key_id or "-"),
        ("Roles", admin.joined(reply.roles)),
        ("Scopes", admin.joined(reply.scopes, "any API")),
        ("Models", admin.joined(reply.models, "any model")),
    ])


def run(args: argparse.Namespace) -> int:
    from lockgate.auth.v1 import auth_service_pb2 as pb

    reply = admin.one_call(args, "GetCaller", pb.GetCallerRequest())
    if args.json:
        admin.print_json(reply)
    else:
        print(format_caller(reply))
    return 0
