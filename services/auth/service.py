"""Auth: the use cases behind the admin API (tenancy, keys, audit), first-start
bootstrap, and credential resolution for Check."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from lockgate.identity import Identity
from lockgate.ids import new_id
from lockgate.pagination import decode_cursor, encode_cursor, page_size
from lockgate.policy import Evaluator
from services.auth.admin_policy import AdminAuthorizer, Resource
from services.auth.audit import audit_event, digest
from services.auth.jwt_tokens import InvalidToken, VerifiedToken
from services.auth.keys import CreatedKey, Keys, key_status, load_owner
from services.auth.models import ApiKey, ServiceAccount, Team, Tenant
from services.auth.principals import Principal, PrincipalCache
from services.auth.roles import PLATFORM_ADMIN, ROLES, TENANT_WIDE, within
from services.auth.secrets import KeyHasher, parse_prefix
from services.auth.store import AuthStore
from services.auth.tenancy import Tenancy
from services.auth.usecase import Page

__all__ = ["AuthService", "CreatedKey", "ROLES"]

DEFAULT_TENANT = "default"
PLATFORM_TEAM = "platform"
ADMIN_ACCOUNT = "admin"
#: pg_advisory_xact_lock key held while bootstrapping (any constant unique to it).
BOOTSTRAP_LOCK = 0x10C6A7E


class AuthService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        hasher: KeyHasher,
        cache: PrincipalCache,
        policy: Evaluator | None = None,
        authorizer: AdminAuthorizer | None = None,
    ):
        self.sessions = sessions
        self.hasher = hasher
        self.cache = cache
        if authorizer is None:
            from lockgate.policy import PolicyEngine

            authorizer = AdminAuthorizer(policy if policy is not None else PolicyEngine())
        self.authorizer = authorizer
        self.tenancy = Tenancy(sessions, authorizer,
                               on_owner_change=lambda owner_id: cache.drop(owner_ids={owner_id}))
        self.keys = Keys(sessions, authorizer, hasher, on_change=cache.drop_key)

    # -- shortcuts for the tests and the bench (the admin API goes through .tenancy, .keys)

    async def create_tenant(self, caller: Identity | None, name: str) -> Tenant:
        return await self.tenancy.create_tenant(caller, name)

    async def create_key(self, caller: Identity | None, tenant_ref: str, name: str,
                         roles: list[str], models: list[str], **options) -> CreatedKey:
        return await self.keys.create(caller, tenant_ref, name, roles, models, **options)

    async def revoke_key(self, caller: Identity | None, tenant_ref: str, key_id: str) -> ApiKey:
        return await self.keys.revoke(caller, tenant_ref, key_id)

    # -- audit -------------------------------------------------------------------------

    async def list_audit_events(self, caller: Identity | None, tenant_ref: str, size: int = 0,
                                token: str = "", object_id: str = "", action: str = "") -> Page:
        size = page_size(size)
        before = decode_cursor(token)
        async with self.sessions() as session:
            store = AuthStore(session)
            tenant = await self.tenancy.visible_tenant(store, caller, tenant_ref)
            await self.authorizer.authorize(caller, "audit.list",
                                      Resource("audit", tenant_id=tenant.id))
            rows = await store.list_audit_events(tenant.id, size, before, object_id=object_id,
                                                 action=action)
        if len(rows) > size:
            rows = rows[:size]
            return Page(rows, encode_cursor(rows[-1].seq or 0))
        return Page(rows, "")

    # -- bootstrap -----------------------------------------------------------------------

    async def bootstrap(self) -> str | None:
        """First start: tenant `default`, team `platform`, service account `admin`
        (platform_admin) and its key; the secret is returned once.

        One transaction, so replicas starting together on a fresh database make one
        admin key: PostgreSQL serializes them on an advisory lock; on SQLite the
        loser of the write race retries and then finds the key.
        """
        for attempt in range(5):
            try:
                return await self._bootstrap_once()
            except (IntegrityError, OperationalError):
                if attempt == 4:
                    raise
                await asyncio.sleep(0.1 * (attempt + 1))
        return None

    async def _bootstrap_once(self) -> str | None:
        now = datetime.now(UTC)
        async with self.sessions() as session, session.begin():
            if session.bind.dialect.name == "postgresql":
                await session.exec(text("SELECT pg_advisory_xact_lock(:lock)"),
                                   params={"lock": BOOTSTRAP_LOCK})
            store = AuthStore(session)
            tenant = await store.tenant_by_name_or_id(DEFAULT_TENANT)
            if tenant is None:
                tenant = Tenant(id=new_id("ten"), name=DEFAULT_TENANT,
                                display_name="Default tenant", created_at=now, updated_at=now)
                store.add(tenant)
                await store.flush()
            elif await store.has_role_key(tenant.id, PLATFORM_ADMIN):
                return None
            team = await store.team(tenant.id, PLATFORM_TEAM)
            if team is None:
                team = Team(id=new_id("team"), tenant_id=tenant.id, name=PLATFORM_TEAM,
                            display_name="Platform operators", created_at=now, updated_at=now)
                store.add(team)
                await store.flush()
            account = await store.service_account(tenant.id, ADMIN_ACCOUNT)
            if account is None:
                account = ServiceAccount(
                    id=new_id("sa"), tenant_id=tenant.id, team_id=team.id, name=ADMIN_ACCOUNT,
                    display_name="Gateway administrator", roles=[PLATFORM_ADMIN],
                    status="active", created_at=now, updated_at=now,
                )
                store.add(account)
                await store.flush()
            key, secret = self.keys.mint(tenant.id, team.id, "service_account", account.id,
                                         "admin", [PLATFORM_ADMIN], [], [], None)
            store.add(key, audit_event(None, "keys.create", tenant.id, "key", key.id, "",
                                       digest(key), ""))
        return secret

    # -- Check -------------------------------------------------------------------------

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
                        return await self._principal_of(store, row)
            return None

        return await self.cache.get(key_hash, load)

    async def resolve_token(self, token: VerifiedToken, team_ref: str = "") -> Principal:
        """The principal of a verified user JWT acting in team_ref (name or id; default:
        the user's only team, else tenant-wide). InvalidToken when no user matches."""
        # Everything the principal depends on (the expiry included), not the token itself.
        identity = f"{token.issuer}\0{token.subject}\0{token.email}\0{token.expires_at}\0{team_ref}"
        cache_key = "jwt:" + hashlib.sha256(identity.encode()).hexdigest()

        async def load() -> Principal | None:
            async with self.sessions() as session:
                return await self._user_principal(AuthStore(session), token, team_ref)

        principal = await self.cache.get(cache_key, load)
        if principal is None:
            raise InvalidToken("no Lockgate user matches this token, or not in that team")
        return principal

    @staticmethod
    async def _user_principal(store: AuthStore, token: VerifiedToken, team_ref: str
                              ) -> Principal | None:
        user = await store.user_by_email(token.email)
        if user is None:
            return None
        holder = await load_owner(store, user.tenant_id, "user", user.id)
        assert holder is not None
        tenant_wide = bool(set(user.roles) & TENANT_WIDE)
        if team_ref:
            team = await store.team(user.tenant_id, team_ref)
            if team is None or (team.id not in holder.teams and not tenant_wide):
                return None
            team_id = team.id
        elif len(holder.teams) == 1 and not tenant_wide:
            team_id = next(iter(holder.teams))
        else:
            team_id = ""
        tenant = await store.tenant(user.tenant_id)
        return Principal(
            key_id="",
            tenant_id=user.tenant_id,
            tenant_name=tenant.name if tenant else "",
            roles=tuple(r for r in ROLES if r in holder.roles_in(team_id)),
            models=(),
            status="active" if user.status == "active" else "disabled",
            team_id=team_id,
            owner_kind="user",
            owner_id=user.id,
            expires_at=token.expires_at.timestamp(),
        )

    @staticmethod
    async def _principal_of(store: AuthStore, key: ApiKey) -> Principal:
        tenant = await store.tenant(key.tenant_id)
        holder = await load_owner(store, key.tenant_id, key.owner_kind, key.owner_id)
        status = key_status(key)
        if status == "expired":
            status = "active"  # expiry is judged at use time: Principal.effective_status
        if holder is None or holder.obj.status != "active":
            status = "disabled" if status == "active" else status
        held = holder.roles_in(key.team_id) if holder else []
        expires = key.expires_at
        if expires is not None and expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        return Principal(
            key_id=key.id,
            tenant_id=key.tenant_id,
            tenant_name=tenant.name if tenant else "",
            roles=tuple(within(key.roles, held)),
            models=tuple(key.models),
            status=status,
            team_id=key.team_id,
            owner_kind=key.owner_kind,
            owner_id=key.owner_id,
            scopes=tuple(key.scopes),
            expires_at=expires.timestamp() if expires else None,
        )
