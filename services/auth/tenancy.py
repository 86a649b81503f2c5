"""Tenancy use cases: tenants, teams, users and service accounts.

Each call asks the admin policy first (services/auth/admin_policy.py), runs
in one transaction, and writes its audit event (and, when it can change what
a credential may do, a change-feed row) in that same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from lockgate.errors import AlreadyExists, FailedPrecondition, InvalidRequest, NotFound
from lockgate.identity import Identity
from lockgate.ids import new_id
from lockgate.pagination import encode_position, page_size
from lockgate.revisions import require_mask
from services.auth import roles as vocab
from services.auth.admin_policy import Grant, Resource
from services.auth.audit import change, digest
from services.auth.models import ServiceAccount, Team, Tenant, User
from services.auth.store import AuthStore
from services.auth.usecase import Page, UseCases

TENANT_FIELDS = ("display_name",)
TEAM_FIELDS = ("display_name",)
USER_FIELDS = ("display_name", "roles", "memberships", "status")
SERVICE_ACCOUNT_FIELDS = ("display_name", "roles", "status")


@dataclass(frozen=True, slots=True)
class UserView:
    """A user with their team memberships ({team id: roles})."""

    user: User
    memberships: dict[str, list[str]]


def _page(rows: list, size: int, sort_key) -> Page:
    if len(rows) > size:
        rows = rows[:size]
        return Page(rows, encode_position(sort_key(rows[-1]), rows[-1].id))
    return Page(rows, "")


class Tenancy(UseCases):
    def __init__(self, sessions, authorizer, on_owner_change=None):
        super().__init__(sessions, authorizer)
        #: Called with a user or service account id after a change that alters what its
        #: keys may do (this replica forgets them at once; others follow the change feed).
        self.on_owner_change = on_owner_change or (lambda owner_id: None)

    # -- tenants -----------------------------------------------------------------------

    async def create_tenant(self, caller: Identity | None, name: str, display_name: str = ""
                            ) -> Tenant:
        vocab.check_name(name, "tenant")
        display_name = vocab.check_display_name(display_name)
        allowed = await self.authorize(caller, "tenants.create", Resource("tenant"))
        now = datetime.now(UTC)
        tenant = Tenant(id=new_id("ten"), name=name, display_name=display_name, created_at=now,
                        updated_at=now)
        try:
            async with self.sessions() as session, session.begin():
                store = AuthStore(session)
                store.add(tenant)
                self.audit(store, caller, allowed, "tenants.create", tenant.id, "tenant",
                           tenant.id, "", tenant)
        except IntegrityError:
            raise AlreadyExists(f"tenant {name!r} already exists", param="name") from None
        return tenant

    async def get_tenant(self, caller: Identity | None, ref: str) -> Tenant:
        async with self.sessions() as session:
            return await self.visible_tenant(AuthStore(session), caller, ref)

    async def list_tenants(self, caller: Identity | None, size: int = 0, token: str = "",
                           name_prefix: str = "") -> Page:
        size = page_size(size)
        home = caller.tenant_id if caller else ""
        allowed = await self.authorize(caller, "tenants.list", Resource("tenant", tenant_id=home))
        only = None if allowed.scope == "all" else home
        async with self.sessions() as session:
            rows = await AuthStore(session).list_tenants(size, token, name_prefix, only)
        return _page(rows, size, lambda t: t.name)

    async def update_tenant(self, caller: Identity | None, ref: str, changes: dict[str, Any],
                            etag: str = "") -> Tenant:
        require_mask(list(changes), TENANT_FIELDS)
        async with self.sessions() as session, session.begin():
            store = AuthStore(session)
            tenant = await self.visible_tenant(store, caller, ref)
            allowed = await self.authorize(caller, "tenants.update",
                                     Resource("tenant", tenant_id=tenant.id))
            self.check_etag(tenant, etag)
            before = digest(tenant)
            if "display_name" in changes:
                tenant.display_name = vocab.check_display_name(changes["display_name"])
            self.touch(tenant)
            store.add(tenant)
            self.audit(store, caller, allowed, "tenants.update", tenant.id, "tenant", tenant.id,
                       before, tenant)
        return tenant

    # -- teams -------------------------------------------------------------------------

    async def create_team(self, caller: Identity | None, tenant_ref: str, name: str,
                          display_name: str = "") -> Team:
        vocab.check_name(name, "team")
        display_name = vocab.check_display_name(display_name)
        try:
            async with self.sessions() as session, session.begin():
                store = AuthStore(session)
                tenant = await self.visible_tenant(store, caller, tenant_ref)
                allowed = await self.authorize(caller, "teams.create",
                                         Resource("team", tenant_id=tenant.id))
                now = datetime.now(UTC)
                team = Team(id=new_id("team"), tenant_id=tenant.id, name=name,
                            display_name=display_name, created_at=now, updated_at=now)
                store.add(team)
                await store.flush()
                self.audit(store, caller, allowed, "teams.create", tenant.id, "team", team.id,
                           "", team)
        except IntegrityError:
            raise AlreadyExists(f"team {name!r} already exists", param="name") from None
        return team

    async def _team(self, store: AuthStore, caller, tenant: Tenant, ref: str, action: str):
        team = await store.team(tenant.id, ref) if ref else None
        if team is None:
            raise NotFound("team not found", param="team")
        allowed = await self.authorize(caller, action,
                                 Resource("team", tenant_id=tenant.id, team_id=team.id))
        return team, allowed

    async def get_team(self, caller: Identity | None, tenant_ref: str, ref: str) -> Team:
        async with self.sessions() as session:
            store = AuthStore(session)
            tenant = await self.visible_tenant(store, caller, tenant_ref)
            team, _ = await self._team(store, caller, tenant, ref, "teams.get")
            return team

    async def list_teams(self, caller: Identity | None, tenant_ref: str, size: int = 0,
                         token: str = "", name_prefix: str = "") -> Page:
        size = page_size(size)
        async with self.sessions() as session:
            store = AuthStore(session)
            tenant = await self.visible_tenant(store, caller, tenant_ref)
            allowed = await self.authorize(caller, "teams.list", Resource("team", tenant_id=tenant.id))
            only = None
            if allowed.scope in ("team", "self"):
                only = caller.team_id if caller and caller.team_id else "-"
            rows = await store.list_teams(tenant.id, size, token, name_prefix, only)
        return _page(rows, size, lambda t: t.name)

    async def update_team(self, caller: Identity | None, tenant_ref: str, ref: str,
                          changes: dict[str, Any], etag: str = "") -> Team:
        require_mask(list(changes), TEAM_FIELDS)
        async with self.sessions() as session, session.begin():
            store = AuthStore(session)
            tenant = await self.visible_tenant(store, caller, tenant_ref)
            team, allowed = await self._team(store, caller, tenant, ref, "teams.update")
            self.check_etag(team, etag)
            before = digest(team)
            if "display_name" in changes:
                team.display_name = vocab.check_display_name(changes["display_name"])
            self.touch(team)
            store.add(team)
            self.audit(store, caller, allowed, "teams.update", tenant.id, "team", team.id,
                       before, team)
        return team

    async def delete_team(self, caller: Identity | None, tenant_ref: str, ref: str,
                          etag: str = "") -> None:
        async with self.sessions() as session, session.begin():
            store = AuthStore(session)
            tenant = await self.visible_tenant(store, caller, tenant_ref)
            team, allowed = await self._team(store, caller, tenant, ref, "teams.delete")
            self.check_etag(team, etag)
            if not await store.team_is_empty(team.id):
                raise FailedPrecondition(
                    f"team {team.name!r} still has members, service accounts or active keys; "
                    "remove them first", param="team",
                )
            before = digest(team)
            await store.delete(team)
            self.audit(store, caller, allowed, "teams.delete", tenant.id, "team", team.id,
                       before, None)

    # -- users -------------------------------------------------------------------------

    async def _memberships(self, store: AuthStore, tenant: Tenant,
                           requested: list[tuple[str, list[str]]]) -> dict[str, list[str]]:
        """{team id: roles} from (team name or id, roles) pairs, validated."""
        found: dict[str, list[str]] = {}
        for ref, team_roles in requested:
            team = await store.team(tenant.id, ref) if ref else None
            if team is None:
                raise InvalidRequest(f"memberships: team {vocab.clip(ref)!r} not found",
                                     param="memberships")
            if team.id in found:
                raise InvalidRequest(f"memberships: team {ref!r} is listed twice",
                                     param="memberships")
            found[team.id] = vocab.check_roles(team_roles, "memberships", vocab.TEAM_ROLES)
            if not found[team.id]:
                raise InvalidRequest(f"memberships: give the roles in team {ref!r}",
                                     param="memberships")
        return found

    @staticmethod
    def _user_rights(user_roles: list[str], memberships: dict[str, list[str]]) -> tuple[str, ...]:
        every = set(user_roles)
        for team_roles in memberships.values():
            every.update(team_roles)
        return tuple(sorted(every))

    async def create_user(
        self, caller: Identity | None, tenant_ref: str, email: str, display_name: str = "",
        roles: list[str] | None = None, memberships: list[tuple[str, list[str]]] | None = None,
    ) -> UserView:
        email = vocab.check_email(email)
        display_name = vocab.check_display_name(display_name)
        user_roles = vocab.check_roles(list(roles or []))
        try:
            async with self.sessions() as session, session.begin():
                store = AuthStore(session)
                tenant = await self.visible_tenant(store, caller, tenant_ref)
                teams = await self._memberships(store, tenant, list(memberships or []))
                grant = Grant(roles=self._user_rights(user_roles, teams))
                allowed = await self.authorize(caller, "users.create",
                                         Resource("user", tenant_id=tenant.id), grant)
                now = datetime.now(UTC)
                user = User(id=new_id("usr"), tenant_id=tenant.id, email=email,
                            display_name=display_name, roles=user_roles, status="active",
                            created_at=now, updated_at=now)
                store.add(user)
                await store.flush()
                await store.replace_memberships(user, teams)
                self.audit(store, caller, allowed, "users.create", tenant.id, "user", user.id, "",
                           {**user.model_dump(), "memberships": teams})
        except IntegrityError:
            raise AlreadyExists("a user with this email already exists", param="email") from None
        return UserView(user, teams)

    @staticmethod
    async def _load_user(store: AuthStore, tenant: Tenant, ref: str
                         ) -> tuple[User, dict[str, list[str]]]:
        user = await store.user(tenant.id, ref) if ref else None
        if user is None:
            raise NotFound("user not found", param="user")
        return user, {m.team_id: m.roles for m in (await store.memberships([user.id]))[user.id]}

    async def _user(self, store: AuthStore, caller, tenant: Tenant, ref: str, action: str,
                    grant: Grant | None = None):
        user, teams = await self._load_user(store, tenant, ref)
        resource = Resource("user", tenant_id=tenant.id, owner_id=user.id,
                            roles=self._user_rights(user.roles, teams))
        allowed = await self.authorize(caller, action, resource, grant)
        return user, teams, allowed

    async def get_user(self, caller: Identity | None, tenant_ref: str, ref: str) -> UserView:
        async with self.sessions() as session:
            store = AuthStore(session)
            tenant = await self.visible_tenant(store, caller, tenant_ref)
            user, teams, _ = await self._user(store, caller, tenant, ref, "users.get")
            return UserView(user, teams)

    async def list_users(self, caller: Identity | None, tenant_ref: str, size: int = 0,
                         token: str = "", team_ref: str = "", email_prefix: str = "") -> Page:
        size = page_size(size)
        async with self.sessions() as session:
            store = AuthStore(session)
            tenant = await self.visible_tenant(store, caller, tenant_ref)
            allowed = await self.authorize(caller, "users.list", Resource("user", tenant_id=tenant.id))
            team_id = ""
            if team_ref:
                team = await store.team(tenant.id, team_ref)
                team_id = team.id if team is not None else "-"
            only = None
            if allowed.scope == "team":
                team_id = caller.team_id if caller and caller.team_id else "-"
            elif allowed.scope == "self":
                only = caller.principal_id if caller and caller.principal_id else "-"
            rows = await store.list_users(tenant.id, size, token, team_id=team_id,
                                          email_prefix=email_prefix, only_id=only)
            page = _page(rows, size, lambda u: u.email)
            teams = await store.memberships([u.id for u in page.items])
        views = [UserView(u, {m.team_id: m.roles for m in teams[u.id]}) for u in page.items]
        return Page(views, page.next_page_token)

    async def update_user(self, caller: Identity | None, tenant_ref: str, ref: str,
                          changes: dict[str, Any], etag: str = "") -> UserView:
        require_mask(list(changes), USER_FIELDS)
        new_roles = vocab.check_roles(list(changes["roles"])) if "roles" in changes else None
        async with self.sessions() as session, session.begin():
            store = AuthStore(session)
            tenant = await self.visible_tenant(store, caller, tenant_ref)
            new_teams = (await self._memberships(store, tenant, list(changes["memberships"]))
                         if "memberships" in changes else None)
            user, teams = await self._load_user(store, tenant, ref)
            grant = None
            if new_roles is not None or new_teams is not None:
                grant = Grant(roles=self._user_rights(
                    new_roles if new_roles is not None else user.roles,
                    new_teams if new_teams is not None else teams,
                ))
            _, _, allowed = await self._user(store, caller, tenant, user.id, "users.update", grant)
            self.check_etag(user, etag)
            before = digest({**user.model_dump(), "memberships": teams})
            if "display_name" in changes:
                user.display_name = vocab.check_display_name(changes["display_name"])
            if "status" in changes:
                user.status = vocab.check_status(changes["status"])
            if new_roles is not None:
                user.roles = new_roles
            if new_teams is not None:
                await store.replace_memberships(user, new_teams)
                teams = new_teams
            self.touch(user)
            store.add(user, change("owner", user.id))
            self.audit(store, caller, allowed, "users.update", tenant.id, "user", user.id, before,
                       {**user.model_dump(), "memberships": teams})
        self.on_owner_change(user.id)
        return UserView(user, teams)

    async def delete_user(self, caller: Identity | None, tenant_ref: str, ref: str,
                          etag: str = "") -> None:
        async with self.sessions() as session, session.begin():
            store = AuthStore(session)
            tenant = await self.visible_tenant(store, caller, tenant_ref)
            user, teams, allowed = await self._user(store, caller, tenant, ref, "users.delete")
            self.check_etag(user, etag)
            before = digest({**user.model_dump(), "memberships": teams})
            self._revoke_keys_of(store, caller, allowed, tenant.id,
                                 await store.keys_of_owner(user.id))
            await store.replace_memberships(user, {})
            await store.flush()
            await store.delete(user)
            store.add(change("owner", user.id))
            self.audit(store, caller, allowed, "users.delete", tenant.id, "user", user.id, before,
                       None)
        self.on_owner_change(user.id)

    def _revoke_keys_of(self, store: AuthStore, caller: Identity | None, allowed,
                        tenant_id: str, keys: list) -> None:
        """Revoke an owner's keys, each with its own audit event (same decision)."""
        now = datetime.now(UTC)
        for key in keys:
            before = digest(key)
            key.status, key.revoked_at, key.updated_at = "revoked", now, now
            key.revision += 1
            store.add(key)
            self.audit(store, caller, allowed, "keys.revoke", tenant_id, "key", key.id, before,
                       key)

    # -- service accounts ----------------------------------------------------------------

    async def create_service_account(
        self, caller: Identity | None, tenant_ref: str, team_ref: str, name: str,
        display_name: str = "", roles: list[str] | None = None,
    ) -> ServiceAccount:
        vocab.check_name(name, "service account")
        display_name = vocab.check_display_name(display_name)
        account_roles = vocab.check_roles(list(roles or ["developer"]))
        try:
            async with self.sessions() as session, session.begin():
                store = AuthStore(session)
                tenant = await self.visible_tenant(store, caller, tenant_ref)
                team = await store.team(tenant.id, team_ref) if team_ref else None
                if team is None:
                    raise InvalidRequest("team not found: give the team the service account "
                                         "belongs to", param="team")
                allowed = await self.authorize(
                    caller, "service_accounts.create",
                    Resource("service_account", tenant_id=tenant.id, team_id=team.id),
                    Grant(roles=tuple(account_roles)),
                )
                now = datetime.now(UTC)
                account = ServiceAccount(
                    id=new_id("sa"), tenant_id=tenant.id, team_id=team.id, name=name,
                    display_name=display_name, roles=account_roles, status="active",
                    created_at=now, updated_at=now,
                )
                store.add(account)
                await store.flush()
                self.audit(store, caller, allowed, "service_accounts.create", tenant.id,
                           "service_account", account.id, "", account)
        except IntegrityError:
            raise AlreadyExists(f"service account {name!r} already exists", param="name") from None
        return account

    async def _service_account(self, store: AuthStore, caller, tenant: Tenant, ref: str,
                               action: str, grant: Grant | None = None):
        account = await store.service_account(tenant.id, ref) if ref else None
        if account is None:
            raise NotFound("service account not found", param="service_account")
        resource = Resource("service_account", tenant_id=tenant.id, team_id=account.team_id,
                            owner_id=account.id, roles=tuple(account.roles))
        return account, await self.authorize(caller, action, resource, grant)

    async def get_service_account(self, caller: Identity | None, tenant_ref: str, ref: str
                                  ) -> ServiceAccount:
        async with self.sessions() as session:
            store = AuthStore(session)
            tenant = await self.visible_tenant(store, caller, tenant_ref)
            account, _ = await self._service_account(store, caller, tenant, ref,
                                                      "service_accounts.get")
            return account

    async def list_service_accounts(self, caller: Identity | None, tenant_ref: str, size: int = 0,
                                    token: str = "", team_ref: str = "") -> Page:
        size = page_size(size)
        async with self.sessions() as session:
            store = AuthStore(session)
            tenant = await self.visible_tenant(store, caller, tenant_ref)
            allowed = await self.authorize(caller, "service_accounts.list",
                                     Resource("service_account", tenant_id=tenant.id))
            team_id = ""
            if team_ref:
                team = await store.team(tenant.id, team_ref)
                team_id = team.id if team is not None else "-"
            if allowed.scope in ("team", "self"):
                mine = caller.team_id if caller and caller.team_id else "-"
                team_id = mine if team_id in ("", mine) else "-"
            rows = await store.list_service_accounts(tenant.id, size, token, team_id=team_id)
        return _page(rows, size, lambda a: a.name)

    async def update_service_account(self, caller: Identity | None, tenant_ref: str, ref: str,
                                     changes: dict[str, Any], etag: str = "") -> ServiceAccount:
        require_mask(list(changes), SERVICE_ACCOUNT_FIELDS)
        new_roles = vocab.check_roles(list(changes["roles"])) if "roles" in changes else None
        async with self.sessions() as session, session.begin():
            store = AuthStore(session)
            tenant = await self.visible_tenant(store, caller, tenant_ref)
            grant = Grant(roles=tuple(new_roles)) if new_roles is not None else None
            account, allowed = await self._service_account(
                store, caller, tenant, ref, "service_accounts.update", grant
            )
            self.check_etag(account, etag)
            before = digest(account)
            if "display_name" in changes:
                account.display_name = vocab.check_display_name(changes["display_name"])
            if "status" in changes:
                account.status = vocab.check_status(changes["status"])
            if new_roles is not None:
                account.roles = new_roles
            self.touch(account)
            store.add(account, change("owner", account.id))
            self.audit(store, caller, allowed, "service_accounts.update", tenant.id,
                       "service_account", account.id, before, account)
        self.on_owner_change(account.id)
        return account

    async def delete_service_account(self, caller: Identity | None, tenant_ref: str, ref: str,
                                     etag: str = "") -> None:
        async with self.sessions() as session, session.begin():
            store = AuthStore(session)
            tenant = await self.visible_tenant(store, caller, tenant_ref)
            account, allowed = await self._service_account(store, caller, tenant, ref,
                                                           "service_accounts.delete")
            self.check_etag(account, etag)
            before = digest(account)
            self._revoke_keys_of(store, caller, allowed, tenant.id,
                                 await store.keys_of_owner(account.id))
            await store.delete(account)
            store.add(change("owner", account.id))
            self.audit(store, caller, allowed, "service_accounts.delete", tenant.id,
                       "service_account", account.id, before, None)
        self.on_owner_change(account.id)

