"""Threshold events: a budget period reaching 50, 80 and 100 % of its amount.

Each (budget, period, threshold) is sent at most once: the ledger records it
in `budget_alerts` (unique) before queueing the webhook, and remembers it in
memory so the common case costs no query. The webhook retries on its own
(lockgate/webhook.py); an event it finally gives up on is counted in
`lockgate_webhook_failed_total{source="ledger"}`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from lockgate.webhook import Webhook
from services.ledger.budget_store import BudgetStore
from services.ledger.models import Budget
from services.ledger.periods import Period

THRESHOLDS = (50, 80, 100)
EVENT_TYPE = "budget.threshold"
#: Bound on the memory of sent events (older ones are looked up in the database).
_MAX_REMEMBERED = 100_000


def crossed(amount: int, spent: int) -> list[int]:
    """The thresholds (percent) `spent` has reached."""
    return [t for t in THRESHOLDS if spent * 100 >= t * amount]


def event_data(budget: Budget, period: Period, threshold: int, spent: int) -> dict:
    return {
        "budget_id": budget.budget_id,
        "tenant_id": budget.tenant_id,
        "scope": budget.scope,
        "scope_id": budget.scope_id,
        "period": budget.period,
        "timezone": budget.timezone,
        "period_start": period.start.isoformat() if period.start else None,
        "period_end": period.end.isoformat() if period.end else None,
        "hard": budget.hard,
        "threshold_percent": threshold,
        "amount_micro_usd": budget.amount_micro_usd,
        "spent_micro_usd": spent,
    }


class ThresholdAlerts:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], webhook: Webhook | None):
        self.sessions = sessions
        self.webhook = webhook
        self._sent: set[tuple[str, str, int]] = set()

    async def check(self, budget: Budget, period: Period, spent: int) -> list[int]:
        """Send the events `spent` calls for and that were not sent yet; returns them."""
        due = [t for t in crossed(budget.amount_micro_usd, spent)
               if (budget.budget_id, period.key, t) not in self._sent]
        if not due:
            return []
        sent = []
        now = datetime.now(UTC)
        async with self.sessions() as session, session.begin():
            store = BudgetStore(session)
            for threshold in due:
                if await store.note_alert(budget.budget_id, period.key, threshold, spent, now):
                    sent.append(threshold)
        if len(self._sent) > _MAX_REMEMBERED:
            self._sent.clear()
        self._sent.update((budget.budget_id, period.key, t) for t in due)
        if self.webhook is not None:
            for threshold in sent:
                self.webhook.send(EVENT_TYPE, event_data(budget, period, threshold, spent))
        return sent
