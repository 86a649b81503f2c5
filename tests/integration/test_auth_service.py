"""Auth use cases on SQLite and PostgreSQL (no gRPC): first-start bootstrap, key
resolution, tenant walls, and keys made before tenancy (migration auth_0001) that
must keep working after the upgrade."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

import services.auth
from lockgate.db import make_engine, migrate, session_factory
from lockgate.errors import InvalidRequest, NotFound, PermissionDenied
from lockgate.identity import Identity
from services.auth import roles as vocab
from services.auth.principals import PrincipalCache
from services.auth.secrets import KeyHasher, new_secret, parse_prefix
from services.auth.service import AuthService

MIGRATIONS = Path(services.auth.__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_auth"
PEPPER = b"p" * 32


def service_on(engine, pepper: bytes = PEPPER) -> AuthService:
    return AuthService(session_factory(engine), KeyHasher(pepper), PrincipalCache(60))


@pytest.fixture
async def engine(database_url):
    await migrate(database_url, MIGRATIONS, VERSION_TABLE)
    engine = make_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def auth(engine):
    return service_on(engine)


def caller(tenant_id: str, role: str, kind: str = "", principal_id: str = "",
           team_id: str = "") -> Identity:
    """An identity as Check would forward it."""
    return Identity(tenant_id, f"key_{role}", (role,), principal_kind=kind,
                    principal_id=principal_id, team_id=team_id)


# -- bootstrap --------------------------------------------------------------------------


async def test_bootstrap_is_idempotent(engine, auth):
    secret = await auth.bootstrap()
    assert secret and parse_prefix(secret)
    assert await auth.bootstrap() is None
    assert await service_on(engine).bootstrap() is None  # a restart: nothing new

    tenants = (await auth.tenancy.list_tenants(None)).items
    assert [t.name for t in tenants] == ["default"]
    teams = (await auth.tenancy.list_teams(None, "default")).items
    assert [t.name for t in teams] == ["platform"]
    accounts = (await auth.tenancy.list_service_accounts(None, "default")).items
    assert [(a.name, a.roles, a.team_id, a.status) for a in accounts] == [
        ("admin", ["platform_admin"], teams[0].id, "active")]
    keys = (await auth.keys.list(None, "default")).items
    assert len(keys) == 1
    key = keys[0]
    assert (key.owner_kind, key.owner_id, key.team_id, key.roles) == (
        "service_account", accounts[0].id, teams[0].id, ["platform_admin"])

    principal = await auth.resolve(secret)
    assert principal.key_id == key.id
    assert principal.roles == ("platform_admin",)
    assert (principal.tenant_name, principal.tenant_id) == ("default", tenants[0].id)
    assert (principal.owner_kind, principal.owner_id) == ("service_account", accounts[0].id)
    assert principal.team_id == teams[0].id and principal.status == "active"
    audit = (await auth.list_audit_events(None, "default")).items
    assert [(e.action, e.actor_principal) for e in audit] == [("keys.create", "system")]


async def test_bootstrap_completes_a_half_made_default_tenant(auth):
    """A default tenant without a platform admin key (made by hand, or left by a
    crash between the two transactions) gets its team, account and key."""
    await auth.tenancy.create_tenant(None, "default")
    secret = await auth.bootstrap()
    assert secret is not None
    assert (await auth.resolve(secret)).roles == ("platform_admin",)
    assert await auth.bootstrap() is None


async def test_two_replicas_bootstrapping_at_once_make_one_admin(database_url, engine):
    other = make_engine(database_url)
    try:
        results = await asyncio.gather(service_on(engine).bootstrap(),
                                       service_on(other).bootstrap(), return_exceptions=True)
    finally:
        await other.dispose()
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(1 for r in results if r) == 1
    assert len((await service_on(engine).keys.list(None, "default")).items) == 1


# -- resolving keys ---------------------------------------------------------------------


async def test_keys_resolve_only_with_the_exact_secret(engine, auth):
    await auth.bootstrap()
    await auth.tenancy.create_service_account(None, "default", "platform", "ci")
    created = await auth.create_key(None, "default", "ci", [], [],
                                    owner="service-accounts/ci")
    key, secret = created.key, created.secret
    assert key.roles == ["developer"]  # the default role
    assert secret not in key.model_dump_json() and key.secret_hash != secret
    assert secret.startswith(f"lg_{key.prefix}_")
    principal = await auth.resolve(secret)
    assert principal.key_id == key.id and principal.roles == ("developer",)

    other_secret = (await auth.create_key(None, "default", "other", [], [],
                                          owner="service-accounts/ci")).secret
    body = secret.split("_", 2)[2]
    wrong = [
        secret[:-1] + ("A" if secret[-1] != "A" else "B"),  # one character off
        secret.upper() if secret.upper() != secret else secret.lower(),
        secret[:-1],
        secret + "A",
        f" {secret}",
        f"lg_{key.prefix}_{other_secret.split('_', 2)[2]}",  # right prefix, other secret
        f"{other_secret.split('_', 2)[0]}_{other_secret.split('_', 2)[1]}_{body}",
        f"lg_{key.prefix}_" + "A" * 32,
        f"lg_{key.prefix}",
        "lg_' OR 1=1 --",
        f"lg_{key.prefix}_' OR '1'='1' --" + "x" * 12,
        "x" * 10_000,
        "",
    ]
    for presented in wrong:
        assert await auth.resolve(presented) is None, presented
    # The pepper is part of the hash: another pepper resolves nothing.
    assert await service_on(engine, b"q" * 32).resolve(secret) is None
    assert (await auth.resolve(secret)).key_id == key.id


async def test_revocation_and_owner_changes_take_effect_at_once(auth):
    await auth.bootstrap()
    account = await auth.tenancy.create_service_account(None, "default", "platform", "tmp",
                                                        roles=["team_admin"])
    revoked = await auth.create_key(None, "default", "revoked", ["developer"], [],
                                    owner="service-accounts/tmp")
    demoted = await auth.create_key(None, "default", "demoted", ["team_admin", "developer"], [],
                                    owner="service-accounts/tmp")
    assert (await auth.resolve(revoked.secret)).status == "active"  # now cached
    assert (await auth.resolve(demoted.secret)).roles == ("team_admin", "developer")
    await auth.revoke_key(None, "default", revoked.key.id)
    assert (await auth.resolve(revoked.secret)).status == "revoked"
    await auth.tenancy.update_service_account(None, "default", account.id,
                                              {"roles": ["developer"]})
    assert (await auth.resolve(demoted.secret)).roles == ("developer",)
    await auth.tenancy.update_service_account(None, "default", account.id,
                                              {"status": "disabled"})
    assert (await auth.resolve(demoted.secret)).status == "disabled"


# -- tenant walls and grants, as the use cases see callers --------------------------------


async def test_a_tenant_admin_cannot_see_or_touch_another_tenant(auth):
    await auth.bootstrap()
    acme = await auth.create_tenant(None, "acme")
    other = await auth.create_tenant(None, "other")
    await auth.tenancy.create_team(None, "other", "ops")
    await auth.tenancy.create_service_account(None, "other", "ops", "bot")
    other_key = await auth.create_key(None, "other", "k", [], [], owner="service-accounts/bot")
    boss = await auth.tenancy.create_user(None, "acme", "boss@acme.example",
                                          roles=["tenant_admin"])
    acme_admin = caller(acme.id, "tenant_admin", "user", boss.user.id)

    for attempt in (
        auth.keys.list(acme_admin, other.id),
        auth.keys.list(acme_admin, "other"),
        auth.create_key(acme_admin, "other", "sneaky", [], [], owner="service-accounts/bot"),
        auth.revoke_key(acme_admin, "other", other_key.key.id),
        auth.revoke_key(acme_admin, "acme", other_key.key.id),
        auth.keys.get(acme_admin, "acme", other_key.key.id),
        auth.tenancy.get_tenant(acme_admin, other.id),
        auth.tenancy.get_team(acme_admin, "other", "ops"),
        auth.tenancy.get_service_account(acme_admin, "acme", "bot"),
        auth.list_audit_events(acme_admin, "other"),
    ):
        with pytest.raises(NotFound):
            await attempt
    assert [t.name for t in (await auth.tenancy.list_tenants(acme_admin)).items] == ["acme"]
    assert (await auth.resolve(other_key.secret)).status == "active"


async def test_nobody_grants_roles_they_do_not_hold(auth):
    await auth.bootstrap()
    acme = await auth.create_tenant(None, "acme")
    team = await auth.tenancy.create_team(None, "acme", "dev")
    dev = await auth.tenancy.create_user(None, "acme", "dev@acme.example",
                                         memberships=[("dev", ["developer"])])
    boss = await auth.tenancy.create_user(None, "acme", "boss@acme.example",
                                          roles=["tenant_admin"])
    lead = await auth.tenancy.create_user(None, "acme", "lead@acme.example",
                                          memberships=[("dev", ["team_admin"])])
    developer = caller(acme.id, "developer", "user", dev.user.id, team.id)
    team_admin = caller(acme.id, "team_admin", "user", lead.user.id, team.id)
    tenant_admin = caller(acme.id, "tenant_admin", "user", boss.user.id)
    with pytest.raises(InvalidRequest):  # the owner (the developer) does not hold it
        await auth.create_key(developer, "acme", "escalate", ["tenant_admin"], [])
    with pytest.raises(NotFound):  # a developer cannot even see someone else's keys
        await auth.create_key(developer, "acme", "x", [], [], owner="users/boss@acme.example",
                              team="dev")
    with pytest.raises(PermissionDenied):  # the owner holds it; the caller does not
        await auth.create_key(team_admin, "acme", "escalate", ["tenant_admin"], [],
                              owner="users/boss@acme.example", team="dev")
    with pytest.raises(PermissionDenied):
        await auth.tenancy.create_user(tenant_admin, "acme", "root@acme.example",
                                       roles=["platform_admin"])
    with pytest.raises(InvalidRequest):
        await auth.create_key(None, "acme", "x", ["root"], [], owner="users/dev@acme.example")
    created = await auth.create_key(developer, "acme", "mine", [], [])
    assert (created.key.owner_id, created.key.team_id, created.key.roles) == (
        dev.user.id, team.id, ["developer"])


# -- keys made before tenancy (auth_0001) ------------------------------------------------


def _alembic(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["url"] = url
    cfg.attributes["version_table"] = VERSION_TABLE
    return cfg


OLD_TENANTS = sa.table("tenants", sa.column("id"), sa.column("name"),
                       sa.column("created_at", sa.DateTime(timezone=True)))
OLD_KEYS = sa.table(
    "api_keys", sa.column("id"), sa.column("tenant_id"), sa.column("name"), sa.column("prefix"),
    sa.column("secret_hash"), sa.column("roles", sa.JSON), sa.column("models", sa.JSON),
    sa.column("status"), sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("revoked_at", sa.DateTime(timezone=True)),
)


async def test_keys_from_before_tenancy_keep_working(database_url):
    # Schema auth_0001: tenants and keys, nothing else.
    await asyncio.to_thread(command.upgrade, _alembic(database_url), "auth_0001")
    hasher = KeyHasher(PEPPER)
    now = datetime.now(UTC)
    old = {  # name -> (tenant, roles, models, status)
        "admin": ("default", ["platform_admin"], [], "active"),
        "ci": ("acme", ["developer"], [], "active"),
        "ops": ("acme", ["tenant_admin", "developer"], ["gpt-4o", "demo"], "active"),
        "Deploy Bot #1": ("acme", ["viewer"], [], "active"),
        "2nd deploy key": ("acme", ["developer"], [], "active"),
        "retired": ("acme", ["developer"], [], "revoked"),
    }
    tenant_ids = {"default": f"ten_{secrets.token_hex(12)}", "acme": f"ten_{secrets.token_hex(12)}"}
    issued: dict[str, tuple[str, str]] = {}  # name -> (key id, secret)
    engine = make_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(OLD_TENANTS.insert(), [
                {"id": tid, "name": name, "created_at": now} for name, tid in tenant_ids.items()])
            for name, (tenant, roles, models, status) in old.items():
                secret, prefix = new_secret()
                key_id = f"key_{secrets.token_hex(12)}"
                issued[name] = (key_id, secret)
                await conn.execute(OLD_KEYS.insert(), [{
                    "id": key_id, "tenant_id": tenant_ids[tenant], "name": name,
                    "prefix": prefix, "secret_hash": hasher.hash(secret), "roles": roles,
                    "models": models, "status": status, "created_at": now,
                    "revoked_at": now if status == "revoked" else None,
                }])
        await migrate(database_url, MIGRATIONS, VERSION_TABLE)  # to head
        auth = service_on(engine)

        assert await auth.bootstrap() is None  # the old platform admin key still counts
        bad_names = []
        for name, (tenant, roles, models, status) in old.items():
            key_id, secret = issued[name]
            principal = await auth.resolve(secret)
            assert principal is not None, name
            assert principal.key_id == key_id and principal.tenant_id == tenant_ids[tenant]
            assert principal.roles == tuple(roles), name  # no right lost or gained
            assert principal.models == tuple(models), name
            assert principal.status == status, name
            assert principal.owner_kind == "service_account", name
            team = await auth.tenancy.get_team(None, tenant, principal.team_id)
            assert team.name == "default", name
            account = await auth.tenancy.get_service_account(None, tenant, principal.owner_id)
            assert (account.team_id, account.roles, account.status) == (
                team.id, roles, "active"), name
            if not vocab.NAME.match(account.name):
                bad_names.append(account.name)
            key = await auth.keys.get(None, tenant, key_id)
            assert (key.scopes, key.replaced_by, key.expires_at) == ([], "", None)
        # One owner per key, all in the tenant's `default` team.
        accounts = (await auth.tenancy.list_service_accounts(None, "acme")).items
        assert len(accounts) == 5 and len({a.team_id for a in accounts}) == 1
        # The migrated keys are managed like any other: rotate one.
        key_id, secret = issued["ci"]
        successor, _ = await auth.keys.rotate(None, "acme", key_id)
        assert (await auth.resolve(successor.secret)).roles == ("developer",)
    finally:
        await engine.dispose()
    assert not bad_names, f"migrated owners break the name rule: {bad_names}"
