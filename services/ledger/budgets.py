"""Budgets: spending caps per tenant, team, key or subscription and period.

- Admin use cases (set, list, delete), scoped to the caller's tenant; a team
  admin manages only their own team's budgets.
- Admission: `reserve()` holds a call's most possible cost on every budget
  that applies (budget_counters.py); a hard budget that would be exceeded
  refuses the call, naming itself.
- Settlement: as a LedgerService listener, each new usage entry releases its
  reservation and adds its actual cost; thresholds send events.

The budgets themselves are kept in memory, indexed by (tenant, scope, scope
id), so admission never queries the database except to seed a period's spend
the first time this process sees it. The index is re-read every few seconds
(budgets changed through another ledger replica) and each period's spend is
reconciled with the database, which also heals a counter that missed an
entry (see docs/ledger.md, Guarantees).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from lockgate.errors import InvalidRequest, NotFound, PermissionDenied
from lockgate.identity import Identity
from lockgate.ids import new_id
from lockgate.money import usd
from lockgate.periodic import Periodic
from services.ledger.budget_alerts import ThresholdAlerts
from services.ledger.budget_counters import BudgetCounters, Hold, Level
from services.ledger.budget_store import BudgetStore
from services.ledger.models import Budget
from services.ledger.periods import PERIODS, Period, period_at, zone
from services.ledger.scopes import BUDGET_SCOPES, CallScopes

#: $1e9: far above any real budget, far below int64 overflow in sums.
MAX_AMOUNT_MICRO_USD = 10**15
_ADMINS = frozenset({"platform_admin", "tenant_admin"})
_IndexKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class BudgetView:
    budget: Budget
    period: Period
    level: Level


@dataclass(frozen=True, slots=True)
class Refusal:
    budget: Budget
    period: Period
    message: str
    retry_after_seconds: int | None


def counter_key(budget: Budget, period: Period) -> str:
    return f"{budget.budget_id}:{period.key}"


def describe(budget: Budget) -> str:
    where = "the tenant" if budget.scope == "tenant" else f"{budget.scope} {budget.scope_id}"
    per = "in total" if budget.period == "total" else f"per {budget.period}"
    tz = "" if budget.period == "total" or budget.timezone == "UTC" else f" ({budget.timezone})"
    return f"budget {budget.budget_id} of {where}, {usd(budget.amount_micro_usd)} {per}{tz}"


class BudgetBook:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        counters: BudgetCounters,
        alerts: ThresholdAlerts,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        refresh_seconds: float = 5.0,
        reconcile_seconds: float = 30.0,
    ):
        self.sessions = sessions
        self.counters = counters
        self.alerts = alerts
        self.clock = clock
        self._index: dict[_IndexKey, list[Budget]] = {}
        self._seeding: dict[str, asyncio.Lock] = {}
        self._refresher = Periodic("budget-refresh", refresh_seconds, self.load)
        self._reconciler = Periodic("budget-reconcile", reconcile_seconds, self.reconcile)

    # -- the in-memory index ------------------------------------------------------------

    async def load(self) -> None:
        async with self.sessions() as session:
            budgets = await BudgetStore(session).all()
        index: dict[_IndexKey, list[Budget]] = {}
        for budget in budgets:
            index.setdefault((budget.tenant_id, budget.scope, budget.scope_id), []).append(budget)
        self._index = index

    def _put(self, budget: Budget) -> None:
        key = (budget.tenant_id, budget.scope, budget.scope_id)
        kept = [b for b in self._index.get(key, []) if b.budget_id != budget.budget_id]
        self._index[key] = [*kept, budget]

    def _drop(self, budget: Budget) -> None:
        key = (budget.tenant_id, budget.scope, budget.scope_id)
        kept = [b for b in self._index.get(key, []) if b.budget_id != budget.budget_id]
        if kept:
            self._index[key] = kept
        else:
            self._index.pop(key, None)

    def applicable(self, scopes: CallScopes) -> list[Budget]:
        """Every budget a call of these scopes counts against (a dict probe per scope)."""
        out: list[Budget] = []
        for scope in BUDGET_SCOPES:
            scope_id = scopes.of(scope)
            if scope_id:
                out.extend(self._index.get((scopes.tenant_id, scope, scope_id), ()))
        return out

    # -- admin ------------------------------------------------------------------------------

    async def set(self, caller: Identity, *, scope: str, scope_id: str, amount_micro_usd: int,
                  period: str, timezone: str, hard: bool) -> BudgetView:
        scope, scope_id = self._authorize(caller, scope, scope_id)
        if not 0 < amount_micro_usd <= MAX_AMOUNT_MICRO_USD:
            raise InvalidRequest(
                f"amount_micro_usd must be between 1 and {MAX_AMOUNT_MICRO_USD}",
                param="amount_micro_usd",
            )
        if period not in PERIODS:
            raise InvalidRequest(
                f"period must be one of {', '.join(PERIODS)}", param="period"
            )
        timezone = timezone or "UTC"
        zone(timezone)  # validates
        now = self.clock()
        async with self.sessions() as session, session.begin():
            store = BudgetStore(session)
            budget = await store.find(caller.tenant_id, scope, scope_id, period)
            if budget is None:
                budget = Budget(
                    budget_id=new_id("bgt"), tenant_id=caller.tenant_id, scope=scope,
                    scope_id=scope_id, period=period, amount_micro_usd=amount_micro_usd,
                    timezone=timezone, hard=hard, created_by=caller.principal or caller.key_id,
                    created_at=now, updated_at=now,
                )
                session.add(budget)
            else:
                budget.amount_micro_usd = amount_micro_usd
                budget.timezone = timezone
                budget.hard = hard
                budget.updated_at = now
            await session.flush()
            session.expunge(budget)
        self._put(budget)
        return await self.view(budget)

    async def list(self, caller: Identity, scope: str = "", scope_id: str = "") -> list[BudgetView]:
        if scope and scope not in BUDGET_SCOPES:
            raise InvalidRequest(f"scope must be one of {', '.join(BUDGET_SCOPES)}", param="scope")
        async with self.sessions() as session:
            budgets = await BudgetStore(session).of_tenant(caller.tenant_id, scope, scope_id)
        return [await self.view(b) for b in budgets]

    async def delete(self, caller: Identity, budget_id: str) -> None:
        async with self.sessions() as session, session.begin():
            budget = await BudgetStore(session).get(caller.tenant_id, budget_id)
            if budget is None:
                raise NotFound(f"budget {budget_id!r} not found", param="budget_id")
            self._authorize(caller, budget.scope, budget.scope_id)
            await session.delete(budget)
        self._drop(budget)

    def _authorize(self, caller: Identity, scope: str, scope_id: str) -> tuple[str, str]:
        """The validated (scope, scope_id); PERMISSION_DENIED for a team admin
        reaching past their team."""
        if scope not in BUDGET_SCOPES:
            raise InvalidRequest(f"scope must be one of {', '.join(BUDGET_SCOPES)}", param="scope")
        if scope == "tenant":
            if scope_id not in ("", caller.tenant_id):
                raise InvalidRequest("a tenant budget is on the caller's own tenant: leave"
                                     " scope_id empty", param="scope_id")
            scope_id = caller.tenant_id
        elif not scope_id or len(scope_id) > 256 or not scope_id.isprintable():
            raise InvalidRequest(f"scope_id (the {scope} id) is required", param="scope_id")
        if _ADMINS & set(caller.roles):
            return scope, scope_id
        if "team_admin" in caller.roles and scope == "team" and scope_id == caller.team_id:
            return scope, scope_id
        raise PermissionDenied(
            "only tenant admins manage budgets, and team admins their own team's budget"
        )

    async def view(self, budget: Budget) -> BudgetView:
        period = period_at(budget.period, budget.timezone, self.clock())
        level = await self._level(budget, period)
        return BudgetView(budget, period, level)

    async def _level(self, budget: Budget, period: Period) -> Level:
        """The period's counters, seeded from the database on first use."""
        key = counter_key(budget, period)
        level = await self.counters.level(key)
        if level is not None:
            return level
        lock = self._seeding.setdefault(key, asyncio.Lock())
        async with lock:
            level = await self.counters.level(key)
            if level is None:
                async with self.sessions() as session:
                    spent = await BudgetStore(session).spent(budget, period)
                await self.counters.seed(key, spent)
                level = Level(spent, 0)
        self._seeding.pop(key, None)
        return level

    # -- admission and settlement -------------------------------------------------------

    async def reserve(self, request_id: str, budgets: Sequence[Budget], amount: int,
                      ttl_seconds: float) -> Refusal | None:
        """Hold `amount` on every budget's current period, or refuse naming the hard
        budget that would be exceeded."""
        now = self.clock()
        periods, holds = await self._holds(budgets, now)
        refused = await self.counters.reserve(request_id, holds, amount, ttl_seconds)
        if refused is None:
            return None
        budget = next(b for b, h in zip(budgets, holds, strict=True) if h.key == refused)
        period = periods[budget.budget_id]
        level = await self.counters.level(refused) or Level(0, 0)
        return Refusal(budget, period, self._refusal_message(budget, period, level, amount),
                       period.seconds_left(now))

    async def _holds(self, budgets: Sequence[Budget], now: datetime
                     ) -> tuple[dict[str, Period], list[Hold]]:
        """Each budget's current period (by budget id), seeded, and its hold."""
        periods = {b.budget_id: period_at(b.period, b.timezone, now) for b in budgets}
        for budget in budgets:
            await self._level(budget, periods[budget.budget_id])
        holds = [Hold(counter_key(b, periods[b.budget_id]), b.amount_micro_usd if b.hard else None)
                 for b in budgets]
        return periods, holds

    async def room(self, budgets: Sequence[Budget]) -> int | None:
        """The least left in the current period of the hard budgets, after what is
        spent and reserved (None: none of them is hard)."""
        now = self.clock()
        left = None
        for budget in budgets:
            if budget.hard:
                level = await self._level(budget, period_at(budget.period, budget.timezone, now))
                room = budget.amount_micro_usd - level.spent - level.reserved
                left = room if left is None else min(left, room)
        return left

    async def reserve_tickets(self, ticket_ids: Sequence[str], budgets: Sequence[Budget],
                              amount: int, ttl_seconds: float) -> int:
        """Reserve `amount` for each admission ticket in turn, as `reserve` does for a
        call, until one does not fit; returns how many were reserved."""
        if not budgets:
            return len(ticket_ids)
        _, holds = await self._holds(budgets, self.clock())
        return await self.counters.reserve_each(list(ticket_ids), holds, amount, ttl_seconds)

    async def release(self, ticket_ids: Sequence[str]) -> None:
        """Drop the reservations of admission tickets returned unused."""
        for ticket_id in ticket_ids:
            await self.counters.settle(ticket_id, [])

    @staticmethod
    def _refusal_message(budget: Budget, period: Period, level: Level, amount: int) -> str:
        used = usd(level.spent + level.reserved)
        reset = (f" It resets at {period.end.astimezone(zone(budget.timezone)).isoformat()}."
                 if period.end is not None else " It does not reset: an admin can raise it.")
        return (f"The {describe(budget)} is exhausted: {used} spent or reserved by calls in"
                f" flight, and this call could cost up to {usd(amount)}.{reset}")

    async def usage_recorded(self, entries: Sequence[dict]) -> None:
        # A batch is mostly one caller's calls: look their budgets up once per scopes.
        applicable: dict[CallScopes, list[Budget]] = {}
        for entry in entries:
            scopes = CallScopes.of_entry(entry)
            budgets = applicable.get(scopes)
            if budgets is None:
                budgets = applicable[scopes] = self.applicable(scopes)
            if not budgets:
                continue
            at = entry["created_at"]
            at = at if at.tzinfo else at.replace(tzinfo=UTC)
            costs, periods = [], {}
            for budget in budgets:
                period = period_at(budget.period, budget.timezone, at)
                periods[counter_key(budget, period)] = (budget, period)
                costs.append((counter_key(budget, period), int(entry.get("cost_micro_usd") or 0)))
            # A call admitted on a ticket settles the ticket's reservation.
            reservation = entry.get("admission_id") or entry["request_id"]
            levels = await self.counters.settle(reservation, costs)
            for key, level in levels.items():
                budget, period = periods[key]
                await self.alerts.check(budget, period, level.spent)

    # -- background: other replicas' changes, reconciliation ----------------------------------

    def start(self) -> None:
        self._refresher.start()
        self._reconciler.start()

    async def close(self) -> None:
        await self._refresher.close()
        await self._reconciler.close()
        await self.counters.close()

    async def reconcile(self) -> None:
        """Re-read each current period's spend from the database; drop past periods."""
        now = self.clock()
        current: set[str] = set()
        for budgets in list(self._index.values()):
            for budget in budgets:
                period = period_at(budget.period, budget.timezone, now)
                key = counter_key(budget, period)
                current.add(key)
                async with self.sessions() as session:
                    spent = await BudgetStore(session).spent(budget, period)
                await self.counters.seed(key, spent)
                await self.alerts.check(budget, period, spent)
        await self.counters.retain(current)
