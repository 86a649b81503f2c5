"""The admin API (AuthService) end to end, on SQLite and PostgreSQL: a real auth
server in process, every call made with the identity metadata a real Check
answer gives (as Envoy would forward it).

The world: the bootstrap platform admin, and tenants A and B, each with teams
(red, blue, empty), users (tenant_admin, team_admin, developers, viewer — the
team roles held through memberships), service accounts of every role and a
key for each of them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import orjson
import pytest
import pytest_asyncio
import sqlalchemy
from envoy.service.auth.v3 import external_auth_pb2_grpc as authz_grpc
from google.protobuf import field_mask_pb2, text_format, timestamp_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2

from lockgate.auth.v1 import auth_service_pb2 as pb
from lockgate.auth.v1 import auth_service_pb2_grpc as pb_grpc
from services.auth import convert
from services.auth.app import AuthSettings, build
from services.auth.changes import LastUsed
from tests.conftest import _create_pg_database, _drop_pg_database
from tests.integration.auth_harness import CHAT, check_request, identity_metadata

OK = grpc.StatusCode.OK
NOT_FOUND = grpc.StatusCode.NOT_FOUND
DENIED = grpc.StatusCode.PERMISSION_DENIED
INVALID = grpc.StatusCode.INVALID_ARGUMENT
ABORTED = grpc.StatusCode.ABORTED
AUTH = "/lockgate.auth.v1.AuthService/"
#: Replicas sharing a database must share the key pepper.
PEPPER = "admin-api-tests-pepper-0123456789abcdef"

# -- one auth replica -------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    code: grpc.StatusCode
    details: str = ""
    response: Any = None


class Gate:
    """A real auth server (one replica) and clients that call it as Envoy would."""

    def __init__(self, server, service, engine, channel, data_dir: Path):
        self.server, self.service, self.engine = server, service, engine
        self.channel = channel
        self.data_dir = data_dir
        self.checks = authz_grpc.AuthorizationStub(channel)
        self.stub = pb_grpc.AuthServiceStub(channel)
        self._metadata: dict[tuple[str, str], tuple] = {}
        admin_file = data_dir / "admin.key"
        self.admin_key = admin_file.read_text().strip() if admin_file.exists() else ""

    @classmethod
    async def start(cls, data_dir: Path, db_url: str, **settings: Any) -> Gate:
        server, service, engine = await build(AuthSettings(
            data_dir=data_dir, grpc_port=0, database_url=db_url, key_pepper=PEPPER, **settings
        ))
        port = await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        return cls(server, service, engine, channel, data_dir)

    async def stop(self) -> None:
        await self.channel.close()
        await self.server.stop(0)
        await self.engine.dispose()

    async def metadata(self, key: str, rpc: str) -> tuple[tuple[str, str], ...]:
        return await identity_metadata(self.checks, key, AUTH + rpc)

    async def read(self, key: str, rpc: str, request: Message) -> Any:
        """A read as `key`, whose Check answer is taken once per RPC (for keys that
        never change, like the platform admin's)."""
        metadata = self._metadata.get((key, rpc))
        if metadata is None:
            metadata = self._metadata[key, rpc] = await self.metadata(key, rpc)
        outcome = await self.send(metadata, rpc, request)
        assert outcome.code == OK, (rpc, outcome)
        return outcome.response

    async def send(self, metadata, rpc: str, request: Message) -> Outcome:
        try:
            response = await getattr(self.stub, rpc)(request, metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            return Outcome(exc.code(), exc.details() or "")
        return Outcome(OK, "", response)

    async def attempt(self, key: str, rpc: str, request: Message) -> Outcome:
        """Call AuthService/<rpc> as `key` through the gateway (a real Check first)."""
        return await self.send(await self.metadata(key, rpc), rpc, request)

    async def expect(self, key: str, rpc: str, request: Message, code=OK) -> Any:
        outcome = await self.attempt(key, rpc, request)
        assert outcome.code == code, (
            f"{rpc} answered {outcome.code.name} ({outcome.details!r}), expected {code.name}\n"
            f"request: {text_format.MessageToString(request, as_one_line=True)}"
        )
        return outcome.response if code == OK else outcome

    async def check(self, key: str | None, method: str = CHAT, model: str = "demo"):
        rest = method == CHAT
        return await self.checks.Check(check_request(key, path=method, model=model, rest=rest))

    def last_used(self) -> LastUsed:
        return next(t for t in self.server.background if isinstance(t, LastUsed))


def denial(reply) -> tuple[int, str, str]:
    """(HTTP status, error code, message) of a denied REST Check."""
    assert reply.status.code != code_pb2.OK, "expected a denial"
    body = orjson.loads(reply.denied_response.body)
    return reply.denied_response.status.code, body["error"]["code"], body["error"]["message"]


def granted(reply) -> dict[str, str]:
    """The identity headers of an allowed Check."""
    assert reply.status.code == code_pb2.OK, reply.denied_response.body
    return {h.header.key: h.header.value for h in reply.ok_response.headers}


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


# -- the world ------------------------------------------------------------------------

#: label -> (tenant-wide roles, {team: roles})
USERS = {
    "tenant_admin": (["tenant_admin"], {}),
    "team_admin": ([], {"red": ["team_admin"]}),
    "developer": ([], {"red": ["developer"]}),
    "developer2": ([], {"red": ["developer"]}),
    "viewer": ([], {"red": ["viewer"]}),
    "blue_developer": ([], {"blue": ["developer"]}),
}
#: label -> (team, roles)
ACCOUNTS = {
    "tenant_admin": ("red", ["tenant_admin"]),
    "team_admin": ("red", ["team_admin"]),
    "developer": ("red", ["developer"]),
    "viewer": ("red", ["viewer"]),
    "blue_developer": ("blue", ["developer"]),
}
#: One key per role and kind of owner: the callers of the cross-tenant matrix.
ROLE_KEYS = [f"{kind}:{role}" for role in ("tenant_admin", "team_admin", "developer", "viewer")
             for kind in ("user", "sa")]
#: The callers that try every object of tenant B (one per role, owners of both kinds);
#: the others try representative objects.
SWEEPERS = ("user:tenant_admin", "sa:team_admin", "user:developer", "sa:viewer")


@dataclass
class Side:
    """One tenant and everything in it."""

    prefix: str
    tenant: pb.Tenant
    teams: dict[str, pb.Team] = field(default_factory=dict)
    users: dict[str, pb.User] = field(default_factory=dict)
    accounts: dict[str, pb.ServiceAccount] = field(default_factory=dict)
    keys: dict[str, pb.ApiKey] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)

    def email(self, label: str) -> str:
        return self.users[label].email

    def representatives(self) -> Side:
        """The same tenant with one object of each kind (all teams: some RPCs need red)."""
        return Side(self.prefix, self.tenant, dict(self.teams),
                    {"developer": self.users["developer"]},
                    {"developer": self.accounts["developer"]},
                    {"user:developer": self.keys["user:developer"]})

    def identifiers(self) -> list[str]:
        """Every id and name that would give this tenant's data away, longest first."""
        found = {self.tenant.id, self.tenant.name}
        for team in self.teams.values():
            found |= {team.id, team.name}
        for user in self.users.values():
            found |= {user.id, user.email}
        for account in self.accounts.values():
            found |= {account.id, account.name}
        for key in self.keys.values():
            found |= {key.id, key.prefix}
        return sorted(found, key=len, reverse=True)


@dataclass
class World:
    gate: Gate
    admin: str
    a: Side
    b: Side
    #: The platform admin's view of both tenants when the world was made.
    initial: dict = field(default_factory=dict)


AUTH_TABLES = ("tenants", "teams", "users", "team_memberships", "service_accounts", "api_keys",
               "auth_audit_events", "auth_changes")


async def dump(gate: Gate) -> dict[str, list]:
    """Every row of the auth tables (keys' last-used times aside: Check moves them)."""
    found = {}
    async with gate.engine.connect() as conn:
        for table in AUTH_TABLES:
            rows = (await conn.execute(sqlalchemy.text(f"SELECT * FROM {table}"))).mappings()
            found[table] = sorted(
                repr(sorted((k, str(v)) for k, v in row.items() if k != "last_used_at"))
                for row in rows)
    return found


def _role_of(roles: list[str], teams: dict[str, list[str]]) -> str:
    held = set(roles) | {r for rs in teams.values() for r in rs}
    return next(r for r in ("platform_admin", "tenant_admin", "team_admin", "developer",
                            "viewer") if r in held)


async def make_side(gate: Gate, p: str) -> Side:
    """Seeded through the server's own use cases (as the system: fast, and the audit
    trail starts clean of API callers); the tests then use the API."""
    tenancy, keys = gate.service.tenancy, gate.service.keys
    tenant = await tenancy.create_tenant(None, f"tenant-{p}", f"Tenant {p.upper()}")
    side = Side(p, convert.tenant_to_proto(tenant))

    async def team(color: str) -> None:
        side.teams[color] = convert.team_to_proto(
            await tenancy.create_team(None, tenant.name, f"{p}-{color}"))

    async def user(label: str, roles: list[str], teams: dict[str, list[str]]) -> None:
        side.users[label] = convert.user_to_proto(await tenancy.create_user(
            None, tenant.id, f"{p}-{label.replace('_', '-')}@{p}.example", "", roles,
            [(side.teams[t].name, r) for t, r in teams.items()]))
        created = await keys.create(None, tenant.name, f"{label} key", [_role_of(roles, teams)],
                                    [], owner=f"users/{side.users[label].email}")
        side.keys[f"user:{label}"] = convert.key_to_proto(created.key)
        side.secrets[f"user:{label}"] = created.secret

    async def account(label: str, team: str, roles: list[str]) -> None:
        side.accounts[label] = convert.service_account_to_proto(
            await tenancy.create_service_account(None, tenant.name, side.teams[team].id,
                                                 f"{p}-sa-{label.replace('_', '-')}", "", roles))
        created = await keys.create(None, tenant.id, f"{label} sa key", roles, [],
                                    owner=f"service-accounts/{side.accounts[label].name}")
        side.keys[f"sa:{label}"] = convert.key_to_proto(created.key)
        side.secrets[f"sa:{label}"] = created.secret

    for color in ("red", "blue", "empty"):
        await team(color)
    for label, spec in USERS.items():
        await user(label, *spec)
    for label, spec in ACCOUNTS.items():
        await account(label, *spec)
    return side


async def build_world(gate: Gate) -> World:
    return World(gate, gate.admin_key, await make_side(gate, "a"), await make_side(gate, "b"))


async def list_all(gate: Gate, key: str, rpc: str, request: Message, items: str) -> list:
    found, token = [], ""
    while True:
        request.page_size, request.page_token = 1000, token
        response = await (gate.read(key, rpc, request) if key == gate.admin_key
                          else gate.expect(key, rpc, request))
        found.extend(getattr(response, items))
        token = response.next_page_token
        if not token:
            return found


async def snapshot(world: World) -> dict:
    """Everything in both tenants, read by the platform admin (last-used times aside:
    Check moves them)."""
    gate, admin = world.gate, world.admin
    shot: dict = {"tenants": [t.SerializeToString(deterministic=True) for t in await list_all(
        gate, admin, "ListTenants", pb.ListTenantsRequest(), "tenants")]}
    for side in (world.a, world.b):
        t = side.tenant.id
        keys = await list_all(gate, admin, "ListApiKeys", pb.ListApiKeysRequest(tenant=t), "keys")
        for key in keys:
            key.ClearField("last_used_time")
        shot[t] = {
            "tenant": await gate.read(admin, "GetTenant", pb.GetTenantRequest(tenant=t)),
            "teams": await list_all(gate, admin, "ListTeams", pb.ListTeamsRequest(tenant=t),
                                    "teams"),
            "users": await list_all(gate, admin, "ListUsers", pb.ListUsersRequest(tenant=t),
                                    "users"),
            "accounts": await list_all(gate, admin, "ListServiceAccounts",
                                       pb.ListServiceAccountsRequest(tenant=t),
                                       "service_accounts"),
            "keys": keys,
            "audit": [e.id for e in await list_all(gate, admin, "ListAuditEvents",
                                                   pb.ListAuditEventsRequest(tenant=t),
                                                   "events")],
        }
    b = world.b
    shot["b-gets"] = [
        *[await gate.read(admin, "GetTeam", pb.GetTeamRequest(tenant=b.tenant.id, team=x.id))
          for x in b.teams.values()],
        *[await gate.read(admin, "GetUser", pb.GetUserRequest(tenant=b.tenant.id, user=x.id))
          for x in b.users.values()],
        *[await gate.read(admin, "GetServiceAccount", pb.GetServiceAccountRequest(
            tenant=b.tenant.id, service_account=x.id)) for x in b.accounts.values()],
        *[await gate.read(admin, "GetApiKey", pb.GetApiKeyRequest(
            tenant=b.tenant.id, key_id=x.id)) for x in b.keys.values()],
    ]
    for got in shot["b-gets"]:
        if isinstance(got, pb.GetApiKeyResponse):
            got.key.ClearField("last_used_time")
    return shot


@pytest.fixture
async def world(database_url, tmp_path):
    gate = await Gate.start(tmp_path / "auth", database_url)
    try:
        yield await build_world(gate)
    finally:
        await gate.stop()


# -- the cross-tenant matrix ----------------------------------------------------------------
#
# For every AuthService RPC: requests that name tenant B's objects — through B's id
# or name ("foreign": they must answer NOT_FOUND), or through tenant A with B's
# object ids and names ("own": they must answer exactly what the same request
# with ids that exist nowhere answers, and never with B's data). Every role's key
# of tenant A sends each of them.

Builder = Callable[[str, Side], list[Message]]


def _tenants(b: Side) -> list[str]:
    return [b.tenant.id, b.tenant.name]


# Objects by id and by name: through B's tenant (its id, then its name), and through
# tenant A (every object of B, by id and by name).


def _team_refs(own: str, b: Side, make: Callable[[str, str, pb.Team], Message]) -> list[Message]:
    red = b.teams["red"]
    return ([make(b.tenant.id, red.id, red), make(b.tenant.name, red.name, red)]
            + [make(own, r, team) for team in b.teams.values() for r in (team.id, team.name)])


def _user_refs(own: str, b: Side, make: Callable[[str, str, pb.User], Message]) -> list[Message]:
    dev = b.users["developer"]
    return ([make(b.tenant.id, dev.id, dev), make(b.tenant.name, dev.email, dev)]
            + [make(own, r, user) for user in b.users.values() for r in (user.id, user.email)])


def _account_refs(own: str, b: Side, make: Callable[[str, str, pb.ServiceAccount], Message]
                  ) -> list[Message]:
    sa = b.accounts["developer"]
    return ([make(b.tenant.id, sa.id, sa), make(b.tenant.name, sa.name, sa)]
            + [make(own, r, acc) for acc in b.accounts.values() for r in (acc.id, acc.name)])


def _key_refs(own: str, b: Side, make: Callable[[str, pb.ApiKey], Message]) -> list[Message]:
    return ([make(t, b.keys["user:developer"]) for t in _tenants(b)]
            + [make(own, key) for key in b.keys.values()])


def _owners(b: Side) -> list[str]:
    dev, sa = b.users["developer"], b.accounts["developer"]
    return [f"users/{dev.id}", f"users/{dev.email}", f"service-accounts/{sa.id}",
            f"service-accounts/{sa.name}"]


MATRIX: dict[str, Builder] = {
    "CreateTenant": lambda own, b: [
        pb.CreateTenantRequest(name=b.tenant.name),
        pb.CreateTenantRequest(name="matrix-new-tenant"),
    ],
    "GetTenant": lambda own, b: [pb.GetTenantRequest(tenant=t) for t in _tenants(b)],
    "ListTenants": lambda own, b: [
        pb.ListTenantsRequest(), pb.ListTenantsRequest(name_prefix=b.tenant.name),
    ],
    "UpdateTenant": lambda own, b: [
        pb.UpdateTenantRequest(tenant=t, patch=pb.Tenant(display_name="pwned"),
                               update_mask=mask("display_name"), etag=etag)
        for t in _tenants(b) for etag in ("", b.tenant.etag)
    ],
    "CreateTeam": lambda own, b: [
        pb.CreateTeamRequest(tenant=t, name=name)
        for t in _tenants(b) for name in ("pwned-team", b.teams["red"].name)
    ],
    "GetTeam": lambda own, b: _team_refs(
        own, b, lambda t, r, team: pb.GetTeamRequest(tenant=t, team=r)),
    "ListTeams": lambda own, b: [
        *[pb.ListTeamsRequest(tenant=t) for t in _tenants(b)],
        pb.ListTeamsRequest(tenant=own, name_prefix=b.teams["red"].name),
    ],
    "UpdateTeam": lambda own, b: _team_refs(own, b, lambda t, r, team: pb.UpdateTeamRequest(
        tenant=t, team=r, patch=pb.Team(display_name="pwned"), update_mask=mask("display_name"),
        etag=team.etag)),
    "DeleteTeam": lambda own, b: _team_refs(
        own, b, lambda t, r, team: pb.DeleteTeamRequest(tenant=t, team=r)),
    "CreateUser": lambda own, b: [
        *[pb.CreateUserRequest(tenant=t, email="pwned@pwned.example") for t in _tenants(b)],
        *[pb.CreateUserRequest(tenant=t, email="pwned2@pwned.example", memberships=[
            pb.TeamMembership(team=b.teams["red"].id, roles=["developer"])])
          for t in _tenants(b)],
        *[pb.CreateUserRequest(tenant=own, email="pwned3@pwned.example", memberships=[
            pb.TeamMembership(team=r, roles=["developer"])])
          for r in (b.teams["red"].id, b.teams["red"].name)],
    ],
    "GetUser": lambda own, b: _user_refs(
        own, b, lambda t, r, user: pb.GetUserRequest(tenant=t, user=r)),
    "ListUsers": lambda own, b: [
        *[pb.ListUsersRequest(tenant=t) for t in _tenants(b)],
        *[pb.ListUsersRequest(tenant=own, team=r)
          for r in (b.teams["red"].id, b.teams["red"].name)],
        pb.ListUsersRequest(tenant=own, email_prefix=b.email("developer")),
    ],
    "UpdateUser": lambda own, b: [
        *_user_refs(own, b, lambda t, r, user: pb.UpdateUserRequest(
            tenant=t, user=r, patch=pb.User(display_name="pwned"),
            update_mask=mask("display_name"), etag=user.etag)),
        *[pb.UpdateUserRequest(tenant=t, user=b.users["developer"].id,
                               patch=pb.User(roles=["viewer"]), update_mask=mask("roles"))
          for t in (*_tenants(b), own)],
        *[pb.UpdateUserRequest(tenant=t, user=b.users["developer"].id, patch=pb.User(
            memberships=[pb.TeamMembership(team=b.teams["red"].id, roles=["viewer"])]),
            update_mask=mask("memberships")) for t in (*_tenants(b), own)],
    ],
    "DeleteUser": lambda own, b: _user_refs(
        own, b, lambda t, r, user: pb.DeleteUserRequest(tenant=t, user=r)),
    "CreateServiceAccount": lambda own, b: [
        pb.CreateServiceAccountRequest(tenant=t, team=r, name="pwned-sa")
        for t in (*_tenants(b), own) for r in (b.teams["red"].id, b.teams["red"].name)
    ],
    "GetServiceAccount": lambda own, b: _account_refs(
        own, b, lambda t, r, acc: pb.GetServiceAccountRequest(tenant=t, service_account=r)),
    "ListServiceAccounts": lambda own, b: [
        *[pb.ListServiceAccountsRequest(tenant=t) for t in _tenants(b)],
        *[pb.ListServiceAccountsRequest(tenant=own, team=r)
          for r in (b.teams["red"].id, b.teams["red"].name)],
    ],
    "UpdateServiceAccount": lambda own, b: [
        *_account_refs(own, b, lambda t, r, acc: pb.UpdateServiceAccountRequest(
            tenant=t, service_account=r, patch=pb.ServiceAccount(display_name="pwned"),
            update_mask=mask("display_name"), etag=acc.etag)),
        *[pb.UpdateServiceAccountRequest(
            tenant=t, service_account=b.accounts["developer"].id,
            patch=pb.ServiceAccount(roles=["viewer"]), update_mask=mask("roles"))
          for t in (*_tenants(b), own)],
    ],
    "DeleteServiceAccount": lambda own, b: _account_refs(
        own, b, lambda t, r, acc: pb.DeleteServiceAccountRequest(tenant=t, service_account=r)),
    "CreateApiKey": lambda own, b: [
        *[pb.CreateApiKeyRequest(tenant=t, name="pwned", owner=owner)
          for t in _tenants(b) for owner in ("", *_owners(b))],
        *[pb.CreateApiKeyRequest(tenant=own, name="pwned", owner=owner) for owner in _owners(b)],
        *[pb.CreateApiKeyRequest(tenant=own, name="pwned", team=r)
          for r in (b.teams["red"].id, b.teams["red"].name)],
    ],
    "GetApiKey": lambda own, b: _key_refs(
        own, b, lambda t, key: pb.GetApiKeyRequest(tenant=t, key_id=key.id)),
    "ListApiKeys": lambda own, b: [
        *[pb.ListApiKeysRequest(tenant=t) for t in _tenants(b)],
        *[pb.ListApiKeysRequest(tenant=own, owner=owner) for owner in _owners(b)],
        *[pb.ListApiKeysRequest(tenant=own, team=r)
          for r in (b.teams["red"].id, b.teams["red"].name)],
    ],
    "UpdateApiKey": lambda own, b: [
        *_key_refs(own, b, lambda t, key: pb.UpdateApiKeyRequest(
            tenant=t, key_id=key.id, patch=pb.ApiKey(name="pwned"), update_mask=mask("name"),
            etag=key.etag)),
        *[pb.UpdateApiKeyRequest(tenant=t, key_id=b.keys["user:developer"].id,
                                 patch=pb.ApiKey(roles=["viewer"]), update_mask=mask("roles"))
          for t in (*_tenants(b), own)],
    ],
    "RotateApiKey": lambda own, b: _key_refs(
        own, b, lambda t, key: pb.RotateApiKeyRequest(tenant=t, key_id=key.id,
                                                      overlap_seconds=0)),
    "RevokeApiKey": lambda own, b: _key_refs(
        own, b, lambda t, key: pb.RevokeApiKeyRequest(tenant=t, key_id=key.id)),
    "ListAuditEvents": lambda own, b: [
        *[pb.ListAuditEventsRequest(tenant=t) for t in _tenants(b)],
        *[pb.ListAuditEventsRequest(tenant=own, object_id=x) for x in (
            b.keys["user:developer"].id, b.users["developer"].id, b.teams["red"].id,
            b.tenant.id)],
    ],
}
NOT_IN_MATRIX = {"GetCaller"}  # no object: it answers who the caller is


def _ghost(identifier: str) -> str:
    """An identifier of the same shape that names nothing anywhere."""
    h = hashlib.sha256(identifier.encode()).hexdigest()
    if "@" in identifier:
        return f"ghost-{h[:10]}@ghost.example"
    if identifier.startswith("lg_"):
        return "lg_" + h[: len(identifier) - 3]
    kind, sep, rest = identifier.partition("_")
    if sep and kind in ("ten", "team", "usr", "sa", "key"):
        return f"{kind}_{h[: len(rest)]}"
    return f"ghost-{h[:10]}"


def _kind(identifier: str) -> str:
    """What an identifier is (an id of which type, a name, an e-mail): a request's shape."""
    if "@" in identifier:
        return "<email>"
    kind, sep, _ = identifier.partition("_")
    return f"<{kind} id>" if sep and kind in ("ten", "team", "usr", "sa", "key", "lg") else "<name>"


def _substitute(text: str, names: list[str], by: Callable[[str], str]) -> str:
    for name in names:  # longest first
        text = text.replace(name, by(name))
    return text


def _ghost_request(request: Message, names: list[str]) -> Message:
    text = _substitute(text_format.MessageToString(request), names, _ghost)
    return text_format.Parse(text, type(request)())


def _leaks(response: Message, names: list[str]) -> list[str]:
    text = text_format.MessageToString(response)
    return [n for n in names if n in text]


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=[
    "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def matrix_world(request, tmp_path_factory):
    """One world per database backend for the whole matrix (its calls must all fail,
    and every test checks that neither tenant changed)."""
    data_dir = tmp_path_factory.mktemp(f"matrix-{request.param}")
    pg_name = None
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{data_dir / 'auth.db'}"
    else:
        pg_name, url = await _create_pg_database()
        url = url.replace("postgresql://", "postgresql+asyncpg://", 1)
    gate = await Gate.start(data_dir, url)
    try:
        world = await build_world(gate)
        world.initial = await snapshot(world)
        yield world
    finally:
        await gate.stop()
        if pg_name:
            await _drop_pg_database(pg_name)


def test_matrix_covers_every_admin_rpc():
    methods = {m.name for m in pb.DESCRIPTOR.services_by_name["AuthService"].methods}
    assert set(MATRIX) == methods - NOT_IN_MATRIX, (
        "every AuthService RPC must be in the cross-tenant matrix: "
        f"missing {sorted(methods - NOT_IN_MATRIX - set(MATRIX))}, "
        f"unknown {sorted(set(MATRIX) - methods)}"
    )


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("rpc", sorted(MATRIX))
async def test_tenant_a_never_reaches_tenant_b(matrix_world: World, rpc: str):
    world = matrix_world
    gate, a, b = world.gate, world.a, world.b
    b_names = b.identifiers()
    ghost_names = [_ghost(n) for n in b_names]
    every = MATRIX[rpc](a.tenant.name, b)
    some = MATRIX[rpc](a.tenant.name, b.representatives())
    before = await dump(gate)

    def normalized(outcome: Outcome, names: list[str]) -> tuple:
        body = (outcome.response.SerializeToString(deterministic=True) if outcome.response
                else b"")
        return outcome.code, _substitute(outcome.details, names, lambda _: "<ref>"), body

    async def probe(caller: str) -> list[str]:
        failures = []
        requests = every if caller in SWEEPERS else some
        metadata = await gate.metadata(a.secrets[caller], rpc)
        ghosts: dict[str, tuple] = {}  # shape -> the answer for ids that exist nowhere
        for request in requests:
            shown = text_format.MessageToString(request, as_one_line=True)
            got = await gate.send(metadata, rpc, request)
            tenant_ref = getattr(request, "tenant", None)
            foreign = rpc == "CreateTenant" or tenant_ref in _tenants(b)
            if foreign and got.code != NOT_FOUND:
                failures.append(f"{caller}: {shown} -> {got.code.name} {got.details!r}")
                continue
            if got.code == DENIED:
                failures.append(f"{caller}: {shown} -> PERMISSION_DENIED {got.details!r}")
                continue
            if got.response is not None and (leaked := _leaks(got.response, b_names)):
                failures.append(f"{caller}: {shown} -> OK with tenant B's {leaked}")
                continue
            # The same answer as for ids that exist nowhere (asked once per shape).
            shape = _substitute(text_format.MessageToString(request), b_names, _kind)
            if shape not in ghosts:
                ghost = await gate.send(metadata, rpc, _ghost_request(request, b_names))
                ghosts[shape] = normalized(ghost, ghost_names)
            if normalized(got, b_names) != ghosts[shape]:
                failures.append(
                    f"{caller}: {shown} -> {got.code.name} {got.details!r}, but for ids that "
                    f"exist nowhere {ghosts[shape][:2]}: B's ids are confirmed"
                )
        return failures

    failures = [f for found in await asyncio.gather(*map(probe, ROLE_KEYS)) for f in found]
    assert not failures, f"{len(failures)} cross-tenant leaks:\n" + "\n".join(failures)
    assert await dump(gate) == before, "tenant A's calls changed the auth tables"


@pytest.mark.asyncio(loop_scope="module")
async def test_another_tenants_email_is_taken_but_not_placed(matrix_world: World):
    """E-mails are unique across the gateway (a JWT's e-mail names one user), so a
    tenant admin learns that an address is taken — never where, and nothing changes."""
    gate, a, b = matrix_world.gate, matrix_world.a, matrix_world.b
    before = await dump(gate)
    for caller in ("user:tenant_admin", "sa:tenant_admin"):
        for email in (b.email("developer"), b.email("developer").upper()):
            taken = await gate.attempt(a.secrets[caller], "CreateUser", pb.CreateUserRequest(
                tenant=a.tenant.name, email=email))
            assert taken.code == grpc.StatusCode.ALREADY_EXISTS, taken
            assert not [n for n in b.identifiers() if n in taken.details and n != email.lower()]
    assert await dump(gate) == before


@pytest.mark.asyncio(loop_scope="module")
async def test_platform_admin_sees_tenant_b_unchanged_after_the_matrix(matrix_world: World):
    """Runs after the matrix tests of its backend (module-scoped parameters group them)."""
    assert await snapshot(matrix_world) == matrix_world.initial


@pytest.mark.asyncio(loop_scope="module")
async def test_tenant_a_lists_show_only_tenant_a(matrix_world: World):
    """Every list a tenant-A key may call, unfiltered: nothing of tenant B."""
    gate, a, b = matrix_world.gate, matrix_world.a, matrix_world.b
    lists = [
        ("ListTenants", pb.ListTenantsRequest(), "tenants"),
        ("ListTeams", pb.ListTeamsRequest(tenant=a.tenant.id), "teams"),
        ("ListUsers", pb.ListUsersRequest(tenant=a.tenant.id), "users"),
        ("ListServiceAccounts", pb.ListServiceAccountsRequest(tenant=a.tenant.id),
         "service_accounts"),
        ("ListApiKeys", pb.ListApiKeysRequest(tenant=a.tenant.id), "keys"),
        ("ListAuditEvents", pb.ListAuditEventsRequest(tenant=a.tenant.id), "events"),
    ]
    seen = 0
    for caller in ROLE_KEYS:
        for rpc, request, items in lists:
            outcome = await gate.attempt(a.secrets[caller], rpc, request)
            assert outcome.code in (OK, NOT_FOUND), (caller, rpc, outcome)
            if outcome.code == OK:
                seen += len(getattr(outcome.response, items))
                assert not _leaks(outcome.response, b.identifiers()), (caller, rpc)
                for item in getattr(outcome.response, items):
                    assert a.tenant.id in (getattr(item, "tenant_id", "") or item.id)
    assert seen > 0


# -- in-tenant RBAC ---------------------------------------------------------------------


async def test_developer_sees_and_manages_only_own_keys(world: World):
    gate, a = world.gate, world.a
    t = a.tenant.name
    for label in ("user:developer", "sa:developer"):
        me = a.secrets[label]
        owner_id = a.keys[label].owner_id
        listed = await list_all(gate, me, "ListApiKeys", pb.ListApiKeysRequest(tenant=t), "keys")
        assert listed and {k.owner_id for k in listed} == {owner_id}
        mine = (await gate.expect(me, "CreateApiKey", pb.CreateApiKeyRequest(
            tenant=t, name="my second key"))).key
        assert mine.owner_id == owner_id and list(mine.roles) == ["developer"]
        assert (await gate.expect(me, "GetApiKey", pb.GetApiKeyRequest(
            tenant=t, key_id=mine.id))).key.id == mine.id
        rotated = await gate.expect(me, "RotateApiKey", pb.RotateApiKeyRequest(
            tenant=t, key_id=mine.id, overlap_seconds=0))
        await gate.expect(me, "RevokeApiKey", pb.RevokeApiKeyRequest(
            tenant=t, key_id=rotated.key.id))
        # Other people's keys, in the same team or not: as if they did not exist.
        for other in ("user:developer2", "sa:team_admin", "user:blue_developer",
                      "user:tenant_admin", "sa:viewer"):
            if other == label:
                continue
            key_id = a.keys[other].id
            await gate.expect(me, "GetApiKey", pb.GetApiKeyRequest(tenant=t, key_id=key_id),
                              NOT_FOUND)
            await gate.expect(me, "RotateApiKey", pb.RotateApiKeyRequest(
                tenant=t, key_id=key_id), NOT_FOUND)
            await gate.expect(me, "RevokeApiKey", pb.RevokeApiKeyRequest(
                tenant=t, key_id=key_id), NOT_FOUND)
            await gate.expect(me, "UpdateApiKey", pb.UpdateApiKeyRequest(
                tenant=t, key_id=key_id, patch=pb.ApiKey(name="x"), update_mask=mask("name")),
                NOT_FOUND)
        await gate.expect(me, "CreateApiKey", pb.CreateApiKeyRequest(
            tenant=t, name="for someone else", owner=f"users/{a.email('developer2')}"),
            NOT_FOUND)
        # Owners and accounts are not a developer's business.
        await gate.expect(me, "GetServiceAccount", pb.GetServiceAccountRequest(
            tenant=t, service_account=a.accounts["viewer"].id), NOT_FOUND)
        await gate.expect(me, "GetUser", pb.GetUserRequest(
            tenant=t, user=a.users["developer2"].id), NOT_FOUND)
        await gate.expect(me, "ListAuditEvents", pb.ListAuditEventsRequest(tenant=t), NOT_FOUND)
        await gate.expect(me, "UpdateTeam", pb.UpdateTeamRequest(
            tenant=t, team="a-red", patch=pb.Team(display_name="x"),
            update_mask=mask("display_name")), DENIED)
    assert (await gate.expect(a.secrets["user:developer"], "GetUser", pb.GetUserRequest(
        tenant=t, user=a.email("developer")))).user.id == a.users["developer"].id
    # Untouched: the other developer's key still works.
    granted(await gate.check(a.secrets["user:developer2"]))


async def test_team_admin_manages_its_team_only(world: World):
    gate, a = world.gate, world.a
    t, red, blue = a.tenant.name, a.teams["red"], a.teams["blue"]
    for label in ("user:team_admin", "sa:team_admin"):
        me = a.secrets[label]
        n = label.split(":")[0]
        accounts = await list_all(gate, me, "ListServiceAccounts",
                                  pb.ListServiceAccountsRequest(tenant=t), "service_accounts")
        assert accounts and {x.team_id for x in accounts} == {red.id}
        assert {x.team_id for x in await list_all(
            gate, me, "ListServiceAccounts",
            pb.ListServiceAccountsRequest(tenant=t, team=blue.name), "service_accounts")} == set()
        keys = await list_all(gate, me, "ListApiKeys", pb.ListApiKeysRequest(tenant=t), "keys")
        assert {k.team_id for k in keys} == {red.id}
        assert a.keys["user:developer2"].id in {k.id for k in keys}
        # Its team's service accounts and keys.
        account = (await gate.expect(me, "CreateServiceAccount", pb.CreateServiceAccountRequest(
            tenant=t, team=red.name, name=f"red-bot-{n}"))).service_account
        account = (await gate.expect(me, "UpdateServiceAccount", pb.UpdateServiceAccountRequest(
            tenant=t, service_account=account.name, patch=pb.ServiceAccount(display_name="Bot"),
            update_mask=mask("display_name"), etag=account.etag))).service_account
        created = await gate.expect(me, "CreateApiKey", pb.CreateApiKeyRequest(
            tenant=t, name="bot key", owner=f"service-accounts/{account.name}"))
        await gate.expect(me, "RotateApiKey", pb.RotateApiKeyRequest(
            tenant=t, key_id=created.key.id, overlap_seconds=0))
        await gate.expect(me, "DeleteServiceAccount", pb.DeleteServiceAccountRequest(
            tenant=t, service_account=account.id))
        await gate.expect(me, "UpdateTeam", pb.UpdateTeamRequest(
            tenant=t, team=red.id, patch=pb.Team(display_name=f"Red by {n}"),
            update_mask=mask("display_name")))
        # Other teams: not found; the team itself is readable, so 403 where it is acted on.
        blue_sa, blue_key = a.accounts["blue_developer"], a.keys["sa:blue_developer"]
        await gate.expect(me, "GetServiceAccount", pb.GetServiceAccountRequest(
            tenant=t, service_account=blue_sa.name), NOT_FOUND)
        await gate.expect(me, "UpdateServiceAccount", pb.UpdateServiceAccountRequest(
            tenant=t, service_account=blue_sa.id, patch=pb.ServiceAccount(display_name="x"),
            update_mask=mask("display_name")), NOT_FOUND)
        await gate.expect(me, "DeleteServiceAccount", pb.DeleteServiceAccountRequest(
            tenant=t, service_account=blue_sa.id), NOT_FOUND)
        await gate.expect(me, "CreateServiceAccount", pb.CreateServiceAccountRequest(
            tenant=t, team=blue.name, name="blue-intruder"), NOT_FOUND)
        for rpc, request in (
            ("GetApiKey", pb.GetApiKeyRequest(tenant=t, key_id=blue_key.id)),
            ("RevokeApiKey", pb.RevokeApiKeyRequest(tenant=t, key_id=blue_key.id)),
            ("RotateApiKey", pb.RotateApiKeyRequest(tenant=t, key_id=blue_key.id)),
            ("GetApiKey", pb.GetApiKeyRequest(tenant=t, key_id=a.keys["user:tenant_admin"].id)),
            ("CreateApiKey", pb.CreateApiKeyRequest(
                tenant=t, name="x", owner=f"service-accounts/{blue_sa.name}")),
        ):
            await gate.expect(me, rpc, request, NOT_FOUND)
        await gate.expect(me, "UpdateTeam", pb.UpdateTeamRequest(
            tenant=t, team=blue.id, patch=pb.Team(display_name="x"),
            update_mask=mask("display_name")), DENIED)
        for rpc, request in (
            ("DeleteTeam", pb.DeleteTeamRequest(tenant=t, team="a-empty")),
            ("CreateTeam", pb.CreateTeamRequest(tenant=t, name="new-team")),
            ("CreateUser", pb.CreateUserRequest(tenant=t, email="new@a.example")),
            ("UpdateTenant", pb.UpdateTenantRequest(
                tenant=t, patch=pb.Tenant(display_name="x"), update_mask=mask("display_name"))),
            # Objects of its team holding a role above team_admin.
            ("UpdateServiceAccount", pb.UpdateServiceAccountRequest(
                tenant=t, service_account=a.accounts["tenant_admin"].id,
                patch=pb.ServiceAccount(display_name="x"), update_mask=mask("display_name"))),
            ("RevokeApiKey", pb.RevokeApiKeyRequest(tenant=t, key_id=a.keys["sa:tenant_admin"].id)),
        ):
            await gate.expect(me, rpc, request, DENIED)
    # It manages its team's keys, whoever owns them.
    await gate.expect(a.secrets["user:team_admin"], "RevokeApiKey", pb.RevokeApiKeyRequest(
        tenant=t, key_id=a.keys["user:developer2"].id))
    assert denial(await gate.check(a.secrets["user:developer2"]))[0] == 401
    granted(await gate.check(a.secrets["sa:blue_developer"]))


async def test_viewer_is_read_only(world: World):
    gate, a = world.gate, world.a
    t = a.tenant.name
    for label in ("user:viewer", "sa:viewer"):
        me = a.secrets[label]
        own_key = a.keys[label]
        await gate.expect(me, "GetTenant", pb.GetTenantRequest(tenant=t))
        assert len(await list_all(gate, me, "ListTeams", pb.ListTeamsRequest(tenant=t),
                                  "teams")) == 3
        await gate.expect(me, "GetTeam", pb.GetTeamRequest(tenant=t, team="a-blue"))
        assert [k.id for k in await list_all(gate, me, "ListApiKeys",
                                             pb.ListApiKeysRequest(tenant=t), "keys")] == [
            own_key.id]
        await gate.expect(me, "GetApiKey", pb.GetApiKeyRequest(tenant=t, key_id=own_key.id))
        # Writes on what it can read: 403.
        for rpc, request in (
            ("UpdateTenant", pb.UpdateTenantRequest(
                tenant=t, patch=pb.Tenant(display_name="x"), update_mask=mask("display_name"))),
            ("CreateTeam", pb.CreateTeamRequest(tenant=t, name="viewer-team")),
            ("UpdateTeam", pb.UpdateTeamRequest(
                tenant=t, team="a-red", patch=pb.Team(display_name="x"),
                update_mask=mask("display_name"))),
            ("DeleteTeam", pb.DeleteTeamRequest(tenant=t, team="a-empty")),
            ("CreateApiKey", pb.CreateApiKeyRequest(tenant=t, name="viewer key")),
            ("UpdateApiKey", pb.UpdateApiKeyRequest(
                tenant=t, key_id=own_key.id, patch=pb.ApiKey(name="x"), update_mask=mask("name"))),
            ("RotateApiKey", pb.RotateApiKeyRequest(tenant=t, key_id=own_key.id)),
            ("RevokeApiKey", pb.RevokeApiKeyRequest(tenant=t, key_id=own_key.id)),
        ):
            await gate.expect(me, rpc, request, DENIED)
        # What it cannot read: 404.
        for rpc, request in (
            ("GetApiKey", pb.GetApiKeyRequest(tenant=t, key_id=a.keys["user:developer"].id)),
            ("RevokeApiKey", pb.RevokeApiKeyRequest(tenant=t,
                                                    key_id=a.keys["user:developer"].id)),
            ("GetServiceAccount", pb.GetServiceAccountRequest(
                tenant=t, service_account=a.accounts["developer"].id)),
            ("ListAuditEvents", pb.ListAuditEventsRequest(tenant=t)),
        ):
            await gate.expect(me, rpc, request, NOT_FOUND)
    user = a.users["viewer"]
    await gate.expect(a.secrets["user:viewer"], "GetUser", pb.GetUserRequest(tenant=t,
                                                                             user=user.id))
    await gate.expect(a.secrets["user:viewer"], "UpdateUser", pb.UpdateUserRequest(
        tenant=t, user=user.id, patch=pb.User(display_name="x"), update_mask=mask("display_name")),
        DENIED)
    # Nothing changed: its key still works, and carries the same roles.
    assert granted(await gate.check(a.secrets["user:viewer"],
                                    AUTH + "GetCaller"))["x-lockgate-roles"] == "viewer"


async def test_tenant_admin_runs_its_tenant_but_not_platform_admins_objects(world: World):
    gate, a, admin = world.gate, world.a, world.admin
    t = a.tenant.name
    me = a.secrets["user:tenant_admin"]
    every = await list_all(gate, admin, "ListApiKeys", pb.ListApiKeysRequest(tenant=t), "keys")
    assert {k.id for k in await list_all(gate, me, "ListApiKeys",
                                         pb.ListApiKeysRequest(tenant=t), "keys")} == {
        k.id for k in every}
    team = (await gate.expect(me, "CreateTeam", pb.CreateTeamRequest(tenant=t,
                                                                     name="green"))).team
    user = (await gate.expect(me, "CreateUser", pb.CreateUserRequest(
        tenant=t, email="green@a.example",
        memberships=[pb.TeamMembership(team="green", roles=["team_admin"])]))).user
    account = (await gate.expect(me, "CreateServiceAccount", pb.CreateServiceAccountRequest(
        tenant=t, team=team.id, name="green-bot", roles=["team_admin"]))).service_account
    key = (await gate.expect(me, "CreateApiKey", pb.CreateApiKeyRequest(
        tenant=t, name="green", owner=f"users/{user.email}", roles=["team_admin"]))).key
    await gate.expect(me, "RevokeApiKey", pb.RevokeApiKeyRequest(tenant=t, key_id=key.id))
    await gate.expect(me, "RevokeApiKey", pb.RevokeApiKeyRequest(
        tenant=t, key_id=a.keys["sa:blue_developer"].id))
    await gate.expect(me, "DeleteServiceAccount", pb.DeleteServiceAccountRequest(
        tenant=t, service_account=account.id))
    await gate.expect(me, "DeleteUser", pb.DeleteUserRequest(tenant=t, user=user.id))
    await gate.expect(me, "DeleteTeam", pb.DeleteTeamRequest(tenant=t, team=team.id))
    await gate.expect(me, "UpdateTenant", pb.UpdateTenantRequest(
        tenant=t, patch=pb.Tenant(display_name="A, renamed"), update_mask=mask("display_name")))
    assert (await gate.expect(me, "ListAuditEvents", pb.ListAuditEventsRequest(tenant=t))).events

    # A platform admin who lives in tenant A: readable, but it outranks a tenant admin.
    root = (await gate.expect(admin, "CreateUser", pb.CreateUserRequest(
        tenant=t, email="root@a.example", roles=["platform_admin"]))).user
    root_key = (await gate.expect(admin, "CreateApiKey", pb.CreateApiKeyRequest(
        tenant=t, name="root", owner="users/root@a.example", roles=["platform_admin"]))).key
    root_sa = (await gate.expect(admin, "CreateServiceAccount", pb.CreateServiceAccountRequest(
        tenant=t, team="a-red", name="root-bot", roles=["platform_admin"]))).service_account
    await gate.expect(me, "GetUser", pb.GetUserRequest(tenant=t, user=root.id))
    await gate.expect(me, "GetApiKey", pb.GetApiKeyRequest(tenant=t, key_id=root_key.id))
    await gate.expect(me, "GetServiceAccount", pb.GetServiceAccountRequest(
        tenant=t, service_account=root_sa.id))
    for rpc, request in (
        ("UpdateUser", pb.UpdateUserRequest(tenant=t, user=root.id,
                                            patch=pb.User(display_name="x"),
                                            update_mask=mask("display_name"))),
        ("UpdateUser", pb.UpdateUserRequest(tenant=t, user=root.id,
                                            patch=pb.User(status="disabled"),
                                            update_mask=mask("status"))),
        ("DeleteUser", pb.DeleteUserRequest(tenant=t, user=root.email)),
        ("UpdateServiceAccount", pb.UpdateServiceAccountRequest(
            tenant=t, service_account=root_sa.id, patch=pb.ServiceAccount(status="disabled"),
            update_mask=mask("status"))),
        ("DeleteServiceAccount", pb.DeleteServiceAccountRequest(tenant=t,
                                                                service_account=root_sa.name)),
        ("RevokeApiKey", pb.RevokeApiKeyRequest(tenant=t, key_id=root_key.id)),
        ("RotateApiKey", pb.RotateApiKeyRequest(tenant=t, key_id=root_key.id)),
        ("UpdateApiKey", pb.UpdateApiKeyRequest(tenant=t, key_id=root_key.id,
                                                patch=pb.ApiKey(name="x"),
                                                update_mask=mask("name"))),
    ):
        await gate.expect(me, rpc, request, DENIED)
    assert granted(await gate.check(
        (await gate.expect(admin, "RotateApiKey", pb.RotateApiKeyRequest(
            tenant=t, key_id=root_key.id, overlap_seconds=0))).secret,
        AUTH + "GetCaller"))["x-lockgate-roles"] == "platform_admin"
    # The bootstrap administrator lives in tenant `default`: not even visible.
    await gate.expect(me, "GetServiceAccount", pb.GetServiceAccountRequest(
        tenant="default", service_account="admin"), NOT_FOUND)


async def test_nobody_mints_keys_owned_by_someone_who_outranks_them(world: World):
    gate, a, admin = world.gate, world.a, world.admin
    t = a.tenant.name
    await gate.expect(admin, "CreateUser", pb.CreateUserRequest(
        tenant=t, email="root@a.example", roles=["platform_admin"]))
    before = await list_all(gate, admin, "ListApiKeys", pb.ListApiKeysRequest(tenant=t), "keys")
    outcomes = [
        await gate.attempt(a.secrets["user:tenant_admin"], "CreateApiKey",
                           pb.CreateApiKeyRequest(tenant=t, name="as root", team="a-red",
                                                  owner="users/root@a.example")),
        await gate.attempt(a.secrets["user:team_admin"], "CreateApiKey",
                           pb.CreateApiKeyRequest(tenant=t, name="as my tenant admin",
                                                  team="a-red",
                                                  owner=f"users/{a.email('tenant_admin')}")),
    ]
    after = await list_all(gate, admin, "ListApiKeys", pb.ListApiKeysRequest(tenant=t), "keys")
    assert [o.code for o in outcomes] == [DENIED, DENIED]
    assert len(after) == len(before)


# -- escalation -------------------------------------------------------------------------


async def _object_ids(world: World) -> set[str]:
    gate, admin, t = world.gate, world.admin, world.a.tenant.id
    found = set()
    for rpc, request, items in (
        ("ListTeams", pb.ListTeamsRequest(tenant=t), "teams"),
        ("ListUsers", pb.ListUsersRequest(tenant=t), "users"),
        ("ListServiceAccounts", pb.ListServiceAccountsRequest(tenant=t), "service_accounts"),
        ("ListApiKeys", pb.ListApiKeysRequest(tenant=t), "keys"),
        ("ListTenants", pb.ListTenantsRequest(), "tenants"),
    ):
        for item in await list_all(gate, admin, rpc, request, items):
            found.add(item.SerializeToString(deterministic=True) if rpc != "ListApiKeys"
                      else item.id + str(list(item.roles)) + item.etag)
    return found


async def test_nobody_grants_more_than_they_hold(world: World):
    gate, a = world.gate, world.a
    t = a.tenant.name
    red = "a-red"
    me = a.secrets
    attempts = [
        # keys above the creator (and above the owner)
        ("user:developer", "CreateApiKey",
         pb.CreateApiKeyRequest(tenant=t, name="up", roles=["team_admin"])),
        ("sa:developer", "CreateApiKey",
         pb.CreateApiKeyRequest(tenant=t, name="up", roles=["tenant_admin"])),
        ("user:team_admin", "CreateApiKey", pb.CreateApiKeyRequest(
            tenant=t, name="up", roles=["tenant_admin"],
            owner=f"service-accounts/{a.accounts['tenant_admin'].name}")),
        ("user:tenant_admin", "CreateApiKey",
         pb.CreateApiKeyRequest(tenant=t, name="up", roles=["platform_admin"])),
        ("user:tenant_admin", "CreateApiKey",
         pb.CreateApiKeyRequest(tenant=t, name="up", roles=["root"])),
        # users, memberships and service accounts above the creator
        ("user:tenant_admin", "CreateUser", pb.CreateUserRequest(
            tenant=t, email="up@a.example", roles=["platform_admin"])),
        ("sa:tenant_admin", "CreateUser", pb.CreateUserRequest(
            tenant=t, email="up@a.example", roles=["platform_admin", "viewer"])),
        ("user:tenant_admin", "UpdateUser", pb.UpdateUserRequest(
            tenant=t, user=a.email("tenant_admin"), patch=pb.User(roles=["platform_admin"]),
            update_mask=mask("roles"))),
        ("user:tenant_admin", "UpdateUser", pb.UpdateUserRequest(
            tenant=t, user=a.email("developer"), patch=pb.User(roles=["platform_admin"]),
            update_mask=mask("roles"))),
        ("user:tenant_admin", "CreateServiceAccount", pb.CreateServiceAccountRequest(
            tenant=t, team=red, name="up", roles=["platform_admin"])),
        ("user:tenant_admin", "UpdateServiceAccount", pb.UpdateServiceAccountRequest(
            tenant=t, service_account=a.accounts["developer"].id,
            patch=pb.ServiceAccount(roles=["platform_admin"]), update_mask=mask("roles"))),
        ("user:team_admin", "CreateServiceAccount", pb.CreateServiceAccountRequest(
            tenant=t, team=red, name="up", roles=["tenant_admin"])),
        ("sa:team_admin", "UpdateServiceAccount", pb.UpdateServiceAccountRequest(
            tenant=t, service_account=a.accounts["developer"].id,
            patch=pb.ServiceAccount(roles=["tenant_admin"]), update_mask=mask("roles"))),
        ("user:team_admin", "UpdateUser", pb.UpdateUserRequest(
            tenant=t, user=a.email("developer"), patch=pb.User(memberships=[
                pb.TeamMembership(team=red, roles=["team_admin"])]),
            update_mask=mask("memberships"))),
        ("user:team_admin", "CreateUser", pb.CreateUserRequest(
            tenant=t, email="up@a.example",
            memberships=[pb.TeamMembership(team=red, roles=["team_admin"])])),
        # one's own key upward
        ("user:developer", "UpdateApiKey", pb.UpdateApiKeyRequest(
            tenant=t, key_id=a.keys["user:developer"].id, patch=pb.ApiKey(roles=["team_admin"]),
            update_mask=mask("roles"))),
        ("sa:team_admin", "UpdateApiKey", pb.UpdateApiKeyRequest(
            tenant=t, key_id=a.keys["sa:team_admin"].id,
            patch=pb.ApiKey(roles=["tenant_admin"]), update_mask=mask("roles"))),
        ("user:tenant_admin", "UpdateApiKey", pb.UpdateApiKeyRequest(
            tenant=t, key_id=a.keys["user:tenant_admin"].id,
            patch=pb.ApiKey(roles=["platform_admin"]), update_mask=mask("roles"))),
    ]
    before = await _object_ids(world)
    results = []
    for caller, rpc, request in attempts:
        outcome = await gate.attempt(me[caller], rpc, request)
        results.append((caller, rpc, outcome.code.name, outcome.details))
    granted_ = [r for r in results if r[2] not in ("PERMISSION_DENIED", "INVALID_ARGUMENT")]
    assert not granted_, granted_
    assert await _object_ids(world) == before
    # The roles above the caller are refused by the policy itself (403), naming the role.
    policy = {r[3] for r in results if r[2] == "PERMISSION_DENIED"}
    assert "Cannot grant role platform_admin: it is above your own roles." in policy


async def test_a_key_of_a_user_who_holds_more_cannot_raise_itself(world: World):
    """The owner holds team_admin; the key was given developer only: the key may not
    lift itself (or a sibling) to what the owner holds."""
    gate, a, admin = world.gate, world.a, world.admin
    t = a.tenant.name
    small = await gate.expect(admin, "CreateApiKey", pb.CreateApiKeyRequest(
        tenant=t, name="small", owner=f"users/{a.email('team_admin')}", roles=["developer"]))
    for key_id in (small.key.id, a.keys["user:team_admin"].id):
        outcome = await gate.attempt(small.secret, "UpdateApiKey", pb.UpdateApiKeyRequest(
            tenant=t, key_id=key_id, patch=pb.ApiKey(roles=["team_admin"]),
            update_mask=mask("roles")))
        assert outcome.code in (DENIED, NOT_FOUND), outcome
    created = await gate.attempt(small.secret, "CreateApiKey", pb.CreateApiKeyRequest(
        tenant=t, name="bigger", roles=["team_admin"]))
    assert created.code == DENIED, created
    key = await gate.expect(admin, "GetApiKey", pb.GetApiKeyRequest(tenant=t,
                                                                    key_id=small.key.id))
    assert list(key.key.roles) == ["developer"]
    assert granted(await gate.check(small.secret, AUTH + "GetCaller"))[
        "x-lockgate-roles"] == "developer"


async def test_a_scoped_creator_cannot_grant_everything_or_more(world: World):
    gate, a, admin = world.gate, world.a, world.admin
    t = a.tenant.name
    scoped = await gate.expect(admin, "CreateApiKey", pb.CreateApiKeyRequest(
        tenant=t, name="scoped admin", owner=f"users/{a.email('tenant_admin')}",
        roles=["tenant_admin"], scopes=["admin", "inference"], models=["demo"]))
    me = scoped.secret
    owner = f"users/{a.email('developer')}"
    for scopes, models in (([], ["demo"]), (["admin", "inference"], []),
                           (["admin", "usage"], ["demo"]), (["inference"], ["demo", "other"])):
        outcome = await gate.attempt(me, "CreateApiKey", pb.CreateApiKeyRequest(
            tenant=t, name="wider", owner=owner, scopes=scopes, models=models))
        assert outcome.code == DENIED, (scopes, models, outcome)
        assert "beyond your own" in outcome.details
    narrow = await gate.expect(me, "CreateApiKey", pb.CreateApiKeyRequest(
        tenant=t, name="narrow", owner=owner, scopes=["inference"], models=["demo"]))
    for patch, path in ((pb.ApiKey(scopes=[]), "scopes"), (pb.ApiKey(models=[]), "models"),
                        (pb.ApiKey(scopes=["registry"]), "scopes")):
        await gate.expect(me, "UpdateApiKey", pb.UpdateApiKeyRequest(
            tenant=t, key_id=narrow.key.id, patch=patch, update_mask=mask(path)), DENIED)
    # Rotating an unrestricted key would hand out an unrestricted successor.
    await gate.expect(me, "RotateApiKey", pb.RotateApiKeyRequest(
        tenant=t, key_id=a.keys["user:developer"].id), DENIED)
    # Users and service accounts have no scopes: every scope is theirs (through JWTs),
    # so a scoped key may not create them either.
    await gate.expect(me, "CreateServiceAccount", pb.CreateServiceAccountRequest(
        tenant=t, team="a-red", name="from-scoped"), DENIED)
    key = (await gate.expect(admin, "GetApiKey", pb.GetApiKeyRequest(
        tenant=t, key_id=narrow.key.id))).key
    assert (list(key.scopes), list(key.models)) == (["inference"], ["demo"])


async def test_demoted_owners_keys_lose_the_roles_at_once(world: World):
    gate, a, admin = world.gate, world.a, world.admin
    t = a.tenant.name
    user = a.users["team_admin"]
    both = await gate.expect(admin, "CreateApiKey", pb.CreateApiKeyRequest(
        tenant=t, name="both", owner=f"users/{user.email}", roles=["team_admin", "developer"]))
    only = a.secrets["user:team_admin"]
    assert granted(await gate.check(both.secret, AUTH + "GetCaller"))[
        "x-lockgate-roles"] == "team_admin,developer"
    assert granted(await gate.check(only, AUTH + "GetCaller"))["x-lockgate-roles"] == "team_admin"

    await gate.expect(admin, "UpdateUser", pb.UpdateUserRequest(
        tenant=t, user=user.id, patch=pb.User(memberships=[
            pb.TeamMembership(team="a-red", roles=["developer"])]),
        update_mask=mask("memberships")))
    # The very next Check (this replica) sees the effective roles.
    assert granted(await gate.check(both.secret, AUTH + "GetCaller"))[
        "x-lockgate-roles"] == "developer"
    assert denial(await gate.check(only))[:2] == (403, "no_roles")
    refused = await gate.attempt(both.secret, "CreateApiKey", pb.CreateApiKeyRequest(
        tenant=t, name="after demotion", owner=f"service-accounts/{a.accounts['developer'].name}"))
    assert refused.code in (DENIED, NOT_FOUND), refused  # a team admin could, a developer not
    caller = await gate.expect(both.secret, "GetCaller", pb.GetCallerRequest())
    assert list(caller.roles) == ["developer"]
    # The key still says what it was given; the owner decides what it can do.
    key = await gate.expect(admin, "GetApiKey", pb.GetApiKeyRequest(tenant=t,
                                                                    key_id=both.key.id))
    assert list(key.key.roles) == ["team_admin", "developer"]

    # Service accounts too, and disabling an owner turns its keys off.
    await gate.expect(admin, "UpdateServiceAccount", pb.UpdateServiceAccountRequest(
        tenant=t, service_account=a.accounts["developer"].id,
        patch=pb.ServiceAccount(roles=["viewer"]), update_mask=mask("roles")))
    assert denial(await gate.check(a.secrets["sa:developer"]))[:2] == (403, "no_roles")
    await gate.expect(admin, "UpdateUser", pb.UpdateUserRequest(
        tenant=t, user=a.users["developer"].id, patch=pb.User(status="disabled"),
        update_mask=mask("status")))
    assert denial(await gate.check(a.secrets["user:developer"])) == (
        401, "invalid_api_key", "The owner of this API key is disabled.")


# -- key lifecycle ----------------------------------------------------------------------


async def test_rotation_revocation_and_expiry(world: World):
    gate, a, admin = world.gate, world.a, world.admin
    t = a.tenant.name
    owner = f"users/{a.email('developer')}"

    async def new_key(name: str, **kw) -> pb.CreateApiKeyResponse:
        return await gate.expect(admin, "CreateApiKey", pb.CreateApiKeyRequest(
            tenant=t, name=name, owner=owner, **kw))

    original = await new_key("rotating", scopes=["inference", "admin"], models=["demo"])
    old_identity = granted(await gate.check(original.secret))
    start = time.time()
    rotated = await gate.expect(admin, "RotateApiKey", pb.RotateApiKeyRequest(
        tenant=t, key_id=original.key.id, overlap_seconds=1))
    expiring = await new_key("expiring", expire_time=timestamp(
        datetime.now(UTC) + timedelta(seconds=1)))
    assert rotated.previous.id == original.key.id
    assert rotated.previous.replaced_by == rotated.key.id
    assert rotated.key.id != original.key.id and rotated.secret != original.secret
    assert abs(rotated.previous.expire_time.ToDatetime(UTC).timestamp() - (start + 1)) < 1
    for name in ("roles", "models", "scopes"):
        assert list(getattr(rotated.key, name)) == list(getattr(original.key, name)), name
    assert (rotated.key.team_id, rotated.key.owner_id, rotated.key.owner_kind) == (
        original.key.team_id, original.key.owner_id, original.key.owner_kind)
    new_identity = granted(await gate.check(rotated.secret))
    assert {k: v for k, v in new_identity.items() if k != "x-lockgate-key-id"} == {
        k: v for k, v in old_identity.items() if k != "x-lockgate-key-id"}
    assert new_identity["x-lockgate-key-id"] == rotated.key.id
    granted(await gate.check(original.secret))  # within the overlap
    granted(await gate.check(expiring.secret))

    # Overlap 0: the old key stops at once.
    abrupt = await new_key("abrupt")
    granted(await gate.check(abrupt.secret))
    at_once = await gate.expect(admin, "RotateApiKey", pb.RotateApiKeyRequest(
        tenant=t, key_id=abrupt.key.id, overlap_seconds=0))
    assert denial(await gate.check(abrupt.secret)) == (
        401, "invalid_api_key", "This API key has expired.")
    granted(await gate.check(at_once.secret))
    await gate.expect(admin, "RotateApiKey", pb.RotateApiKeyRequest(
        tenant=t, key_id=abrupt.key.id), INVALID)  # only active keys rotate

    # Revoked: at once, with its own message; revoking again changes nothing.
    revoked = await new_key("revoked")
    granted(await gate.check(revoked.secret))
    first = await gate.expect(admin, "RevokeApiKey", pb.RevokeApiKeyRequest(
        tenant=t, key_id=revoked.key.id))
    assert first.key.status == "revoked" and first.key.HasField("revoke_time")
    assert denial(await gate.check(revoked.secret)) == (
        401, "invalid_api_key", "This API key is not active.")
    again = await gate.expect(admin, "RevokeApiKey", pb.RevokeApiKeyRequest(
        tenant=t, key_id=revoked.key.id))
    assert again.key.revoke_time == first.key.revoke_time
    await gate.expect(admin, "UpdateApiKey", pb.UpdateApiKeyRequest(
        tenant=t, key_id=revoked.key.id, patch=pb.ApiKey(name="x"), update_mask=mask("name")),
        INVALID)

    await asyncio.sleep(max(0.0, start + 1.3 - time.time()))
    for secret in (original.secret, expiring.secret):
        assert denial(await gate.check(secret)) == (
            401, "invalid_api_key", "This API key has expired.")
    granted(await gate.check(rotated.secret))
    statuses = {}
    for status in ("active", "expired", "revoked"):
        statuses[status] = {k.id for k in await list_all(
            gate, admin, "ListApiKeys", pb.ListApiKeysRequest(tenant=t, owner=owner,
                                                              status=status), "keys")}
    assert {original.key.id, expiring.key.id, abrupt.key.id} <= statuses["expired"]
    assert statuses["revoked"] == {revoked.key.id}
    assert {rotated.key.id, at_once.key.id} <= statuses["active"]
    assert not statuses["active"] & statuses["expired"]
    assert (await gate.expect(admin, "GetApiKey", pb.GetApiKeyRequest(
        tenant=t, key_id=original.key.id))).key.status == "expired"
    # Expiry in the past is refused.
    await gate.expect(admin, "CreateApiKey", pb.CreateApiKeyRequest(
        tenant=t, name="stale", owner=owner,
        expire_time=timestamp(datetime.now(UTC) - timedelta(seconds=5))), INVALID)


async def test_last_used_time_is_recorded_after_use(world: World):
    gate, a, admin = world.gate, world.a, world.admin
    t = a.tenant.name
    key = a.keys["sa:developer"]
    get = pb.GetApiKeyRequest(tenant=t, key_id=key.id)
    await gate.last_used().tick()
    assert not (await gate.expect(admin, "GetApiKey", get)).key.HasField("last_used_time")
    before = datetime.now(UTC)
    granted(await gate.check(a.secrets["sa:developer"]))
    await gate.last_used().tick()
    used = (await gate.expect(admin, "GetApiKey", get)).key.last_used_time.ToDatetime(UTC)
    assert before - timedelta(seconds=1) <= used <= datetime.now(UTC)
    # Unused keys stay unused.
    assert not (await gate.expect(admin, "GetApiKey", pb.GetApiKeyRequest(
        tenant=t, key_id=a.keys["sa:viewer"].id))).key.HasField("last_used_time")


async def test_revocation_reaches_another_replica_within_a_second(database_url, tmp_path):
    one = await Gate.start(tmp_path / "one", database_url)
    two = await Gate.start(tmp_path / "two", database_url)
    try:
        assert not two.admin_key  # the second replica found the admin already there
        world = await build_world(one)
        t = world.a.tenant.name
        victims = {"revoked": "user:developer", "disabled": "sa:developer"}
        for label in victims.values():
            granted(await two.check(world.a.secrets[label]))  # cached on replica two
        started = time.monotonic()
        await one.expect(world.admin, "RevokeApiKey", pb.RevokeApiKeyRequest(
            tenant=t, key_id=world.a.keys[victims["revoked"]].id))
        await one.expect(world.admin, "UpdateServiceAccount", pb.UpdateServiceAccountRequest(
            tenant=t, service_account=world.a.accounts["developer"].id,
            patch=pb.ServiceAccount(status="disabled"), update_mask=mask("status")))
        pending = dict(victims)
        while pending and time.monotonic() - started < 3:
            for state, label in list(pending.items()):
                reply = await two.check(world.a.secrets[label])
                if reply.status.code != code_pb2.OK:
                    assert denial(reply)[0] == 401
                    pending.pop(state)
            await asyncio.sleep(0.01)
        elapsed = time.monotonic() - started
        assert not pending, f"replica two still accepts {pending} after {elapsed:.2f}s"
        assert elapsed < 1.0, f"the change took {elapsed:.2f}s to reach replica two"
        granted(await two.check(world.a.secrets["user:developer2"]))
    finally:
        await two.stop()
        await one.stop()


# -- etags and field masks --------------------------------------------------------------


def _updates(a: Side) -> list[tuple[str, Callable[..., Message], str, str]]:
    """(rpc, request(etag, paths), response field, updatable path) per Update RPC."""
    t = a.tenant.name
    return [
        ("UpdateTenant", lambda etag, paths: pb.UpdateTenantRequest(
            tenant=t, patch=pb.Tenant(display_name="new"), update_mask=mask(*paths), etag=etag),
         "tenant", "display_name"),
        ("UpdateTeam", lambda etag, paths: pb.UpdateTeamRequest(
            tenant=t, team="a-blue", patch=pb.Team(display_name="new"), update_mask=mask(*paths),
            etag=etag), "team", "display_name"),
        ("UpdateUser", lambda etag, paths: pb.UpdateUserRequest(
            tenant=t, user=a.email("viewer"), patch=pb.User(display_name="new"),
            update_mask=mask(*paths), etag=etag), "user", "display_name"),
        ("UpdateServiceAccount", lambda etag, paths: pb.UpdateServiceAccountRequest(
            tenant=t, service_account=a.accounts["viewer"].name,
            patch=pb.ServiceAccount(display_name="new"), update_mask=mask(*paths), etag=etag),
         "service_account", "display_name"),
        ("UpdateApiKey", lambda etag, paths: pb.UpdateApiKeyRequest(
            tenant=t, key_id=a.keys["sa:viewer"].id, patch=pb.ApiKey(name="new"),
            update_mask=mask(*paths), etag=etag), "key", "name"),
    ]


async def test_etags_and_field_masks(world: World):
    gate, a = world.gate, world.a
    me = a.secrets["user:tenant_admin"]
    update_rpcs = {m.name for m in pb.DESCRIPTOR.services_by_name["AuthService"].methods
                   if m.name.startswith("Update")}
    cases = _updates(a)
    assert {c[0] for c in cases} == update_rpcs
    for rpc, make, item, path in cases:
        current = getattr(await gate.expect(me, rpc, make("", [path])), item)
        stale = await gate.expect(me, rpc, make("r0", [path]), ABORTED)
        assert "etag" in stale.details
        updated = getattr(await gate.expect(me, rpc, make(current.etag, [path])), item)
        assert updated.etag != current.etag
        assert getattr(updated, path) == "new"
        await gate.expect(me, rpc, make(current.etag, [path]), ABORTED)  # now stale
        for bad in ("no_such_field", "id", "etag"):
            outcome = await gate.expect(me, rpc, make(updated.etag, [path, bad]), INVALID)
            assert f"'{bad}'" in outcome.details, outcome.details
        empty = await gate.expect(me, rpc, make(updated.etag, []), INVALID)
        assert "update_mask" in empty.details
    # Deletes check the etag too.
    team = (await gate.expect(me, "CreateTeam", pb.CreateTeamRequest(
        tenant=a.tenant.name, name="short-lived"))).team
    await gate.expect(me, "UpdateTeam", pb.UpdateTeamRequest(
        tenant=a.tenant.name, team=team.id, patch=pb.Team(display_name="x"),
        update_mask=mask("display_name"), etag=team.etag))
    await gate.expect(me, "DeleteTeam", pb.DeleteTeamRequest(
        tenant=a.tenant.name, team=team.id, etag=team.etag), ABORTED)
    fresh = (await gate.expect(me, "GetTeam", pb.GetTeamRequest(tenant=a.tenant.name,
                                                                team=team.id))).team
    await gate.expect(me, "DeleteTeam", pb.DeleteTeamRequest(
        tenant=a.tenant.name, team=team.id, etag=fresh.etag))


# -- pagination and filters -------------------------------------------------------------


async def test_pagination(world: World):
    gate, admin = world.gate, world.admin
    await gate.expect(admin, "CreateTenant", pb.CreateTenantRequest(name="pages"))
    names = {f"team-{i}" for i in range(7)}
    for name in sorted(names, reverse=True):
        await gate.expect(admin, "CreateTeam", pb.CreateTeamRequest(tenant="pages", name=name))
    pages, token = [], ""
    while True:
        response = await gate.expect(admin, "ListTeams", pb.ListTeamsRequest(
            tenant="pages", page_size=3, page_token=token))
        pages.append([team.name for team in response.teams])
        token = response.next_page_token
        if not token:
            break
        assert len(pages) < 5, "pagination does not end"
    assert [len(p) for p in pages] == [3, 3, 1]
    flat = [n for p in pages for n in p]
    assert len(flat) == len(set(flat)) and set(flat) == names and flat == sorted(flat)

    a = world.a.tenant.id
    audit_token = (await gate.expect(admin, "ListAuditEvents", pb.ListAuditEventsRequest(
        tenant=a, page_size=1))).next_page_token
    assert audit_token
    nul = base64.urlsafe_b64encode(orjson.dumps(["v2", "team-1\x00", "team_x"])).decode()
    for bad in ("garbage", "!!!!", "eyJ2MiI6MX0", audit_token, "x" * 5000, nul):
        await gate.expect(admin, "ListTeams", pb.ListTeamsRequest(
            tenant="pages", page_size=3, page_token=bad), INVALID)
    await gate.expect(admin, "ListAuditEvents", pb.ListAuditEventsRequest(
        tenant=a, page_token="garbage"), INVALID)
    await gate.expect(admin, "ListTeams", pb.ListTeamsRequest(tenant="pages", page_size=-1),
                      INVALID)

    # Every list pages through the same items as one big page, without duplicates.
    lists = [
        ("ListTenants", lambda: pb.ListTenantsRequest(), "tenants"),
        ("ListTeams", lambda: pb.ListTeamsRequest(tenant=a), "teams"),
        ("ListUsers", lambda: pb.ListUsersRequest(tenant=a), "users"),
        ("ListServiceAccounts", lambda: pb.ListServiceAccountsRequest(tenant=a),
         "service_accounts"),
        ("ListApiKeys", lambda: pb.ListApiKeysRequest(tenant=a), "keys"),
        ("ListAuditEvents", lambda: pb.ListAuditEventsRequest(tenant=a), "events"),
    ]
    list_rpcs = {m.name for m in pb.DESCRIPTOR.services_by_name["AuthService"].methods
                 if m.name.startswith("List")}
    assert {rpc for rpc, *_ in lists} == list_rpcs
    for rpc, make, items in lists:
        whole = [x.id for x in await list_all(gate, admin, rpc, make(), items)]
        paged, token = [], ""
        while True:
            request = make()
            request.page_size, request.page_token = 2, token
            response = await gate.expect(admin, rpc, request)
            assert len(getattr(response, items)) <= 2
            paged.extend(x.id for x in getattr(response, items))
            token = response.next_page_token
            if not token:
                break
        assert paged == whole and len(set(paged)) == len(paged), rpc


async def test_filters(world: World):
    gate, a, admin = world.gate, world.a, world.admin
    t = a.tenant.name
    red, blue = a.teams["red"], a.teams["blue"]

    async def keys(**filters) -> set[str]:
        return {k.id for k in await list_all(gate, admin, "ListApiKeys",
                                             pb.ListApiKeysRequest(tenant=t, **filters), "keys")}

    red_keys = {k.id for label, k in a.keys.items() if k.team_id == red.id}
    assert await keys(team="a-red") == red_keys == await keys(team=red.id)
    assert await keys(team="a-blue") == {a.keys["user:blue_developer"].id,
                                         a.keys["sa:blue_developer"].id}
    assert await keys(team="no-such-team") == set()
    dev = a.users["developer"]
    assert await keys(owner=f"users/{dev.id}") == {a.keys["user:developer"].id}
    assert await keys(owner=f"users/{dev.email}") == {a.keys["user:developer"].id}
    sa = a.accounts["viewer"]
    assert await keys(owner=f"service-accounts/{sa.name}") == {a.keys["sa:viewer"].id}
    assert await keys(owner="users/nobody@a.example") == set()
    await gate.expect(admin, "ListApiKeys", pb.ListApiKeysRequest(tenant=t, owner="bogus"),
                      INVALID)
    await gate.expect(admin, "RevokeApiKey", pb.RevokeApiKeyRequest(
        tenant=t, key_id=a.keys["user:viewer"].id))
    rotated = await gate.expect(admin, "RotateApiKey", pb.RotateApiKeyRequest(
        tenant=t, key_id=a.keys["sa:viewer"].id, overlap_seconds=0))
    assert await keys(status="revoked") == {a.keys["user:viewer"].id}
    assert await keys(status="expired") == {a.keys["sa:viewer"].id}
    assert await keys(status="active") == (await keys()) - {
        a.keys["user:viewer"].id, a.keys["sa:viewer"].id}
    assert rotated.key.id in await keys(status="active", team="a-red")
    assert await keys(status="revoked", team="a-blue") == set()
    await gate.expect(admin, "ListApiKeys", pb.ListApiKeysRequest(tenant=t, status="deleted"),
                      INVALID)

    async def users(**filters) -> set[str]:
        return {u.email for u in await list_all(gate, admin, "ListUsers",
                                                pb.ListUsersRequest(tenant=t, **filters),
                                                "users")}

    red_members = {a.email(x) for x in ("team_admin", "developer", "developer2", "viewer")}
    assert await users(team="a-red") == red_members == await users(team=red.id)
    assert await users(team=blue.name) == {a.email("blue_developer")}
    assert await users(team="a-empty") == set()
    assert await users(email_prefix="a-developer") == {a.email("developer"),
                                                       a.email("developer2")}
    assert await users(email_prefix="A-DEVELOPER2") == {a.email("developer2")}
    assert await users(email_prefix="a-dev", team="a-blue") == set()
    assert await users(email_prefix="%") == set() == await users(email_prefix="_")
    accounts = await list_all(gate, admin, "ListServiceAccounts",
                              pb.ListServiceAccountsRequest(tenant=t, team="a-blue"),
                              "service_accounts")
    assert [x.name for x in accounts] == ["a-sa-blue-developer"]
    teams = await list_all(gate, admin, "ListTeams", pb.ListTeamsRequest(tenant=t,
                                                                         name_prefix="a-b"),
                           "teams")
    assert [x.name for x in teams] == ["a-blue"]


# -- the audit trail --------------------------------------------------------------------


def _read_log(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


async def _decisions(path: Path, ids: set[str], within: float = 5.0) -> dict[str, dict]:
    """The decision-log entries with these ids (the log is written by a thread)."""
    deadline = time.monotonic() + within
    while True:
        entries = await asyncio.to_thread(_read_log, path)
        found = {e["decision_id"]: e for e in entries if e["decision_id"] in ids}
        if set(found) == ids or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


async def test_every_mutation_is_audited_with_its_decision(world: World):
    gate, a, b = world.gate, world.a, world.b
    t = a.tenant.name
    me = a.secrets["user:tenant_admin"]
    actor = f"user:{a.users['tenant_admin'].id}"
    done: list[tuple[str, str]] = []  # (action, object id) in order

    async def run(rpc: str, request: Message, action: str, object_id=None):
        response = await gate.expect(me, rpc, request)
        done.append((action, object_id(response) if callable(object_id) else object_id))
        return response

    await run("UpdateTenant", pb.UpdateTenantRequest(
        tenant=t, patch=pb.Tenant(display_name="Audited"), update_mask=mask("display_name")),
        "tenants.update", a.tenant.id)
    team = (await run("CreateTeam", pb.CreateTeamRequest(tenant=t, name="audited"),
                      "teams.create", lambda r: r.team.id)).team
    await run("UpdateTeam", pb.UpdateTeamRequest(
        tenant=t, team=team.id, patch=pb.Team(display_name="x"), update_mask=mask("display_name")),
        "teams.update", team.id)
    user = (await run("CreateUser", pb.CreateUserRequest(
        tenant=t, email="audited@a.example",
        memberships=[pb.TeamMembership(team="audited", roles=["developer"])]),
        "users.create", lambda r: r.user.id)).user
    await run("UpdateUser", pb.UpdateUserRequest(
        tenant=t, user=user.id, patch=pb.User(display_name="x"), update_mask=mask("display_name")),
        "users.update", user.id)
    account = (await run("CreateServiceAccount", pb.CreateServiceAccountRequest(
        tenant=t, team="audited", name="audited-bot"), "service_accounts.create",
        lambda r: r.service_account.id)).service_account
    await run("UpdateServiceAccount", pb.UpdateServiceAccountRequest(
        tenant=t, service_account=account.id, patch=pb.ServiceAccount(display_name="x"),
        update_mask=mask("display_name")), "service_accounts.update", account.id)
    key = (await run("CreateApiKey", pb.CreateApiKeyRequest(
        tenant=t, name="audited", owner="service-accounts/audited-bot"), "keys.create",
        lambda r: r.key.id)).key
    await run("UpdateApiKey", pb.UpdateApiKeyRequest(
        tenant=t, key_id=key.id, patch=pb.ApiKey(name="renamed"), update_mask=mask("name")),
        "keys.update", key.id)
    rotated = await run("RotateApiKey", pb.RotateApiKeyRequest(tenant=t, key_id=key.id),
                        "keys.rotate", key.id)
    done.append(("keys.create", rotated.key.id))
    await run("RevokeApiKey", pb.RevokeApiKeyRequest(tenant=t, key_id=rotated.key.id),
              "keys.revoke", rotated.key.id)
    # Deleting the owner revokes its keys still in force (the rotated one, in its
    # overlap), each with its own event, before the deletion's.
    done.append(("keys.revoke", key.id))
    await run("DeleteServiceAccount", pb.DeleteServiceAccountRequest(
        tenant=t, service_account=account.id), "service_accounts.delete", account.id)
    await run("DeleteUser", pb.DeleteUserRequest(tenant=t, user=user.id), "users.delete",
              user.id)
    await run("DeleteTeam", pb.DeleteTeamRequest(tenant=t, team=team.id), "teams.delete",
              team.id)
    # Refused and failed calls leave no trace.
    await gate.expect(me, "UpdateUser", pb.UpdateUserRequest(
        tenant=t, user=a.email("developer"), patch=pb.User(roles=["platform_admin"]),
        update_mask=mask("roles")), DENIED)
    await gate.expect(me, "CreateTeam", pb.CreateTeamRequest(tenant=t, name="a-red"),
                      grpc.StatusCode.ALREADY_EXISTS)

    events = await list_all(gate, me, "ListAuditEvents", pb.ListAuditEventsRequest(tenant=t),
                            "events")
    mine = [e for e in reversed(events) if e.actor_key_id == a.keys["user:tenant_admin"].id]
    assert [(e.action, e.object_id) for e in mine] == done
    types = {"tenants": "tenant", "teams": "team", "users": "user",
             "service_accounts": "service_account", "keys": "key"}
    for event in mine:
        assert event.tenant_id == a.tenant.id
        assert event.actor_principal == actor
        assert event.object_type == types[event.action.split(".")[0]]
        assert event.create_time.seconds > 0
        verb = event.action.split(".")[1]
        if verb == "create":
            assert event.before_digest == "" and len(event.after_digest) == 64
        elif verb == "delete":
            assert len(event.before_digest) == 64 and event.after_digest == ""
        else:
            assert len(event.before_digest) == 64 and len(event.after_digest) == 64
            assert event.before_digest != event.after_digest
        assert event.decision_id
    # Filters.
    by_key = await list_all(gate, me, "ListAuditEvents", pb.ListAuditEventsRequest(
        tenant=t, object_id=key.id), "events")
    assert [e.action for e in reversed(by_key)] == ["keys.create", "keys.update", "keys.rotate",
                                                    "keys.revoke"]
    revokes = await list_all(gate, me, "ListAuditEvents", pb.ListAuditEventsRequest(
        tenant=t, action="keys.revoke"), "events")
    assert [e.object_id for e in revokes] == [key.id, rotated.key.id]

    # Each event's decision is in the decision log: the admin policy allowed that action.
    log = await _decisions(gate.data_dir / "decisions-auth.jsonl", {e.decision_id for e in mine})
    assert set(log) == {e.decision_id for e in mine}
    successor = next(e for e in mine if e.object_id == rotated.key.id
                     and e.action == "keys.create")
    rotation = next(e for e in mine if e.action == "keys.rotate")
    assert successor.decision_id == rotation.decision_id  # one decision allowed both
    cascade = next(e for e in mine if e.action == "keys.revoke" and e.object_id == key.id)
    deletion = next(e for e in mine if e.action == "service_accounts.delete")
    assert cascade.decision_id == deletion.decision_id  # revoked by the deletion's decision
    implied = {id(successor): "keys.rotate", id(cascade): "service_accounts.delete"}
    for event in mine:
        entry = log[event.decision_id]
        assert entry["path"] == "lockgate/admin/decision"
        assert entry["result"]["allow"] is True
        assert entry["input"]["action"] == implied.get(id(event), event.action)
        assert entry["input"]["principal"]["key_id"] == event.actor_key_id
        assert entry["input"]["principal"]["tenant_id"] == a.tenant.id

    # Tenant B's trail: never visible to tenant A, in full to the platform admin.
    assert all(e.tenant_id == a.tenant.id for e in events)
    assert not _leaks(pb.ListAuditEventsResponse(events=events), b.identifiers())
    for caller in ROLE_KEYS:
        await gate.expect(a.secrets[caller], "ListAuditEvents", pb.ListAuditEventsRequest(
            tenant=b.tenant.id), NOT_FOUND)
    b_events = await list_all(gate, world.admin, "ListAuditEvents",
                              pb.ListAuditEventsRequest(tenant=b.tenant.name), "events")
    assert {e.tenant_id for e in b_events} == {b.tenant.id}
    assert b.users["developer"].id in {e.object_id for e in b_events}


# -- input hygiene ----------------------------------------------------------------------

BAD = [
    "' OR 1=1 --",
    "x" * 10_000,
    "a\x00b",
    "%_",  # LIKE wildcards: a filter must not match everything
    "Ünïcødé-名前 ../../etc/passwd \u202e a@b",
]

Field = tuple[str, Callable[[str], Message]]


def _hygiene(a: Side) -> dict[str, list[Field]]:
    """Per RPC: (field, request with that field set to a value) — the other fields valid."""
    t, red = a.tenant.name, "a-red"
    key_id = a.keys["user:developer"].id
    user, sa = a.email("developer"), a.accounts["developer"].name
    return {
        "CreateTenant": [("name", lambda v: pb.CreateTenantRequest(name=v))],
        "GetTenant": [("tenant", lambda v: pb.GetTenantRequest(tenant=v))],
        "ListTenants": [("name_prefix", lambda v: pb.ListTenantsRequest(name_prefix=v)),
                        ("page_token", lambda v: pb.ListTenantsRequest(page_token=v))],
        "UpdateTenant": [
            ("tenant", lambda v: pb.UpdateTenantRequest(
                tenant=v, patch=pb.Tenant(display_name="d"), update_mask=mask("display_name"))),
            ("update_mask", lambda v: pb.UpdateTenantRequest(
                tenant=t, patch=pb.Tenant(display_name="d"), update_mask=mask(v))),
            ("etag", lambda v: pb.UpdateTenantRequest(
                tenant=t, patch=pb.Tenant(display_name="d"), update_mask=mask("display_name"),
                etag=v)),
        ],
        "CreateTeam": [("tenant", lambda v: pb.CreateTeamRequest(tenant=v, name="fresh")),
                       ("name", lambda v: pb.CreateTeamRequest(tenant=t, name=v))],
        "GetTeam": [("tenant", lambda v: pb.GetTeamRequest(tenant=v, team=red)),
                    ("team", lambda v: pb.GetTeamRequest(tenant=t, team=v))],
        "ListTeams": [("tenant", lambda v: pb.ListTeamsRequest(tenant=v)),
                      ("name_prefix", lambda v: pb.ListTeamsRequest(tenant=t, name_prefix=v)),
                      ("page_token", lambda v: pb.ListTeamsRequest(tenant=t, page_token=v))],
        "UpdateTeam": [
            ("team", lambda v: pb.UpdateTeamRequest(
                tenant=t, team=v, patch=pb.Team(display_name="d"),
                update_mask=mask("display_name"))),
            ("update_mask", lambda v: pb.UpdateTeamRequest(
                tenant=t, team=red, patch=pb.Team(display_name="d"), update_mask=mask(v))),
        ],
        "DeleteTeam": [("team", lambda v: pb.DeleteTeamRequest(tenant=t, team=v)),
                       ("etag", lambda v: pb.DeleteTeamRequest(tenant=t, team="a-empty",
                                                               etag=v))],
        "CreateUser": [
            ("tenant", lambda v: pb.CreateUserRequest(tenant=v, email="fresh@a.example")),
            ("email", lambda v: pb.CreateUserRequest(tenant=t, email=v)),
            ("roles", lambda v: pb.CreateUserRequest(tenant=t, email="fresh@a.example",
                                                     roles=[v])),
            ("memberships.team", lambda v: pb.CreateUserRequest(
                tenant=t, email="fresh@a.example",
                memberships=[pb.TeamMembership(team=v, roles=["viewer"])])),
            ("memberships.roles", lambda v: pb.CreateUserRequest(
                tenant=t, email="fresh@a.example",
                memberships=[pb.TeamMembership(team=red, roles=[v])])),
        ],
        "GetUser": [("user", lambda v: pb.GetUserRequest(tenant=t, user=v))],
        "ListUsers": [("team", lambda v: pb.ListUsersRequest(tenant=t, team=v)),
                      ("email_prefix", lambda v: pb.ListUsersRequest(tenant=t, email_prefix=v)),
                      ("page_token", lambda v: pb.ListUsersRequest(tenant=t, page_token=v))],
        "UpdateUser": [
            ("user", lambda v: pb.UpdateUserRequest(
                tenant=t, user=v, patch=pb.User(display_name="d"),
                update_mask=mask("display_name"))),
            ("patch.roles", lambda v: pb.UpdateUserRequest(
                tenant=t, user=user, patch=pb.User(roles=[v]), update_mask=mask("roles"))),
            ("patch.status", lambda v: pb.UpdateUserRequest(
                tenant=t, user=user, patch=pb.User(status=v), update_mask=mask("status"))),
            ("patch.memberships.team", lambda v: pb.UpdateUserRequest(
                tenant=t, user=user, update_mask=mask("memberships"), patch=pb.User(
                    memberships=[pb.TeamMembership(team=v, roles=["viewer"])]))),
        ],
        "DeleteUser": [("user", lambda v: pb.DeleteUserRequest(tenant=t, user=v)),
                       ("etag", lambda v: pb.DeleteUserRequest(tenant=t, user=user, etag=v))],
        "CreateServiceAccount": [
            ("team", lambda v: pb.CreateServiceAccountRequest(tenant=t, team=v, name="fresh")),
            ("name", lambda v: pb.CreateServiceAccountRequest(tenant=t, team=red, name=v)),
            ("roles", lambda v: pb.CreateServiceAccountRequest(tenant=t, team=red, name="fresh",
                                                               roles=[v])),
        ],
        "GetServiceAccount": [("service_account", lambda v: pb.GetServiceAccountRequest(
            tenant=t, service_account=v))],
        "ListServiceAccounts": [
            ("team", lambda v: pb.ListServiceAccountsRequest(tenant=t, team=v)),
            ("page_token", lambda v: pb.ListServiceAccountsRequest(tenant=t, page_token=v)),
        ],
        "UpdateServiceAccount": [
            ("service_account", lambda v: pb.UpdateServiceAccountRequest(
                tenant=t, service_account=v, patch=pb.ServiceAccount(display_name="d"),
                update_mask=mask("display_name"))),
            ("patch.roles", lambda v: pb.UpdateServiceAccountRequest(
                tenant=t, service_account=sa, patch=pb.ServiceAccount(roles=[v]),
                update_mask=mask("roles"))),
            ("patch.status", lambda v: pb.UpdateServiceAccountRequest(
                tenant=t, service_account=sa, patch=pb.ServiceAccount(status=v),
                update_mask=mask("status"))),
        ],
        "DeleteServiceAccount": [("service_account", lambda v: pb.DeleteServiceAccountRequest(
            tenant=t, service_account=v))],
        "CreateApiKey": [
            ("tenant", lambda v: pb.CreateApiKeyRequest(tenant=v, name="k")),
            ("roles", lambda v: pb.CreateApiKeyRequest(tenant=t, name="k", owner=f"users/{user}",
                                                       roles=[v])),
            ("models", lambda v: pb.CreateApiKeyRequest(tenant=t, name="k", owner=f"users/{user}",
                                                        models=[v])),
            ("scopes", lambda v: pb.CreateApiKeyRequest(tenant=t, name="k", owner=f"users/{user}",
                                                        scopes=[v])),
            ("owner", lambda v: pb.CreateApiKeyRequest(tenant=t, name="k", owner=v)),
            ("owner users/", lambda v: pb.CreateApiKeyRequest(tenant=t, name="k",
                                                              owner=f"users/{v}")),
            ("team", lambda v: pb.CreateApiKeyRequest(tenant=t, name="k", owner=f"users/{user}",
                                                      team=v)),
        ],
        "GetApiKey": [("key_id", lambda v: pb.GetApiKeyRequest(tenant=t, key_id=v))],
        "ListApiKeys": [
            ("team", lambda v: pb.ListApiKeysRequest(tenant=t, team=v)),
            ("owner", lambda v: pb.ListApiKeysRequest(tenant=t, owner=v)),
            ("owner service-accounts/", lambda v: pb.ListApiKeysRequest(
                tenant=t, owner=f"service-accounts/{v}")),
            ("status", lambda v: pb.ListApiKeysRequest(tenant=t, status=v)),
            ("page_token", lambda v: pb.ListApiKeysRequest(tenant=t, page_token=v)),
        ],
        "UpdateApiKey": [
            ("key_id", lambda v: pb.UpdateApiKeyRequest(
                tenant=t, key_id=v, patch=pb.ApiKey(name="n"), update_mask=mask("name"))),
            ("patch.roles", lambda v: pb.UpdateApiKeyRequest(
                tenant=t, key_id=key_id, patch=pb.ApiKey(roles=[v]), update_mask=mask("roles"))),
            ("patch.models", lambda v: pb.UpdateApiKeyRequest(
                tenant=t, key_id=key_id, patch=pb.ApiKey(models=[v]),
                update_mask=mask("models"))),
            ("patch.scopes", lambda v: pb.UpdateApiKeyRequest(
                tenant=t, key_id=key_id, patch=pb.ApiKey(scopes=[v]),
                update_mask=mask("scopes"))),
            ("etag", lambda v: pb.UpdateApiKeyRequest(
                tenant=t, key_id=key_id, patch=pb.ApiKey(name="n"), update_mask=mask("name"),
                etag=v)),
        ],
        "RotateApiKey": [("key_id", lambda v: pb.RotateApiKeyRequest(tenant=t, key_id=v))],
        "RevokeApiKey": [("key_id", lambda v: pb.RevokeApiKeyRequest(tenant=t, key_id=v))],
        "ListAuditEvents": [
            ("object_id", lambda v: pb.ListAuditEventsRequest(tenant=t, object_id=v)),
            ("action", lambda v: pb.ListAuditEventsRequest(tenant=t, action=v)),
            ("page_token", lambda v: pb.ListAuditEventsRequest(tenant=t, page_token=v)),
        ],
    }


#: Free text: any printable value is a valid one (stored verbatim).
FREE_TEXT = [
    ("UpdateTenant", "display_name", lambda a, v: pb.UpdateTenantRequest(
        tenant=a.tenant.id, patch=pb.Tenant(display_name=v), update_mask=mask("display_name")),
     "tenant"),
    ("UpdateTeam", "display_name", lambda a, v: pb.UpdateTeamRequest(
        tenant=a.tenant.id, team="a-blue", patch=pb.Team(display_name=v),
        update_mask=mask("display_name")), "team"),
    ("UpdateUser", "display_name", lambda a, v: pb.UpdateUserRequest(
        tenant=a.tenant.id, user=a.email("viewer"), patch=pb.User(display_name=v),
        update_mask=mask("display_name")), "user"),
    ("UpdateServiceAccount", "display_name", lambda a, v: pb.UpdateServiceAccountRequest(
        tenant=a.tenant.id, service_account=a.accounts["viewer"].id,
        patch=pb.ServiceAccount(display_name=v), update_mask=mask("display_name")),
     "service_account"),
    ("UpdateApiKey", "name", lambda a, v: pb.UpdateApiKeyRequest(
        tenant=a.tenant.id, key_id=a.keys["sa:viewer"].id, patch=pb.ApiKey(name=v),
        update_mask=mask("name")), "key"),
]


async def test_hostile_input_is_refused_cleanly(world: World):
    gate, a, admin = world.gate, world.a, world.admin
    table = _hygiene(a)
    covered = {m.name for m in pb.DESCRIPTOR.services_by_name["AuthService"].methods}
    assert set(table) == covered - NOT_IN_MATRIX
    before = await _object_ids(world)
    problems = []
    for rpc, fields in table.items():
        metadata = await gate.metadata(admin, rpc)
        for name, make in fields:
            for value in BAD:
                outcome = await gate.send(metadata, rpc, make(value))
                if outcome.code == OK and rpc.startswith("List"):
                    # A filter matching nothing: an empty list (never "everything").
                    items = outcome.response.DESCRIPTOR.fields_by_number[1].name
                    listed = getattr(outcome.response, items)
                    if listed:
                        problems.append(f"{rpc}.{name}={value[:40]!r}: listed {len(listed)}")
                elif outcome.code not in (INVALID, NOT_FOUND, ABORTED):
                    problems.append(f"{rpc}.{name}={value[:40]!r}: {outcome.code.name} "
                                    f"{outcome.details[:120]!r}")
    # Names: lower-case letters, digits and dashes, starting with a letter, at most 63.
    for value in ("a" * 64, "UPPER", "1st", "-dash", "with space", "dot.ted", "under_score"):
        for rpc, request in (
            ("CreateTenant", pb.CreateTenantRequest(name=value)),
            ("CreateTeam", pb.CreateTeamRequest(tenant=a.tenant.id, name=value)),
            ("CreateServiceAccount", pb.CreateServiceAccountRequest(
                tenant=a.tenant.id, team="a-red", name=value)),
        ):
            outcome = await gate.attempt(admin, rpc, request)
            if outcome.code != INVALID or "name" not in outcome.details:
                problems.append(f"{rpc}.name={value!r}: {outcome.code.name} {outcome.details!r}")
    assert not problems, "\n".join(problems)
    assert await _object_ids(world) == before, "hostile input created or changed something"

    # Numbers out of range.
    t, owner = a.tenant.name, f"users/{a.email('developer')}"
    key_id = a.keys["user:developer"].id
    far = timestamp_pb2.Timestamp(seconds=2**62)
    before = await _object_ids(world)
    for rpc, request in (
        ("CreateApiKey", pb.CreateApiKeyRequest(tenant=t, name="k", owner=owner,
                                                expire_time=far)),
        ("CreateApiKey", pb.CreateApiKeyRequest(tenant=t, name="k", owner=owner,
                                                expire_time=timestamp_pb2.Timestamp(
                                                    seconds=-2**62))),
        ("UpdateApiKey", pb.UpdateApiKeyRequest(tenant=t, key_id=key_id,
                                                patch=pb.ApiKey(expire_time=far),
                                                update_mask=mask("expire_time"))),
        ("RotateApiKey", pb.RotateApiKeyRequest(tenant=t, key_id=key_id,
                                                overlap_seconds=2**63 - 1)),
        ("RotateApiKey", pb.RotateApiKeyRequest(tenant=t, key_id=key_id,
                                                overlap_seconds=-2**63)),
        ("RotateApiKey", pb.RotateApiKeyRequest(tenant=t, key_id=key_id,
                                                overlap_seconds=31 * 86400)),
        ("ListTeams", pb.ListTeamsRequest(tenant=t, page_size=-(2**31))),
    ):
        outcome = await gate.attempt(admin, rpc, request)
        assert outcome.code == INVALID, (rpc, outcome)
    assert await _object_ids(world) == before, "out-of-range numbers changed something"
    # The largest page size is capped, not refused.
    await gate.expect(admin, "ListTeams", pb.ListTeamsRequest(tenant=t, page_size=2**31 - 1))

    for rpc, name, make, item in FREE_TEXT:
        for value in BAD:
            outcome = await gate.attempt(admin, rpc, make(a, value))
            if outcome.code == OK:
                assert getattr(getattr(outcome.response, item), name) == value, (rpc, value)
            else:
                assert outcome.code == INVALID, (rpc, value[:40], outcome)
                assert name in outcome.details
