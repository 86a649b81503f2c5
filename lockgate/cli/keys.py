"""`lockgate keys create`: issue an API key through the gateway's admin API."""

from __future__ import annotations

import argparse
import json

from lockgate.cli.options import add_gateway_options


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("keys", help="manage API keys",
                                 description="Manage API keys through the gateway.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create",
        help="create an API key (the secret is printed once)",
        description="Create an API key with AuthService/CreateApiKey, authenticated with "
        "the admin key. The secret is shown once and is not stored anywhere.",
    )
    create.add_argument("--tenant", required=True, help="tenant name or id")
    create.add_argument("--name", required=True, help="a name for the key")
    create.add_argument("--role", dest="roles", action="append", default=[], metavar="ROLE",
                        help="role to grant (repeatable; default: developer)")
    create.add_argument("--model", dest="models", action="append", default=[], metavar="MODEL",
                        help="model alias the key may call (repeatable; default: any)")
    create.add_argument("--json", action="store_true", help="print the response as JSON")
    add_gateway_options(create)
    create.set_defaults(handler=create_key)


def create_key(args: argparse.Namespace) -> int:
    from google.protobuf.json_format import MessageToDict

    from lockgate.auth.v1 import auth_service_pb2 as pb
    from lockgate.auth.v1 import auth_service_pb2_grpc as pb_grpc
    from lockgate.cli.gateway import bearer, call, channel
    from lockgate.cli.options import admin_key, gateway_url

    key, url = admin_key(args), gateway_url(args)
    request = pb.CreateApiKeyRequest(
        tenant=args.tenant, name=args.name, roles=args.roles, models=args.models
    )
    with channel(url) as ch:
        stub = pb_grpc.AuthServiceStub(ch)
        reply = call(lambda: stub.CreateApiKey(request, metadata=bearer(key), timeout=args.timeout))
    if args.json:
        print(json.dumps(MessageToDict(reply, preserving_proto_field_name=True), indent=2))
        return 0
    k = reply.key
    print(f"Created API key {k.name!r} for tenant {args.tenant}")
    print(f"  id:     {k.id}")
    print(f"  prefix: {k.prefix}")
    print(f"  roles:  {', '.join(k.roles) or '-'}")
    print(f"  models: {', '.join(k.models) or 'any'}")
    print(f"Secret (shown once, store it now): {reply.secret}")
    return 0
