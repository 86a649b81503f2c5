"""Auth use cases: tenants, API keys, bootstrap, and key resolution for Check."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from lockgate.errors import AlreadyExists, InvalidRequest, NotFound
from lockgate.identity import Identity
from lockgate.ids import new_id
from services.auth.models import ApiKey, Tenant
from services.auth.principals import Principal, PrincipalCache
from services.auth.secrets import KeyHasher, new_secret, parse_prefix
from services.auth.store import AuthStore

ROLES = ("platform_admin", "tenant_admin", "team_admin", "developer", "viewer")
PLATFORM_ADMIN = "platform_admin"
DEFAULT_TENANT = "default"
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
MAX_KEY_NAME = 128
MAX_MODELS = 100
#: Model aliases a key may be scoped to: the gateway config's alias names (no
#: commas, so the scope travels as one x-lockgate-models header).
_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


@dataclass(frozen=True, slots=True)
class CreatedKey:
    key: ApiKey
    secret: str


class AuthService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        hasher: KeyHasher,
        cache: PrincipalCache,
    ):
        self.sessions = sessions
        self.hasher = hasher
        self.cache = cache

    # -- tenants ---------------------------------------------------------------

    async def create_tenant(self, caller: Identity | None, name: str) -> Tenant:
        self._require_platform_admin(caller)
        if not _NAME.match(name):
            raise InvalidRequest(
                "tenant name must be lower-case letters, digits and dashes", param="name"
            )
        tenant = Tenant(id=new_id("ten"), name=name, created_at=datetime.now(UTC))
        try:
            async with self.sessions() as session, session.begin():
                AuthStore(session).add(tenant)
        except IntegrityError:
            raise AlreadyExists(f"tenant {name!r} already exists", param="name") from None
        return tenant

    async def list_tenants(self, caller: Identity) -> list[Tenant]:
        async with self.sessions() as session:
            tenants = await AuthStore(session).list_tenants()
        if PLATFORM_ADMIN in caller.roles:
            return tenants
        return [t for t in tenants if t.id == caller.tenant_id]

    # -- keys ------------------------------------------------------------------

    async def create_key(
        self,
        caller: Identity | None,
        tenant_ref: str,
        name: str,
        roles: list[str],
        models: list[str],
    ) -> CreatedKey:
        """Create a key; the secret is returned once and never stored."""
        roles = roles or ["developer"]
        if not name or len(name) > MAX_KEY_NAME:
            raise InvalidRequest(f"key name must be 1-{MAX_KEY_NAME} characters", param="name")
        unknown = sorted(set(roles) - set(ROLES))
        if unknown:
            raise InvalidRequest(f"unknown roles {unknown}; valid: {list(ROLES)}", param="roles")
        if len(models) > MAX_MODELS or not all(_MODEL.match(m) for m in models):
            raise InvalidRequest(
                f"models: at most {MAX_MODELS} model aliases (letters, digits and ._:-)",
                param="models",
            )
        async with self.sessions() as session, session.begin():
            store = AuthStore(session)
            tenant = await self._visible_tenant(store, caller, tenant_ref)
            if caller is not None and PLATFORM_ADMIN not in caller.roles:
                # Nobody mints a key with more rights than they hold.
                above = sorted(set(roles) - set(caller.roles))
                if PLATFORM_ADMIN in roles or above:
                    raise InvalidRequest(
                        f"cannot grant roles you do not hold: {above}", param="roles"
                    )
            secret, prefix = new_secret()
            key = ApiKey(
                id=new_id("key"),
                tenant_id=tenant.id,
                name=name,
                prefix=prefix,
                secret_hash=self.hasher.hash(secret),
                roles=sorted(set(roles)),
                models=list(dict.fromkeys(models)),
                status="active",
                created_at=datetime.now(UTC),
            )
            store.add(key)
        return CreatedKey(key=key, secret=secret)

    async def list_keys(self, caller: Identity, tenant_ref: str) -> list[ApiKey]:
        async with self.sessions() as session:
            store = AuthStore(session)
            tenant = await self._visible_tenant(store, caller, tenant_ref)
            return await store.list_keys(tenant.id)

    async def revoke_key(self, caller: Identity, tenant_ref: str, key_id: str) -> ApiKey:
        async with self.sessions() as session, session.begin():
            store = AuthStore(session)
            tenant = await self._visible_tenant(store, caller, tenant_ref)
            key = await store.key(tenant.id, key_id)
            if key is None:
                raise NotFound(f"key {key_id!r} not found", param="key_id")
            if key.status != "revoked":
                key.status = "revoked"
                key.revoked_at = datetime.now(UTC)
                store.add(key)
        self.cache.drop_key(key.id)
        return key

    # -- bootstrap ---------------------------------------------------------------

    async def bootstrap(self) -> str | None:
        """First start: tenant `default` and a platform admin key (secret returned once)."""
        async with self.sessions() as session, session.begin():
            store = AuthStore(session)
            tenant = await store.tenant_by_name_or_id(DEFAULT_TENANT)
            if tenant is None:
                tenant = Tenant(id=new_id("ten"), name=DEFAULT_TENANT, created_at=datetime.now(UTC))
                store.add(tenant)
                await session.flush()
            elif await store.has_role_key(tenant.id, PLATFORM_ADMIN):
                return None
        created = await self.create_key(None, DEFAULT_TENANT, "admin", [PLATFORM_ADMIN], [])
        return created.secret

    # -- Check -----------------------------------------------------------------

    async def resolve(self, presented: str) -> Principal | None:
        """The principal behind a presented key, or None (unknown, malformed)."""
        prefix = parse_prefix(presented)
        if prefix is None:
            return None
        key_hash = self.hasher.hash(presented)

        async def load() -> Principal | None:
            async with self.sessions() as session:
                store = AuthStore(session)
                for row in await store.keys_with_prefix(prefix):
                    if self.hasher.verify(presented, row.secret_hash):
                        tenant = await store.tenant(row.tenant_id)
                        return Principal(
                            key_id=row.id,
                            tenant_id=row.tenant_id,
                            tenant_name=tenant.name if tenant else "",
                            roles=tuple(row.roles),
                            models=tuple(row.models),
                            status=row.status,
                        )
            return None

        return await self.cache.get(key_hash, load)

    # -- helpers -------------------------------------------------------------------

    @staticmethod
    def _require_platform_admin(caller: Identity | None) -> None:
        if caller is not None and PLATFORM_ADMIN not in caller.roles:
            raise NotFound("not found")

    @staticmethod
    async def _visible_tenant(store: AuthStore, caller: Identity | None, ref: str) -> Tenant:
        """The tenant, if the caller may see it; NotFound otherwise (ids never confirmed)."""
        tenant = await store.tenant_by_name_or_id(ref) if ref else None
        if tenant is None or (
            caller is not None
            and PLATFORM_ADMIN not in caller.roles
            and tenant.id != caller.tenant_id
        ):
            raise NotFound(f"tenant {ref!r} not found", param="tenant")
        return tenant
