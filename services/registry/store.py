"""Registry queries, always tenant-scoped. Never commits: the service owns transactions."""

from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.registry.models import Api


class ApiStore:
    def __init__(self, session: AsyncSession):
        self.session = session

    def add(self, api: Api) -> None:
        self.session.add(api)

    async def get(self, tenant_id: str, api_id: str) -> Api | None:
        query = select(Api).where(Api.id == api_id, Api.tenant_id == tenant_id)
        return (await self.session.exec(query)).first()

    async def list_page(self, tenant_id: str, limit: int, after_seq: int | None) -> list[Api]:
        query = select(Api).where(Api.tenant_id == tenant_id)
        if after_seq is not None:
            query = query.where(col(Api.seq) > after_seq)
        query = query.order_by(col(Api.seq)).limit(limit)
        return list((await self.session.exec(query)).all())
