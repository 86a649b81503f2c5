"""`lockgate audit list --tenant T`: the audit trail of admin changes, newest first."""

from __future__ import annotations

import argparse

from lockgate.cli import admin

HEADERS = ("TIME", "ACTION", "OBJECT TYPE", "OBJECT ID", "ACTOR", "ACTOR KEY", "EVENT ID")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "audit", help="list the audit trail of admin changes",
        description="The audit events of a tenant (AuthService/ListAuditEvents), newest first.",
    )
    actions = admin.actions_of(parser, "actions")
    listing = actions.add_parser("list", help="list audit events, newest first")
    listing.add_argument("--object", default="", metavar="ID",
                         help="only events on this object id")
    listing.add_argument("--action", dest="audit_action", default="", metavar="ACTION",
                         help="only this action (keys.create, teams.update, …)")
    admin.add_list_options(listing)
    admin.add_tenant(listing)
    admin.add_common(listing)
    listing.set_defaults(handler=run_list)


def row(e) -> tuple:
    return (admin.when(e, "create_time"), e.action, e.object_type, e.object_id,
            e.actor_principal or "-", e.actor_key_id or "-", e.id)


def list_request(args: argparse.Namespace):
    from lockgate.auth.v1 import auth_service_pb2 as pb

    return pb.ListAuditEventsRequest(tenant=args.tenant, object_id=args.object,
                                     action=args.audit_action)


def run_list(args: argparse.Namespace) -> int:
    reply = admin.list_pages(args, "ListAuditEvents", list_request(args), "events")
    return admin.print_list(reply, "events", HEADERS, row, args.json, "No audit events.")
