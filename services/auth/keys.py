"""API key use cases: create, read, list, update, rotate, revoke.

A key belongs to a user or a service account and acts in one team (or
tenant-wide, for owners with a tenant-wide role). It never carries a role its
owner does not hold (checked here when it is granted, and again at every
resolution, so a demoted owner's keys lose the rights at once), and nobody
grants a key more than they hold themselves (the admin policy's grant rules).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from lockgate.errors import InvalidRequest, NotFound
from lockgate.identity import Identity
from lockgate.ids import new_id
from lockgate.pagination import encode_position, page_size
from lockgate.revisions import require_mask
from services.auth import roles as vocab
from services.auth.admin_policy import Grant, Resource
from services.auth.audit import change, digest
from services.auth.models import ApiKey, ServiceAccount, Tenant, User
from services.auth.secrets import KeyHasher, new_secret
from services.auth.store import AuthStore
from services.auth.usecase import Page, UseCases

KEY_FIELDS = ("name", "roles", "models", "scopes", "expire_time")
DEFAULT_OVERLAP = timedelta(days=1)
MAX_OVERLAP = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class CreatedKey:
    key: ApiKey
    secret: str


@dataclass(frozen=True, slots=True)
class Owner:
    kind: str
    obj: User | ServiceAccount
    #: {team id: roles} for users; {the account's team: roles} for service accounts.
    teams: dict[str, list[str]]

    @property
    def id(self) -> str:
        return self.obj.id

    def roles_in(self, team_id: str) -> list[str]:
        """What the owner holds when acting in team_id ("" = tenant-wide)."""
        if self.kind == "service_account":
            return list(self.obj.roles) if team_id == self.obj.team_id else []
        return sorted(set(self.obj.roles) | set(self.teams.get(team_id, [])))


def key_status(key: ApiKey, now: datetime | None = None) -> str:
    """active, revoked or expired (expiry is a matter of time, not a stored state)."""
    if key.status != "active":
        return key.status
    if key.expires_at is not None:
        expires = key.expires_at if key.expires_at.tzinfo else key.expires_at.replace(tzinfo=UTC)
        if expires <= (now or datetime.now(UTC)):
            return "expired"
    return "active"


def key_resource(key: ApiKey) -> Resource:
    return Resource("key", tenant_id=key.tenant_id, team_id=key.team_id, owner_id=key.owner_id,
                    roles=tuple(key.roles))


async def load_owner(store: AuthStore, tenant_id: str, kind: str, ref: str) -> Owner | None:
    if kind == "user":
        user = await store.user(tenant_id, ref)
        if user is None:
            return None
        teams = {m.team_id: m.roles for m in (await store.memberships([user.id]))[user.id]}
        return Owner("user", user, teams)
    account = await store.service_account(tenant_id, ref)
    if account is None:
        return None
    return Owner("service_account", account, {account.team_id: list(account.roles)})


def _owner_ref(ref: str) -> tuple[str, str]:
    kind, sep, name = ref.partition("/")
    kinds = {"users": "user", "service-accounts": "service_account",
             "service_accounts": "service_account"}
    if not sep or kind not in kinds or not name:
        raise InvalidRequest("owner must be users/<email or id> or service-accounts/<name or id>",
                             param="owner")
    return kinds[kind], name


def _aware(value: datetime | None) -> datetime | None:
    """Stored times come back naive on SQLite: they are UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _expiry(value: datetime | None, now: datetime) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if value <= now:
        raise InvalidRequest("expire_time must be in the future", param="expire_time")
    return value


class Keys(UseCases):
    def __init__(self, sessions, authorizer, hasher: KeyHasher, on_change=None):
        super().__init__(sessions, authorizer)
        self.hasher = hasher
        #: Called with a key id after a change that alters what it may do (this
        #: replica forgets it at once; others follow the change feed).
        self.on_change = on_change or (lambda key_id: None)

    async def create(
        self, caller: Identity | None, tenant_ref: str, name: str, roles: list[str],
        models: list[str], *, owner: str = "", team: str = "", scopes: list[str] | None = None,
        expire_time: datetime | None = None,
    ) -> CreatedKey:
        """Create a key; the secret is returned once and never stored."""
        name = vocab.check_key_name(name)
        models = vocab.check_models(list(models))
        scopes = vocab.check_scopes(list(scopes or []))
        requested = vocab.check_roles(list(roles))
        now = datetime.now(UTC)
        expires_at = _expiry(expire_time, now)
        async with self.sessions() as session, session.begin():
            store = AuthStore(session)
            tenant = await self.visible_tenant(store, caller, tenant_ref)
            holder = await self._owner(store, caller, tenant, owner)
            team_id = await self._team_of(store, tenant, holder, team)
            held = holder.roles_in(team_id)
            if not requested:
                requested = ["developer"] if vocab.rank(held) >= vocab.ROLE_RANK["developer"] \
                    else vocab.check_roles(held)
            above = sorted(set(requested) - set(vocab.within(requested, held)))
            if above:
                raise InvalidRequest(
                    f"the owner does not hold the roles {above} in this team", param="roles"
                )
            # The owner's own roles count as the target's: nobody mints a key for (and so
            # acts as) an owner who outranks them.
            allowed = await self.authorize(
                caller, "keys.create",
                Resource("key", tenant_id=tenant.id, team_id=team_id, owner_id=holder.id,
                         roles=tuple(held)),
                Grant(roles=tuple(requested), scopes=tuple(scopes), models=tuple(models)),
            )
            key, secret = self.mint(tenant.id, team_id, holder.kind, holder.id, name, requested,
                                    models, scopes, expires_at)
            store.add(key)
            self.audit(store, caller, allowed, "keys.create", tenant.id, "key", key.id, "", key)
        return CreatedKey(key=key, secret=secret)

    def mint(self, tenant_id: str, team_id: str, owner_kind: str, owner_id: str, name: str,
             roles: list[str], models: list[str], scopes: list[str],
             expires_at: datetime | None) -> tuple[ApiKey, str]:
        """A new key row and its secret (shown once; only its keyed hash is stored)."""
        now = datetime.now(UTC)
        secret, prefix = new_secret()
        key = ApiKey(
            id=new_id("key"), tenant_id=tenant_id, team_id=team_id, owner_kind=owner_kind,
            owner_id=owner_id, name=name, prefix=prefix, secret_hash=self.hasher.hash(secret),
            roles=roles, models=models, scopes=scopes, status="active", created_at=now,
            updated_at=now, expires_at=expires_at,
        )
        return key, secret

    async def _owner(self, store: AuthStore, caller: Identity | None, tenant: Tenant, ref: str
                     ) -> Owner:
        if ref:
            kind, name = _owner_ref(ref)
        elif caller is not None and caller.principal_id and caller.tenant_id == tenant.id:
            kind, name = caller.principal_kind, caller.principal_id
        else:
            raise InvalidRequest(
                "owner is required: users/<email or id> or service-accounts/<name or id>",
                param="owner",
            )
        holder = await load_owner(store, tenant.id, kind, name)
        if holder is None:
            raise InvalidRequest("owner not found in this tenant", param="owner")
        if holder.obj.status != "active":
            raise InvalidRequest("the owner is disabled", param="owner")
        return holder

    @staticmethod
    async def _team_of(store: AuthStore, tenant: Tenant, holder: Owner, ref: str) -> str:
        if ref:
            team = await store.team(tenant.id, ref)
            if team is None:
                raise InvalidRequest("team not found", param="team")
            if holder.kind == "service_account" and team.id != holder.obj.team_id:
                raise InvalidRequest("a service account's keys act in its own team", param="team")
            if holder.kind == "user" and team.id not in holder.teams and not (
                set(holder.obj.roles) & vocab.TENANT_WIDE
            ):
                raise InvalidRequest("the owner is not a member of this team", param="team")
            return team.id
        if holder.kind == "service_account":
            return holder.obj.team_id
        if len(holder.teams) == 1:
            return next(iter(holder.teams))
        if set(holder.obj.roles) & vocab.TENANT_WIDE:
            return ""
        raise InvalidRequest("team is required: the owner is a member of "
                             f"{len(holder.teams)} teams", param="team")

    async def _key(self, store: AuthStore, caller, tenant: Tenant, key_id: str, action: str,
                   grant: Grant | None = None):
        key = await store.key(tenant.id, key_id) if key_id else None
        if key is None:
            raise NotFound("key not found", param="key_id")
        # The policy answers 404 when the caller may not read the key, 403 when
        # they may read but not act: ids are never confirmed.
        return key, await self.authorize(caller, action, key_resource(key), grant)

    async def get(self, caller: Identity | None, tenant_ref: str, key_id: str) -> ApiKey:
        async with self.sessions() as session:
            store = AuthStore(session)
            tenant = await self.visible_tenant(store, caller, tenant_ref)
            key, _ = await self._key(store, caller, tenant, key_id, "keys.get")
            return key

    async def list(
        self, caller: Identity | None, tenant_ref: str, size: int = 0, token: str = "", *,
        team: str = "", owner: str = "", status: str = "",
    ) -> Page:
        size = page_size(size)
        if status not in ("", "active", "revoked", "expired"):
            raise InvalidRequest("status must be active, revoked or expired", param="status")
        async with self.sessions() as session:
            store = AuthStore(session)
            tenant = await self.visible_tenant(store, caller, tenant_ref)
            allowed = await self.authorize(caller, "keys.list", Resource("key", tenant_id=tenant.id))
            team_id = owner_id = ""
            if team:
                found = await store.team(tenant.id, team)
                team_id = found.id if found else "-"
            if owner:
                kind, ref = _owner_ref(owner)
                holder = await load_owner(store, tenant.id, kind, ref)
                owner_id = holder.id if holder else "-"
            if allowed.scope == "team":
                mine = caller.team_id if caller and caller.team_id else "-"
                team_id = mine if team_id in ("", mine) else "-"
            elif allowed.scope == "self":
                mine = caller.principal_id if caller and caller.principal_id else "-"
                owner_id = mine if owner_id in ("", mine) else "-"
            rows = await store.list_keys(tenant.id, size, token, team_id=team_id,
                                         owner_id=owner_id, status=status, now=datetime.now(UTC))
        if len(rows) > size:
            rows = rows[:size]
            return Page(rows, encode_position(rows[-1].id, rows[-1].id))
        return Page(rows, "")

    async def update(self, caller: Identity | None, tenant_ref: str, key_id: str,
                     changes: dict[str, Any], etag: str = "") -> ApiKey:
        require_mask(list(changes), KEY_FIELDS)
        async with self.sessions() as session, session.begin():
            store = AuthStore(session)
            tenant = await self.visible_tenant(store, caller, tenant_ref)
            current = await store.key(tenant.id, key_id) if key_id else None
            if current is None:
                raise NotFound("key not found", param="key_id")
            roles = (vocab.check_roles(list(changes["roles"])) if "roles" in changes
                     else list(current.roles))
            models = (vocab.check_models(list(changes["models"])) if "models" in changes
                      else list(current.models))
            scopes = (vocab.check_scopes(list(changes["scopes"])) if "scopes" in changes
                      else list(current.scopes))
            gives = {"roles", "models", "scopes"} & set(changes)
            grant = Grant(tuple(roles), tuple(scopes), tuple(models)) if gives else None
            key, allowed = await self._key(store, caller, tenant, key_id, "keys.update", grant)
            self.check_etag(key, etag)
            if key_status(key) != "active":
                raise InvalidRequest(f"the key is {key_status(key)}; only active keys change",
                                     param="key_id")
            if "roles" in changes:
                holder = await load_owner(store, tenant.id, key.owner_kind, key.owner_id)
                held = holder.roles_in(key.team_id) if holder else []
                above = sorted(set(roles) - set(vocab.within(roles, held)))
                if above or not roles:
                    raise InvalidRequest(
                        f"the owner does not hold the roles {above} in this team" if above
                        else "a key needs at least one role", param="roles",
                    )
            before = digest(key)
            if "name" in changes:
                key.name = vocab.check_key_name(changes["name"])
            if "expire_time" in changes:
                expires = _expiry(changes["expire_time"], datetime.now(UTC))
                current_end = _aware(key.expires_at)
                if key.replaced_by and current_end is not None and (
                    expires is None or expires > current_end
                ):
                    raise InvalidRequest("a rotated key's overlap can only be shortened",
                                         param="expire_time")
                key.expires_at = expires
            key.roles, key.models, key.scopes = roles, models, scopes
            self.touch(key)
            store.add(key, change("key", key.id))
            self.audit(store, caller, allowed, "keys.update", tenant.id, "key", key.id, before,
                       key)
        self.on_change(key.id)
        return key

    async def rotate(self, caller: Identity | None, tenant_ref: str, key_id: str,
                     overlap: timedelta | None = None) -> tuple[CreatedKey, ApiKey]:
        """A successor with the same rights; the old key works for `overlap`, then expires."""
        overlap = DEFAULT_OVERLAP if overlap is None else overlap
        if overlap < timedelta(0) or overlap > MAX_OVERLAP:
            raise InvalidRequest("overlap_seconds must be between 0 and 2592000 (30 days)",
                                 param="overlap_seconds")
        now = datetime.now(UTC)
        async with self.sessions() as session, session.begin():
            store = AuthStore(session)
            tenant = await self.visible_tenant(store, caller, tenant_ref)
            current = await store.key(tenant.id, key_id) if key_id else None
            grant = (Grant(tuple(current.roles), tuple(current.scopes), tuple(current.models))
                     if current else None)
            old, allowed = await self._key(store, caller, tenant, key_id, "keys.rotate", grant)
            if key_status(old, now) != "active":
                raise InvalidRequest(f"the key is {key_status(old, now)}; only active keys rotate",
                                     param="key_id")
            new, secret = self.mint(old.tenant_id, old.team_id, old.owner_kind, old.owner_id,
                                    old.name, list(old.roles), list(old.models),
                                    list(old.scopes), old.expires_at)
            before = digest(old)
            end = now + overlap
            old_expiry = _aware(old.expires_at)
            old.expires_at = end if old_expiry is None or old_expiry > end else old_expiry
            old.replaced_by = new.id
            self.touch(old)
            store.add(new, old, change("key", old.id))
            self.audit(store, caller, allowed, "keys.rotate", tenant.id, "key", old.id, before,
                       old)
            self.audit(store, caller, allowed, "keys.create", tenant.id, "key", new.id, "", new)
        self.on_change(old.id)
        return CreatedKey(new, secret), old

    async def revoke(self, caller: Identity | None, tenant_ref: str, key_id: str) -> ApiKey:
        async with self.sessions() as session, session.begin():
            store = AuthStore(session)
            tenant = await self.visible_tenant(store, caller, tenant_ref)
            key, allowed = await self._key(store, caller, tenant, key_id, "keys.revoke")
            if key.status != "revoked":
                before = digest(key)
                key.status = "revoked"
                key.revoked_at = datetime.now(UTC)
                self.touch(key)
                store.add(key, change("key", key.id))
                self.audit(store, caller, allowed, "keys.revoke", tenant.id, "key", key.id,
                           before, key)
        self.on_change(key.id)
        return key
