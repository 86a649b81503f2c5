"""Auth queries. Never commits: the service owns transactions."""

from __future__ import annotations

from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.auth.models import ApiKey, Tenant


class AuthStore:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def tenant_by_name_or_id(self, ref: str) -> Tenant | None:
        query = select(Tenant).where(or_(Tenant.id == ref, Tenant.name == ref))
        return (await self.session.exec(query)).first()

    async def tenant(self, tenant_id: str) -> Tenant | None:
        return await self.session.get(Tenant, tenant_id)

    async def list_tenants(self) -> list[Tenant]:
        return list((await self.session.exec(select(Tenant).order_by(Tenant.name))).all())

    def add(self, obj: Tenant | ApiKey) -> None:
        self.session.add(obj)

    async def keys_with_prefix(self, prefix: str) -> list[ApiKey]:
        return list((await self.session.exec(select(ApiKey).where(ApiKey.prefix == prefix))).all())

    async def key(self, tenant_id: str, key_id: str) -> ApiKey | None:
        query = select(ApiKey).where(ApiKey.id == key_id, ApiKey.tenant_id == tenant_id)
        return (await self.session.exec(query)).first()

    async def list_keys(self, tenant_id: str) -> list[ApiKey]:
        query = (
            select(ApiKey)
            .where(ApiKey.tenant_id == tenant_id)
            .order_by(col(ApiKey.created_at), col(ApiKey.id))
        )
        return list((await self.session.exec(query)).all())

    async def has_role_key(self, tenant_id: str, role: str) -> bool:
        for key in await self.list_keys(tenant_id):
            if role in key.roles and key.status == "active":
                return True
        return False
