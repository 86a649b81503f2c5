"""`lockgate subscriptions list|get|create|approve|reject|revoke` (RegistryService).

A team subscribes to an API (one version, or every version) with a key of the team;
the approval policy (policies/lockgate/approval) approves it at once, leaves it
pending for the API's owners, or rejects it. Owners see the requests waiting for
them with `list --pending`, then approve or reject; an approved subscription can
be revoked. The gateway enforces decisions within about a second.
"""

from __future__ import annotations

import argparse

from lockgate.cli import admin, apis
from lockgate.cli.errors import CliError
from lockgate.cli.versions import VERSION_PATTERN

#: services/registry/subscriptions.py STATES.
STATES = ("pending", "approved", "rejected", "revoked")
HEADERS = ("ID", "API", "VERSION", "TEAM", "TENANT", "STATE", "CREATED", "DECIDED BY")
_DONE = {"approve": "Approved", "reject": "Rejected", "revoke": "Revoked"}
_METHOD = {"approve": "ApproveSubscription", "reject": "RejectSubscription",
           "revoke": "RevokeSubscription"}


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "subscriptions", help="teams' subscriptions to APIs: request, approve, revoke",
        description="Manage subscriptions to APIs (RegistryService) through the gateway.",
    )
    actions = admin.actions_of(parser, "actions")

    listing = actions.add_parser(
        "list", help="the key's team's subscriptions, or (--pending) requests to decide")
    listing.add_argument("--pending", action="store_true",
                         help="requests waiting for the caller's decision as an owner")
    listing.add_argument("--api", default="", metavar="API", help="only this API (id or name)")
    listing.add_argument("--state", default="", choices=STATES, help="only this state")
    admin.add_list_options(listing)
    listing.set_defaults(handler=run_list)

    get = actions.add_parser("get", help="show one subscription")
    get.add_argument("subscription", metavar="ID", help="the subscription's id (sub_…)")
    get.set_defaults(handler=run_get)

    create = actions.add_parser(
        "create", help="subscribe the key's team to an API (approved or pending, by policy)")
    create.add_argument("--api", required=True, metavar="API",
                        help="API id (or name in the caller's tenant)")
    create.add_argument("--version", default="", metavar="V",
                        help="one version (v1, v2.1); default: every version")
    create.add_argument("--justification", default="", metavar="J",
                        help="why the team needs it (required across tenants)")
    create.set_defaults(handler=run_create)

    subs = [listing, get, create]
    for action, text in (("approve", "approve a pending request (owners)"),
                         ("reject", "reject a pending request (owners)"),
                         ("revoke", "revoke a pending or approved subscription")):
        sub = actions.add_parser(action, help=text)
        sub.add_argument("subscription", metavar="ID", help="the subscription's id (sub_…)")
        sub.add_argument("--reason", default="", metavar="R", help="why (kept and audited)")
        sub.set_defaults(handler=run_decide, decision=action)
        subs.append(sub)

    for sub in subs:
        admin.add_common(sub)


# -- rendering ---------------------------------------------------------------------------


def row(s) -> tuple:
    return (s.id, s.api_name or s.api_id, s.version or "all", s.team_id,
            s.subscriber_tenant_id, s.state, admin.when(s, "create_time"),
            s.decided_by or "-")


def format_subscription(s) -> str:
    return admin.format_detail([
        ("ID", s.id), ("API", f"{s.api_name} ({s.api_id})" if s.api_name else s.api_id),
        ("Version", s.version or "all versions"), ("Team", s.team_id),
        ("Tenant", s.subscriber_tenant_id), ("State", s.state),
        ("Justification", s.justification or "-"), ("Decided by", s.decided_by or "-"),
        ("Reason", s.decision_reason or "-"), ("Created", admin.when(s, "create_time")),
        ("Updated", admin.when(s, "update_time")), ("Etag", s.etag),
    ])


# -- requests ----------------------------------------------------------------------------


def list_request(args: argparse.Namespace):
    from lockgate.registry.v1 import registry_service_pb2 as pb

    return pb.ListSubscriptionsRequest(pending_approval=args.pending, api_id=args.api,
                                       state=args.state)


def create_request(args: argparse.Namespace):
    from lockgate.registry.v1 import registry_service_pb2 as pb

    if not args.api.strip():
        raise CliError("--api must not be empty", 2)
    version = args.version.strip()
    if version and not VERSION_PATTERN.fullmatch(version):
        raise CliError(f"--version: {args.version!r} is not v<major>[.<minor>] (e.g. v1)", 2)
    return pb.CreateSubscriptionRequest(api_id=args.api, version=version,
                                        justification=args.justification.strip())


def decide_request(args: argparse.Namespace):
    from lockgate.registry.v1 import registry_service_pb2 as pb

    message = {"approve": pb.ApproveSubscriptionRequest, "reject": pb.RejectSubscriptionRequest,
               "revoke": pb.RevokeSubscriptionRequest}[args.decision]
    return message(subscription_id=args.subscription, reason=args.reason.strip())


# -- commands ----------------------------------------------------------------------------


def _show(args: argparse.Namespace, reply, message: str) -> int:
    return apis.show(args, message, reply.subscription, format_subscription, reply)


def run_list(args: argparse.Namespace) -> int:
    reply = apis.list_pages(args, "ListSubscriptions", list_request(args), "subscriptions")
    empty = "No requests waiting for you." if args.pending else "No subscriptions."
    return admin.print_list(reply, "subscriptions", HEADERS, row, args.json, empty)


def run_get(args: argparse.Namespace) -> int:
    from lockgate.registry.v1 import registry_service_pb2 as pb

    request = pb.GetSubscriptionRequest(subscription_id=args.subscription)
    return _show(args, apis.one_call(args, "GetSubscription", request), "")


def run_create(args: argparse.Namespace) -> int:
    reply = apis.one_call(args, "CreateSubscription", create_request(args))
    s = reply.subscription
    if s.state == "pending":
        note = f"Requested subscription {s.id}: pending, the API's owners decide."
    else:
        note = f"Subscription {s.id} is {s.state}."
    return _show(args, reply, note)


def run_decide(args: argparse.Namespace) -> int:
    reply = apis.one_call(args, _METHOD[args.decision], decide_request(args))
    return _show(args, reply, f"{_DONE[args.decision]} subscription {reply.subscription.id}.")
