"""Price book queries (the admin-set versions). Never commits: the service owns transactions."""

from __future__ import annotations

from datetime import date

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.ledger.models import PriceVersion


class PriceStore:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def listed(self, provider: str = "", model: str = "") -> list[PriceVersion]:
        """Every admin version, or only one provider type's / model's (exact match)."""
        query = select(PriceVersion)
        if provider:
            query = query.where(PriceVersion.provider == provider)
        if model:
            query = query.where(PriceVersion.model == model)
        query = query.order_by(
            col(PriceVersion.provider), col(PriceVersion.model),
            col(PriceVersion.effective_date).desc(),
        )
        return list((await self.session.exec(query)).all())

    async def on(self, provider: str, model: str, day: date) -> PriceVersion | None:
        """The version of (provider, model) that takes effect on `day` exactly."""
        query = select(PriceVersion).where(
            PriceVersion.provider == provider,
            PriceVersion.model == model,
            PriceVersion.effective_date == day,
        )
        return (await self.session.exec(query)).first()

    async def get(self, price_id: str) -> PriceVersion | None:
        return await self.session.get(PriceVersion, price_id)

    def add(self, row: PriceVersion) -> None:
        self.session.add(row)

    async def delete(self, row: PriceVersion) -> None:
        await self.session.delete(row)

    async def flush(self) -> None:
        await self.session.flush()
