"""`lockgate apis list|get|create|update|audit` (RegistryService): the API catalog,
and the registry's hash-chained audit log (`apis audit`, `apis audit verify`).

Also what the registry commands share (lockgate.cli.versions, lockgate.cli.subscriptions):
RegistryService calls with the key (--key, LOCKGATE_KEY or admin.key), paging, and
table / JSON output (lockgate.cli.admin's helpers). `API` arguments take an API id or,
for the caller's own tenant, its name.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from lockgate.cli import admin
from lockgate.cli.errors import CliError

KINDS = ("model", "prompt")
#: services/registry/access.py VISIBILITIES.
VISIBILITIES = ("private", "team", "tenant", "shared", "public")
#: services/registry/catalog.py NAME_PATTERN.
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{1,62}$")

HEADERS = ("NAME", "ID", "KIND", "OWNER TEAM", "VISIBILITY", "ALIASES", "CREATED", "ETAG")
AUDIT_HEADERS = ("SEQ", "TIME", "ACTION", "OBJECT TYPE", "OBJECT ID", "ACTOR", "DECISION")
UPDATE_FLAGS = ("--description", "--visibility", "--share-with", "--no-share", "--log-bodies",
                "--no-log-bodies")


# -- calls (shared by the registry commands) --------------------------------------------


@contextmanager
def registry_service(args: argparse.Namespace) -> Iterator[admin.Invoke]:
    """invoke(method, request) on RegistryService, with the key, through the gateway."""
    from lockgate.cli.gateway import bearer, call, channel
    from lockgate.cli.options import admin_key, gateway_url
    from lockgate.registry.v1 import registry_service_pb2_grpc as pb_grpc

    metadata = bearer(admin_key(args))
    with channel(gateway_url(args)) as ch:
        stub = pb_grpc.RegistryServiceStub(ch)

        def invoke(method: str, request):
            rpc = getattr(stub, method)
            return call(lambda: rpc(request, metadata=metadata, timeout=args.timeout))

        yield invoke


def one_call(args: argparse.Namespace, method: str, request):
    with registry_service(args) as invoke:
        return invoke(method, request)


def list_pages(args: argparse.Namespace, method: str, request, field: str):
    """One List call, or with --all every page merged (next_page_token then empty)."""
    if args.page_size:
        request.page_size = args.page_size
    request.page_token = args.page_token
    with registry_service(args) as invoke:
        reply = invoke(method, request)
        merged = reply
        while args.all and reply.next_page_token:
            request.page_token = reply.next_page_token
            reply = invoke(method, request)
            getattr(merged, field).extend(getattr(reply, field))
            merged.next_page_token = reply.next_page_token
    return merged


def show(args: argparse.Namespace, message_text: str, obj, formatter, reply) -> int:
    """--json: the whole reply; else an optional line, then the object's details."""
    if args.json:
        admin.print_json(reply)
    else:
        if message_text:
            print(message_text)
        print(formatter(obj))
    return 0


def add_api(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("api", metavar="API", help="API id, or name in the caller's tenant")


def kind_name(kind: int) -> str:
    from lockgate.registry.v1 import registry_service_pb2 as pb

    return {pb.API_KIND_MODEL: "model", pb.API_KIND_PROMPT: "prompt"}.get(kind, "-")


def kind_value(name: str) -> int:
    from lockgate.registry.v1 import registry_service_pb2 as pb

    return {"model": pb.API_KIND_MODEL, "prompt": pb.API_KIND_PROMPT}[name]


# -- argparse ----------------------------------------------------------------------------


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "apis", help="the API catalog: list, show, create and update APIs; the registry audit",
        description="Manage APIs in the registry (RegistryService) through the gateway. "
        "API arguments take an id, or a name in the caller's tenant.",
    )
    actions = admin.actions_of(parser, "actions")

    listing = actions.add_parser("list", help="the catalog: every API the key may see")
    listing.add_argument("--query", default="", metavar="Q",
                         help="only APIs whose name or description contains Q")
    listing.add_argument("--kind", default="", choices=KINDS, help="only model or prompt APIs")
    admin.add_list_options(listing)
    listing.set_defaults(handler=run_list)

    get = actions.add_parser("get", help="show one API")
    add_api(get)
    get.set_defaults(handler=run_get)

    create = actions.add_parser(
        "create", help="add an API to the catalog (owner team admins, tenant admins)")
    create.add_argument("--name", required=True,
                        help="unique in the tenant: 2-63 lower-case letters, digits and dashes")
    create.add_argument("--kind", required=True, choices=KINDS,
                        help="model (exposes model aliases) or prompt (a prompt template)")
    create.add_argument("--description", default="", help="what the API is for")
    create.add_argument("--owner-team", default="", metavar="TEAM",
                        help="the owner team: a team id (team_…) or a team name of the "
                        "caller's tenant (default: the key's team)")
    create.add_argument("--visibility", default="", choices=VISIBILITIES,
                        help="who finds it in the catalog (default: tenant)")
    create.add_argument("--share-with", dest="share_with", action="append", default=None,
                        metavar="TENANT_ID",
                        help="with --visibility shared: a tenant id it is shared with"
                        " (repeatable)")
    create.add_argument("--alias", dest="aliases", action="append", default=None, metavar="A",
                        help="model APIs: a model alias for a draft version v1 (repeatable)")
    create.add_argument("--log-bodies", action="store_true",
                        help="keep the redacted request and response bodies of its calls in"
                        " the call log (`lockgate calls`)")
    create.set_defaults(handler=run_create)

    update = actions.add_parser("update", help="change an API (only the flags given)")
    add_api(update)
    update.add_argument("--description", default=None, help="the new description")
    update.add_argument("--visibility", default=None, choices=VISIBILITIES,
                        help="the new visibility")
    update.add_argument("--share-with", dest="share_with", action="append", default=None,
                        metavar="TENANT_ID",
                        help="replaces the tenants it is shared with (repeatable)")
    update.add_argument("--no-share", action="store_true",
                        help="share with no other tenant (clears the list)")
    bodies = update.add_mutually_exclusive_group()
    bodies.add_argument("--log-bodies", dest="log_bodies", action="store_const", const=True,
                        default=None,
                        help="keep redacted request and response bodies of its calls")
    bodies.add_argument("--no-log-bodies", dest="log_bodies", action="store_const",
                        const=False, help="stop keeping bodies of its calls")
    admin.add_etag(update)
    update.set_defaults(handler=run_update)

    audit = actions.add_parser(
        "audit", help="the registry's audit log, newest first; `verify` checks its hash chain",
        description="`apis audit`: the registry audit events of the caller's tenant, newest "
        "first (tenant admins). `apis audit verify`: recompute the hash chain of the whole "
        "log (platform admins); exit 1 when it is broken.",
    )
    audit.add_argument("what", nargs="?", choices=("verify",), default=None,
                       help="verify: check the hash chain instead of listing")
    audit.add_argument("--object", default="", metavar="ID",
                       help="only events on this object (api_…, api_…/v1, sub_…)")
    admin.add_list_options(audit)
    audit.set_defaults(handler=run_audit)

    for sub in (listing, get, create, update, audit):
        admin.add_common(sub)


# -- rendering ---------------------------------------------------------------------------


def row(a) -> tuple:
    return (a.name, a.id, kind_name(a.kind), a.owner_team_id or "-", a.visibility or "-",
            admin.joined(a.model_aliases), admin.when(a, "create_time"), a.etag)


def format_api(a) -> str:
    pairs = [
        ("Name", a.name), ("ID", a.id), ("Kind", kind_name(a.kind)), ("Tenant", a.tenant_id),
        ("Owner team", a.owner_team_id or "-"), ("Visibility", a.visibility or "-"),
    ]
    if a.visibility == "shared" or a.shared_tenant_ids:
        pairs.append(("Shared with", admin.joined(a.shared_tenant_ids)))
    pairs += [
        ("Description", a.description or "-"),
        ("Model aliases", admin.joined(a.model_aliases)),
        ("Log bodies", "yes" if a.log_bodies else "no"),
        ("Created", admin.when(a, "create_time")), ("Updated", admin.when(a, "update_time")),
        ("Etag", a.etag),
    ]
    return admin.format_detail(pairs)


def audit_row(e) -> tuple:
    return (e.seq, admin.when(e, "create_time"), e.action, e.object_type, e.object_id,
            e.actor or "-", e.decision_id or "-")


def format_verdict(v) -> str:
    if v.intact:
        return f"Audit chain intact: {v.events} events verified."
    return (f"Audit chain BROKEN at seq {v.first_bad_seq}: {v.problem or 'hash mismatch'}"
            f" ({v.events} events read).")


# -- requests ----------------------------------------------------------------------------


def _tenant_ids(values) -> list[str]:
    out = []
    for value in values or []:
        value = value.strip()
        if not value:
            raise CliError("--share-with: a tenant id must not be empty", 2)
        out.append(value)
    return list(dict.fromkeys(out))


def list_request(args: argparse.Namespace):
    from lockgate.registry.v1 import registry_service_pb2 as pb

    request = pb.ListApisRequest(query=args.query)
    if args.kind:
        request.kind = kind_value(args.kind)
    return request


def create_request(args: argparse.Namespace, owner_team_id: str | None = None):
    from lockgate.registry.v1 import registry_service_pb2 as pb

    if not NAME_PATTERN.fullmatch(args.name):
        raise CliError(f"--name: {args.name!r} is not 2-63 lower-case letters, digits and "
                       "dashes starting with a letter", 2)
    shared = _tenant_ids(args.share_with)
    if shared and args.visibility != "shared":
        raise CliError("--share-with needs --visibility shared", 2)
    aliases = list(dict.fromkeys(args.aliases or []))
    if aliases and args.kind != "model":
        raise CliError("--alias is for model APIs (--kind model)", 2)
    return pb.CreateApiRequest(
        name=args.name, kind=kind_value(args.kind), description=args.description,
        model_aliases=aliases,
        owner_team_id=args.owner_team if owner_team_id is None else owner_team_id,
        visibility=args.visibility, shared_tenant_ids=shared, log_bodies=args.log_bodies,
    )


def update_request(args: argparse.Namespace):
    from lockgate.registry.v1 import registry_service_pb2 as pb

    admin.exclusive("--share-with", args.share_with, "--no-share", args.no_share)
    request = pb.UpdateApiRequest(api_id=args.api, etag=args.etag)
    patch, paths = request.patch, request.update_mask.paths
    if args.description is not None:
        patch.description = args.description
        paths.append("description")
    if args.visibility is not None:
        patch.visibility = args.visibility
        paths.append("visibility")
    if args.share_with is not None or args.no_share:
        patch.shared_tenant_ids.extend(_tenant_ids(args.share_with))
        paths.append("shared_tenant_ids")
    if args.log_bodies is not None:
        patch.log_bodies = args.log_bodies
        paths.append("log_bodies")
    if not paths:
        raise admin.nothing_to_update(UPDATE_FLAGS)
    return request


def resolve_team(args: argparse.Namespace, team: str) -> str:
    """A team id as is; a team name -> its id in the caller's tenant (AuthService)."""
    if not team or team.startswith("team_"):
        return team
    from lockgate.auth.v1 import auth_service_pb2 as auth_pb

    try:
        with admin.auth_service(args) as invoke:
            caller = invoke("GetCaller", auth_pb.GetCallerRequest())
            return invoke("GetTeam", auth_pb.GetTeamRequest(tenant=caller.tenant_id,
                                                            team=team)).team.id
    except CliError as exc:
        if exc.code != 1:
            raise
        raise CliError(f"--owner-team: cannot look up team {team!r} ({exc}); "
                       "give the team id (team_…)") from None


# -- commands ----------------------------------------------------------------------------


def run_list(args: argparse.Namespace) -> int:
    reply = list_pages(args, "ListApis", list_request(args), "apis")
    return admin.print_list(reply, "apis", HEADERS, row, args.json, "No APIs.")


def run_get(args: argparse.Namespace) -> int:
    from lockgate.registry.v1 import registry_service_pb2 as pb

    reply = one_call(args, "GetApi", pb.GetApiRequest(api_id=args.api))
    return show(args, "", reply.api, format_api, reply)


def run_create(args: argparse.Namespace) -> int:
    request = create_request(args)  # flag errors before any call
    request.owner_team_id = resolve_team(args, request.owner_team_id)
    reply = one_call(args, "CreateApi", request)
    note = f"Created API {reply.api.name!r} ({reply.api.id})."
    if request.model_aliases:
        note += " Its aliases are in a draft version v1: publish it to enforce them" \
                f" (lockgate versions publish {reply.api.id} v1)."
    return show(args, note, reply.api, format_api, reply)


def run_update(args: argparse.Namespace) -> int:
    reply = one_call(args, "UpdateApi", update_request(args))
    return show(args, f"Updated API {reply.api.name!r}.", reply.api, format_api, reply)


def run_audit(args: argparse.Namespace) -> int:
    from lockgate.registry.v1 import registry_service_pb2 as pb

    if args.what != "verify":
        request = pb.ListAuditEventsRequest(object_id=args.object)
        reply = list_pages(args, "ListAuditEvents", request, "events")
        return admin.print_list(reply, "events", AUDIT_HEADERS, audit_row, args.json,
                                "No audit events.")
    if args.object or args.page_size or args.page_token or args.all:
        raise CliError("apis audit verify takes no --object or paging flags", 2)
    verdict = one_call(args, "VerifyAuditChain", pb.VerifyAuditChainRequest())
    if args.json:
        admin.print_json(verdict)
    else:
        print(format_verdict(verdict))
    if not verdict.intact:
        if args.json:
            print(f"lockgate: audit chain broken at seq {verdict.first_bad_seq}",
                  file=sys.stderr)
        return 1
    return 0
