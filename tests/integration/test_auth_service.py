"""Auth use cases on SQLite and PostgreSQL: keys, bootstrap, tenant walls."""

from __future__ import annotations

from pathlib import Path

import pytest

import services.auth
from lockgate.db import make_engine, migrate, session_factory
from lockgate.errors import InvalidRequest, NotFound
from lockgate.identity import Identity
from services.auth.principals import PrincipalCache
from services.auth.secrets import KeyHasher, parse_prefix
from services.auth.service import AuthService

MIGRATIONS = Path(services.auth.__file__).parent / "migrations"


@pytest.fixture
async def auth(database_url):
    await migrate(database_url, MIGRATIONS, "alembic_version_auth")
    engine = make_engine(database_url)
    yield AuthService(session_factory(engine), KeyHasher(b"p" * 32), PrincipalCache(60))
    await engine.dispose()


async def test_bootstrap_creates_default_tenant_and_one_admin_key(auth):
    secret = await auth.bootstrap()
    assert secret and parse_prefix(secret)
    assert await auth.bootstrap() is None  # second start: nothing new
    principal = await auth.resolve(secret)
    assert principal.roles == ("platform_admin",)
    assert principal.tenant_name == "default"


async def test_keys_resolve_only_with_the_exact_secret(auth):
    await auth.bootstrap()
    admin = Identity("", "", ("platform_admin",))
    created = await auth.create_key(admin, "default", "ci", [], [])
    assert created.key.roles == ["developer"]
    assert created.secret not in created.key.model_dump_json()  # stored hashed only
    assert created.key.secret_hash != created.secret
    assert (await auth.resolve(created.secret)).key_id == created.key.id
    tampered = created.secret[:-1] + ("A" if created.secret[-1] != "A" else "B")
    assert await auth.resolve(tampered) is None
    assert await auth.resolve("lg_' OR 1=1 --") is None
    assert await auth.resolve("x" * 10_000) is None


async def test_revocation_takes_effect_at_once(auth):
    await auth.bootstrap()
    admin = Identity("", "", ("platform_admin",))
    created = await auth.create_key(admin, "default", "temp", ["developer"], [])
    assert (await auth.resolve(created.secret)).status == "active"
    tenant_id = created.key.tenant_id
    caller = Identity(tenant_id, "", ("platform_admin",))
    await auth.revoke_key(caller, tenant_id, created.key.id)
    assert (await auth.resolve(created.secret)).status == "revoked"


async def test_tenant_admin_cannot_see_or_touch_another_tenant(auth):
    await auth.bootstrap()
    platform = Identity("", "", ("platform_admin",))
    acme = await auth.create_tenant(platform, "acme")
    other = await auth.create_tenant(platform, "other")
    other_key = await auth.create_key(platform, "other", "k", [], [])
    acme_admin = Identity(acme.id, "key_x", ("tenant_admin",))
    with pytest.raises(NotFound):
        await auth.list_keys(acme_admin, other.id)
    with pytest.raises(NotFound):
        await auth.create_key(acme_admin, "other", "sneaky", [], [])
    with pytest.raises(NotFound):
        await auth.revoke_key(acme_admin, "other", other_key.key.id)
    with pytest.raises(NotFound):
        await auth.revoke_key(acme_admin, "acme", other_key.key.id)
    assert [t.name for t in await auth.list_tenants(acme_admin)] == ["acme"]


async def test_nobody_grants_roles_they_do_not_hold(auth):
    await auth.bootstrap()
    platform = Identity("", "", ("platform_admin",))
    acme = await auth.create_tenant(platform, "acme")
    developer = Identity(acme.id, "key_d", ("developer",))
    with pytest.raises(InvalidRequest):
        await auth.create_key(developer, "acme", "escalate", ["tenant_admin"], [])
    with pytest.raises(InvalidRequest):
        await auth.create_key(
            Identity(acme.id, "key_t", ("tenant_admin",)), "acme", "x", ["platform_admin"], []
        )
    with pytest.raises(InvalidRequest):
        await auth.create_key(platform, "acme", "x", ["root"], [])
