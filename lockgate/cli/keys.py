"""`lockgate keys list|get|create|update|rotate|revoke --tenant T` (AuthService).

The secret of a new key (create, rotate) is in the response only: printed once,
never stored. `update` changes only the fields whose flags are given.
"""

from __future__ import annotations

import argparse
import sys

from lockgate.cli import admin
from lockgate.cli.errors import CliError

HEADERS = ("ID", "NAME", "PREFIX", "STATUS", "OWNER", "TEAM", "ROLES", "SCOPES", "MODELS",
           "EXPIRES", "LAST USED")
UPDATE_FLAGS = ("--name", "--role", "--model", "--any-model", "--scope", "--any-scope",
                "--expires")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "keys", help="manage API keys",
        description="Manage API keys through the gateway's admin API (AuthService).",
    )
    actions = admin.actions_of(parser, "actions")

    listing = actions.add_parser("list", help="list the tenant's keys (that the key may see)")
    listing.add_argument("--team", default="", help="only keys acting in this team (name or id)")
    listing.add_argument("--owner", default="", metavar="OWNER",
                         help="only keys of users/<email or id> or service-accounts/<name or id>")
    listing.add_argument("--status", default="", choices=admin.KEY_STATUSES,
                         help="only active, revoked or expired keys")
    admin.add_list_options(listing)
    listing.set_defaults(handler=run_list)

    get = actions.add_parser("get", help="show one key (never its secret)")
    get.add_argument("key_id", metavar="KEY_ID", help="the key's id (key_…)")
    get.set_defaults(handler=run_get)

    create = actions.add_parser(
        "create", help="create an API key (the secret is printed once)",
        description="Create an API key with AuthService/CreateApiKey, authenticated with "
        "the admin key. The secret is shown once and is not stored anywhere.",
    )
    create.add_argument("--name", required=True, help="a name for the key")
    create.add_argument("--owner", default="", metavar="OWNER",
                        help="users/<email or id> or service-accounts/<name or id>"
                        " (default: the caller)")
    create.add_argument("--team", default="",
                        help="the team the key acts in (name or id; default: the owner's team)")
    _rights_flags(create, "default: developer, or the owner's roles if fewer")
    create.add_argument("--expires", default=None, metavar="WHEN",
                        help="a duration from now (30d, 12h) or an ISO time"
                        " (default: never expires)")
    create.set_defaults(handler=run_create)

    update = actions.add_parser(
        "update", help="change a key (only the fields whose flags are given)")
    update.add_argument("key_id", metavar="KEY_ID", help="the key's id (key_…)")
    update.add_argument("--name", default=None, help="the new name")
    _rights_flags(update, "replaces its roles")
    update.add_argument("--any-model", action="store_true",
                        help="allow every model (clears the model list)")
    update.add_argument("--any-scope", action="store_true",
                        help="allow every API (clears the scope list)")
    update.add_argument("--expires", default=None, metavar="WHEN",
                        help="a duration from now (30d), an ISO time, or `never`")
    admin.add_etag(update)
    update.set_defaults(handler=run_update)

    rotate = actions.add_parser(
        "rotate", help="issue a successor key (the new secret is printed once)",
        description="Issue a successor with the same owner, team, roles, models and scopes. "
        "The old key keeps working for the overlap window, then expires.",
    )
    rotate.add_argument("key_id", metavar="KEY_ID", help="the key's id (key_…)")
    rotate.add_argument("--overlap", default=None, metavar="DURATION",
                        help="how long the old key keeps working: 1h, 7d, … at most 30d;"
                        " 0 ends it now (default: 1 day)")
    rotate.set_defaults(handler=run_rotate)

    revoke = actions.add_parser("revoke", help="revoke a key (refused within seconds)")
    revoke.add_argument("key_id", metavar="KEY_ID", help="the key's id (key_…)")
    revoke.set_defaults(handler=run_revoke)

    for sub in (listing, get, create, update, rotate, revoke):
        admin.add_tenant(sub)
        admin.add_common(sub)


def _rights_flags(parser: argparse.ArgumentParser, role_note: str) -> None:
    parser.add_argument("--role", dest="roles", action="append", default=None,
                        choices=admin.ROLES, metavar="ROLE",
                        help=f"role the key carries (repeatable; {role_note};"
                        f" {', '.join(admin.ROLES)})")
    parser.add_argument("--model", dest="models", action="append", default=None,
                        metavar="MODEL",
                        help="model alias the key may call (repeatable; default: any)")
    parser.add_argument("--scope", dest="scopes", action="append", default=None,
                        choices=admin.SCOPES, metavar="SCOPE",
                        help="API the key may call (repeatable; default: any;"
                        f" {', '.join(admin.SCOPES)})")


def owner(k) -> str:
    return f"{k.owner_kind}:{k.owner_id}" if k.owner_id else "-"


def expires(k) -> str:
    return admin.when(k, "expire_time") if k.HasField("expire_time") else "never"


def row(k) -> tuple:
    return (k.id, k.name, k.prefix, k.status, owner(k), k.team_id or "-",
            admin.joined(k.roles), admin.joined(k.scopes, "any"), admin.joined(k.models, "any"),
            expires(k), admin.when(k, "last_used_time"))


def format_key(k) -> str:
    pairs = [
        ("ID", k.id), ("Name", k.name), ("Prefix", k.prefix), ("Status", k.status),
        ("Tenant", k.tenant_id), ("Team", k.team_id or "- (tenant-wide)"), ("Owner", owner(k)),
        ("Roles", admin.joined(k.roles)), ("Scopes", admin.joined(k.scopes, "any API")),
        ("Models", admin.joined(k.models, "any model")),
        ("Created", admin.when(k, "create_time")), ("Expires", expires(k)),
        ("Last used", admin.when(k, "last_used_time")),
    ]
    if k.HasField("revoke_time"):
        pairs.append(("Revoked", admin.when(k, "revoke_time")))
    if k.replaced_by:
        pairs.append(("Replaced by", k.replaced_by))
    pairs.append(("Etag", k.etag))
    return admin.format_detail(pairs)


# -- requests ------------------------------------------------------------------------


def list_request(args: argparse.Namespace):
    from lockgate.auth.v1 import auth_service_pb2 as pb

    if args.owner:
        admin.check_owner("--owner", args.owner)
    return pb.ListApiKeysRequest(tenant=args.tenant, team=args.team, owner=args.owner,
                                 status=args.status)


def create_request(args: argparse.Namespace, now=None):
    from lockgate.auth.v1 import auth_service_pb2 as pb

    if not args.name.strip():
        raise CliError("--name must not be empty", 2)
    if args.owner:
        admin.check_owner("--owner", args.owner)
    request = pb.CreateApiKeyRequest(
        tenant=args.tenant, name=args.name, owner=args.owner, team=args.team,
        roles=list(dict.fromkeys(args.roles or [])),
        models=list(dict.fromkeys(args.models or [])),
        scopes=list(dict.fromkeys(args.scopes or [])),
    )
    if args.expires is not None:
        request.expire_time.FromDatetime(admin.parse_expiry("--expires", args.expires, now))
    return request


def update_request(args: argparse.Namespace, now=None):
    from lockgate.auth.v1 import auth_service_pb2 as pb

    admin.exclusive("--model", args.models, "--any-model", args.any_model)
    admin.exclusive("--scope", args.scopes, "--any-scope", args.any_scope)
    request = pb.UpdateApiKeyRequest(tenant=args.tenant, key_id=args.key_id, etag=args.etag)
    patch, paths = request.patch, request.update_mask.paths
    if args.name is not None:
        if not args.name.strip():
            raise CliError("--name must not be empty", 2)
        patch.name = args.name
        paths.append("name")
    if args.roles is not None:
        patch.roles.extend(dict.fromkeys(args.roles))
        paths.append("roles")
    if args.models is not None or args.any_model:
        patch.models.extend(dict.fromkeys(args.models or []))
        paths.append("models")
    if args.scopes is not None or args.any_scope:
        patch.scopes.extend(dict.fromkeys(args.scopes or []))
        paths.append("scopes")
    if args.expires is not None:
        if args.expires.strip().lower() != "never":
            patch.expire_time.FromDatetime(admin.parse_expiry("--expires", args.expires, now))
        paths.append("expire_time")
    if not paths:
        raise admin.nothing_to_update(UPDATE_FLAGS)
    return request


def rotate_request(args: argparse.Namespace):
    from lockgate.auth.v1 import auth_service_pb2 as pb

    request = pb.RotateApiKeyRequest(tenant=args.tenant, key_id=args.key_id)
    if args.overlap is not None:
        overlap = admin.parse_duration("--overlap", args.overlap, allow_zero=True)
        if overlap > admin.MAX_OVERLAP:
            raise CliError(f"--overlap: at most {admin.MAX_OVERLAP.days} days", 2)
        request.overlap_seconds = int(overlap.total_seconds())
    return request


# -- commands ------------------------------------------------------------------------


def _show(args: argparse.Namespace, reply, message: str) -> int:
    if args.json:
        admin.print_json(reply)
    else:
        if message:
            print(message)
        print(format_key(reply.key))
    return 0


def _print_secret(args: argparse.Namespace, reply, message: str) -> None:
    if args.json:
        admin.print_json(reply)
    else:
        print(message)
        print(format_key(reply.key))
        print()
        print(f"Secret: {reply.secret}")
    print(f"WARNING: {admin.SECRET_WARNING}", file=sys.stderr)


def run_list(args: argparse.Namespace) -> int:
    reply = admin.list_pages(args, "ListApiKeys", list_request(args), "keys")
    return admin.print_list(reply, "keys", HEADERS, row, args.json, "No keys.")


def run_get(args: argparse.Namespace) -> int:
    from lockgate.auth.v1 import auth_service_pb2 as pb

    request = pb.GetApiKeyRequest(tenant=args.tenant, key_id=args.key_id)
    return _show(args, admin.one_call(args, "GetApiKey", request), "")


def run_create(args: argparse.Namespace) -> int:
    reply = admin.one_call(args, "CreateApiKey", create_request(args))
    _print_secret(args, reply, f"Created API key {reply.key.name!r} in tenant {args.tenant}.")
    return 0


def run_update(args: argparse.Namespace) -> int:
    reply = admin.one_call(args, "UpdateApiKey", update_request(args))
    return _show(args, reply, f"Updated API key {reply.key.id}.")


def run_rotate(args: argparse.Namespace) -> int:
    reply = admin.one_call(args, "RotateApiKey", rotate_request(args))
    previous = reply.previous
    until = admin.when(previous, "expire_time")
    _print_secret(args, reply, f"Rotated API key {previous.id}: its successor is {reply.key.id}; "
                  f"the old key works until {until} UTC.")
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    from lockgate.auth.v1 import auth_service_pb2 as pb

    request = pb.RevokeApiKeyRequest(tenant=args.tenant, key_id=args.key_id)
    reply = admin.one_call(args, "RevokeApiKey", request)
    return _show(args, reply, f"Revoked API key {reply.key.id}: it is refused from now on.")
