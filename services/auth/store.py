"""Auth queries. Never commits: the service owns transactions.

Every lookup of an object by a caller-supplied reference is scoped to a tenant
id the service already authorized, so an id of another tenant is simply not
found. Lists use keyset pagination on (sort column, id).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, update
from sqlmodel import and_, col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from lockgate.errors import InvalidRequest
from lockgate.pagination import decode_position
from services.auth.models import (
    ApiKey,
    AuditEvent,
    Change,
    Membership,
    ServiceAccount,
    Team,
    Tenant,
    User,
)


def _after(sort_column: Any, id_column: Any, token: str):
    """The WHERE clause of the page after `token` (None on the first page)."""
    position = decode_position(token, 2)
    if position is None:
        return None
    value, last_id = position
    if "\x00" in value + last_id:  # PostgreSQL text cannot hold NUL: not one of our tokens
        raise InvalidRequest("invalid page_token", param="page_token")
    return or_(sort_column > value, and_(sort_column == value, id_column > last_id))


class AuthStore:
    def __init__(self, session: AsyncSession):
        self.session = session

    def add(self, *objs: Any) -> None:
        self.session.add_all(objs)

    async def delete(self, obj: Any) -> None:
        await self.session.delete(obj)

    async def flush(self) -> None:
        await self.session.flush()

    async def _page(self, query, sort_column, id_column, size: int, token: str) -> list:
        after = _after(sort_column, id_column, token)
        if after is not None:
            query = query.where(after)
        query = query.order_by(sort_column, id_column).limit(size + 1)
        return list((await self.session.exec(query)).all())

    # -- tenants -----------------------------------------------------------------------

    async def tenant_by_name_or_id(self, ref: str) -> Tenant | None:
        query = select(Tenant).where(or_(Tenant.id == ref, Tenant.name == ref))
        return (await self.session.exec(query)).first()

    async def tenant(self, tenant_id: str) -> Tenant | None:
        return await self.session.get(Tenant, tenant_id)

    async def list_tenants(
        self, size: int, token: str, name_prefix: str = "", only_id: str | None = None
    ) -> list[Tenant]:
        query = select(Tenant)
        if name_prefix:
            query = query.where(col(Tenant.name).startswith(name_prefix, autoescape=True))
        if only_id is not None:
            query = query.where(Tenant.id == only_id)
        return await self._page(query, col(Tenant.name), col(Tenant.id), size, token)

    # -- teams -------------------------------------------------------------------------

    async def team(self, tenant_id: str, ref: str) -> Team | None:
        query = select(Team).where(
            Team.tenant_id == tenant_id, or_(Team.id == ref, Team.name == ref)
        )
        return (await self.session.exec(query)).first()

    async def list_teams(
        self, tenant_id: str, size: int, token: str, name_prefix: str = "",
        only_id: str | None = None,
    ) -> list[Team]:
        query = select(Team).where(Team.tenant_id == tenant_id)
        if name_prefix:
            query = query.where(col(Team.name).startswith(name_prefix, autoescape=True))
        if only_id is not None:
            query = query.where(Team.id == only_id)
        return await self._page(query, col(Team.name), col(Team.id), size, token)

    async def team_is_empty(self, team_id: str) -> bool:
        for model, column in (
            (ServiceAccount, ServiceAccount.team_id),
            (Membership, Membership.team_id),
            (ApiKey, ApiKey.team_id),
        ):
            query = select(func.count()).select_from(model).where(column == team_id)
            if model is ApiKey:
                query = query.where(ApiKey.status == "active")
            if (await self.session.exec(query)).one():
                return False
        return True

    # -- users -------------------------------------------------------------------------

    async def user(self, tenant_id: str, ref: str) -> User | None:
        query = select(User).where(
            User.tenant_id == tenant_id, or_(User.id == ref, User.email == ref.lower())
        )
        return (await self.session.exec(query)).first()

    async def user_by_email(self, email: str) -> User | None:
        return (await self.session.exec(select(User).where(User.email == email.lower()))).first()

    async def list_users(
        self, tenant_id: str, size: int, token: str, *, team_id: str = "",
        email_prefix: str = "", only_id: str | None = None,
    ) -> list[User]:
        query = select(User).where(User.tenant_id == tenant_id)
        if team_id:
            members = select(Membership.user_id).where(Membership.team_id == team_id)
            query = query.where(col(User.id).in_(members))
        if email_prefix:
            query = query.where(col(User.email).startswith(email_prefix.lower(), autoescape=True))
        if only_id is not None:
            query = query.where(User.id == only_id)
        return await self._page(query, col(User.email), col(User.id), size, token)

    async def memberships(self, user_ids: Sequence[str]) -> dict[str, list[Membership]]:
        found: dict[str, list[Membership]] = {user_id: [] for user_id in user_ids}
        if user_ids:
            query = select(Membership).where(col(Membership.user_id).in_(list(user_ids)))
            for row in (await self.session.exec(query)).all():
                found[row.user_id].append(row)
        return found

    async def replace_memberships(self, user: User, memberships: dict[str, list[str]]) -> None:
        await self.session.exec(delete(Membership).where(Membership.user_id == user.id))
        for team_id, roles in memberships.items():
            self.session.add(
                Membership(user_id=user.id, team_id=team_id, tenant_id=user.tenant_id, roles=roles)
            )

    # -- service accounts ----------------------------------------------------------------

    async def service_account(self, tenant_id: str, ref: str) -> ServiceAccount | None:
        query = select(ServiceAccount).where(
            ServiceAccount.tenant_id == tenant_id,
            or_(ServiceAccount.id == ref, ServiceAccount.name == ref),
        )
        return (await self.session.exec(query)).first()

    async def list_service_accounts(
        self, tenant_id: str, size: int, token: str, *, team_id: str = ""
    ) -> list[ServiceAccount]:
        query = select(ServiceAccount).where(ServiceAccount.tenant_id == tenant_id)
        if team_id:
            query = query.where(ServiceAccount.team_id == team_id)
        return await self._page(
            query, col(ServiceAccount.name), col(ServiceAccount.id), size, token
        )

    # -- keys --------------------------------------------------------------------------

    async def keys_with_prefix(self, prefix: str) -> list[ApiKey]:
        return list((await self.session.exec(select(ApiKey).where(ApiKey.prefix == prefix))).all())

    async def key(self, tenant_id: str, key_id: str) -> ApiKey | None:
        query = select(ApiKey).where(ApiKey.id == key_id, ApiKey.tenant_id == tenant_id)
        return (await self.session.exec(query)).first()

    async def list_keys(
        self, tenant_id: str, size: int, token: str, *, team_id: str = "", owner_id: str = "",
        status: str = "", now: datetime | None = None,
    ) -> list[ApiKey]:
        query = select(ApiKey).where(ApiKey.tenant_id == tenant_id)
        if team_id:
            query = query.where(ApiKey.team_id == team_id)
        if owner_id:
            query = query.where(ApiKey.owner_id == owner_id)
        if status == "revoked":
            query = query.where(ApiKey.status == "revoked")
        elif status in ("active", "expired") and now is not None:
            unexpired = or_(col(ApiKey.expires_at).is_(None), col(ApiKey.expires_at) > now)
            query = query.where(ApiKey.status == "active")
            query = query.where(unexpired if status == "active" else ~unexpired)
        return await self._page(query, col(ApiKey.id), col(ApiKey.id), size, token)

    async def keys_of_owner(self, owner_id: str) -> list[ApiKey]:
        query = select(ApiKey).where(ApiKey.owner_id == owner_id, ApiKey.status == "active")
        return list((await self.session.exec(query)).all())

    async def has_role_key(self, tenant_id: str, role: str) -> bool:
        query = select(ApiKey).where(ApiKey.tenant_id == tenant_id, ApiKey.status == "active")
        return any(role in key.roles for key in (await self.session.exec(query)).all())

    async def touch_keys(self, last_used: dict[str, datetime]) -> None:
        """Record last-used times (never moving one backwards)."""
        for key_id, used_at in last_used.items():
            await self.session.exec(
                update(ApiKey)
                .where(col(ApiKey.id) == key_id)
                .where(or_(col(ApiKey.last_used_at).is_(None), col(ApiKey.last_used_at) < used_at))
                .values(last_used_at=used_at)
            )

    # -- audit and change feed ------------------------------------------------------------

    async def list_audit_events(
        self, tenant_id: str | None, size: int, before_seq: int | None, *,
        object_id: str = "", action: str = "",
    ) -> list[AuditEvent]:
        query = select(AuditEvent)
        if tenant_id is not None:
            query = query.where(AuditEvent.tenant_id == tenant_id)
        if object_id:
            query = query.where(AuditEvent.object_id == object_id)
        if action:
            query = query.where(AuditEvent.action == action)
        if before_seq is not None:
            query = query.where(col(AuditEvent.seq) < before_seq)
        query = query.order_by(col(AuditEvent.seq).desc()).limit(size + 1)
        return list((await self.session.exec(query)).all())

    async def changes_after(self, seq: int, limit: int) -> list[Change]:
        query = (
            select(Change).where(col(Change.seq) > seq).order_by(col(Change.seq)).limit(limit)
        )
        return list((await self.session.exec(query)).all())

    async def last_change(self) -> int:
        return (await self.session.exec(select(func.max(Change.seq)))).one() or 0

    async def prune_changes(self, before: datetime) -> None:
        await self.session.exec(delete(Change).where(col(Change.created_at) < before))
