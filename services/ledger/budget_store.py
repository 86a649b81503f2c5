"""Budget queries. Never commits: BudgetBook owns transactions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func
from sqlalchemy import select as core_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.ledger.models import Budget, BudgetAlert, UsageEntry
from services.ledger.periods import Period

_C = UsageEntry.__table__.c
#: The usage column that names a call's id in each budget scope.
_SCOPE_COLUMN = {"team": _C.team_id, "key": _C.key_id, "subscription": _C.subscription_id}


class BudgetStore:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def all(self) -> list[Budget]:
        return list((await self.session.exec(select(Budget))).all())

    async def find(self, tenant_id: str, scope: str, scope_id: str, period: str) -> Budget | None:
        query = select(Budget).where(
            Budget.tenant_id == tenant_id, Budget.scope == scope,
            Budget.scope_id == scope_id, Budget.period == period,
        )
        return (await self.session.exec(query)).first()

    async def get(self, tenant_id: str, budget_id: str) -> Budget | None:
        """The budget, only when it belongs to `tenant_id`."""
        query = select(Budget).where(Budget.budget_id == budget_id, Budget.tenant_id == tenant_id)
        return (await self.session.exec(query)).first()

    async def of_tenant(self, tenant_id: str, scope: str = "", scope_id: str = "") -> list[Budget]:
        query = select(Budget).where(Budget.tenant_id == tenant_id)
        if scope:
            query = query.where(Budget.scope == scope)
        if scope_id:
            query = query.where(Budget.scope_id == scope_id)
        query = query.order_by(col(Budget.scope), col(Budget.scope_id), col(Budget.period))
        return list((await self.session.exec(query)).all())

    async def spent(self, budget: Budget, period: Period) -> int:
        """What the ledger's entries of this budget's scope cost in the period."""
        stmt = core_select(func.coalesce(func.sum(_C.cost_micro_usd), 0)).where(
            _C.tenant_id == budget.tenant_id
        )
        if budget.scope in _SCOPE_COLUMN:
            stmt = stmt.where(_SCOPE_COLUMN[budget.scope] == budget.scope_id)
        if period.start is not None:
            stmt = stmt.where(_C.created_at >= period.start, _C.created_at < period.end)
        return int((await self.session.execute(stmt)).scalar_one())

    async def note_alert(self, budget_id: str, period_key: str, threshold: int, spent: int,
                         at: datetime) -> bool:
        """Record that a threshold event is sent; False when it already was."""
        try:
            async with self.session.begin_nested():
                self.session.add(BudgetAlert(
                    budget_id=budget_id, period_key=period_key, threshold=threshold,
                    spent_micro_usd=spent, created_at=at,
                ))
        except IntegrityError:
            return False
        return True
