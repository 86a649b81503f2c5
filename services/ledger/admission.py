"""Admission: may a call go to a provider, given its budgets and rate limits?

The router asks (LedgerService/Admit) before calling a provider, with the
call's scopes, its most possible cost and its expected tokens:

1. when the call asks for it (`count_requests`: calls that came in on the
   router's HTTP listener, which Envoy's rate limiter does not see), the
   request is counted against its requests-per-minute limits, as the edge
   would have (services/ledger/edge_ratelimit.py);
2. token rate limits are checked (no side effect);
3. then the cost is reserved on every budget that applies, all or nothing.

A response-cache hit (`cache_hit`) calls no provider: only step 1 runs.

When nothing applies, the answer says for how long the router may skip asking
for the same scopes (`unrestricted_ttl_ms`): most callers have no budget, and
they should not pay a round trip for it. A budget or limit created meanwhile
takes effect within that time.

Admission tickets spare busy callers the round trip too. The router may ask
for tickets: calls with the same scopes admitted ahead (`grant_tickets`).
Each one goes through the same three steps now, for a call still to come: its
requests counted, room for its tokens, its most possible cost reserved under
the ticket's own id, which the usage entry of the call that uses it settles
(`admission_id`). A grant takes at most 1/TICKET_SHARE of what is left of any
budget or limit, so near a limit every call asks for itself and the exact
all-or-nothing answer decides who gets the last of it. Tickets live
TICKET_TTL_MS, within one rate-limit window; the router gives back the ones it
did not use (`return_tickets`): their reservations are released and their
requests uncounted while their window lasts.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from lockgate.errors import InvalidRequest, ServiceUnavailable
from lockgate.metrics import Counter
from services.ledger.budgets import BudgetBook
from services.ledger.limits import (
    NO_LIMITS,
    RateLimitService,
    RequestVerdict,
    Room,
    TokenVerdict,
)
from services.ledger.scopes import CallScopes

#: How long "nothing applies" may be cached by the router.
UNRESTRICTED_TTL_MS = 1000
#: Reservations live at least this long, at most MAX (a call's deadline plus slack).
MIN_TTL_SECONDS, MAX_TTL_SECONDS, DEFAULT_TTL_SECONDS = 5, 3600, 600
#: Tickets granted at most at once, and for how long they may be used (a budget
#: or limit changed meanwhile applies to the calls after that, as with
#: UNRESTRICTED_TTL_MS).
MAX_TICKETS, TICKET_TTL_MS = 256, 1000
#: A grant takes at most this share (1/n) of what is left of any budget or limit.
TICKET_SHARE = 8
#: Tickets given back at once at most.
MAX_RETURNED_TICKETS = 1000
TICKET_ID = re.compile(r"adm_[0-9a-f]{24}")

TICKETS = Counter(
    "lockgate_ledger_admission_tickets_total",
    "Admission tickets: granted (calls admitted ahead) and returned unused", ["outcome"],
)


@dataclass(frozen=True, slots=True)
class Tickets:
    """Calls admitted ahead (`Gate.grant_tickets`)."""

    ids: tuple[str, ...] = ()
    ttl_ms: int = 0
    window_start_ms: int = 0
    #: What was left of the limits before the grant.
    room: Room = NO_LIMITS


NO_TICKETS = Tickets()


@dataclass(frozen=True, slots=True)
class Admission:
    admitted: bool
    code: str = ""
    message: str = ""
    retry_after_seconds: int = 0
    token_limit: int = 0
    token_remaining: int = 0
    token_reset_ms: int = 0
    unrestricted_ttl_ms: int = 0
    request_limit: int = 0
    request_remaining: int = 0
    request_reset_ms: int = 0
    tickets: Tickets = NO_TICKETS


class Gate:
    def __init__(self, budgets: BudgetBook, limits: RateLimitService | None = None):
        self.budgets = budgets
        self.limits = limits

    async def admit(self, request_id: str, scopes: CallScopes, *, max_cost_micro_usd: int,
                    estimated_tokens: int, ttl_seconds: int, count_requests: int = 0,
                    cache_hit: bool = False, tickets: int = 0,
                    ticket_max_cost_micro_usd: int = 0, ticket_tokens: int = 0) -> Admission:
        """Admit the call `request_id`, then grant up to `tickets` more for calls
        still to come (`grant_tickets`). Without a request id, only tickets."""
        tickets = 0 if cache_hit else tickets
        if not request_id and tickets <= 0:
            raise InvalidRequest("request_id is required", param="request_id")
        if not scopes.tenant_id:
            raise InvalidRequest("tenant_id is required", param="tenant_id")
        if max_cost_micro_usd < 0 or estimated_tokens < 0 or count_requests < 0:
            raise InvalidRequest("cost, token and request counts cannot be negative")
        budgets = self.budgets.applicable(scopes)
        request_limited, token_limited = (
            self.limits.limited_kinds(scopes) if self.limits is not None else (False, False))
        request_limited = request_limited and count_requests > 0
        if not budgets and not token_limited and not request_limited:
            return Admission(admitted=True, unrestricted_ttl_ms=UNRESTRICTED_TTL_MS)
        if not request_id:
            return await self._tickets_only(scopes, tickets, ticket_max_cost_micro_usd,
                                            ticket_tokens, count_requests, ttl_seconds)
        #: The limits the answer reports, for the x-ratelimit-* headers.
        shown: dict[str, int] = {}
        if request_limited:
            requests = await self.limits.acquire_requests(scopes, count_requests)
            shown.update(request_limit=requests.limit, request_remaining=requests.remaining,
                         request_reset_ms=requests.reset_ms)
            if not requests.allowed:
                return _refused("request_rate_limited", requests, shown)
        if cache_hit:
            return Admission(admitted=True, **shown)
        if token_limited:
            tokens = await self.limits.check_tokens(scopes, estimated_tokens)
            shown.update(token_limit=tokens.limit, token_remaining=tokens.remaining,
                         token_reset_ms=tokens.reset_ms)
            if not tokens.allowed:
                return _refused("token_rate_limited", tokens, shown)
        if budgets:
            ttl = min(MAX_TTL_SECONDS, max(MIN_TTL_SECONDS, ttl_seconds or DEFAULT_TTL_SECONDS))
            refusal = await self.budgets.reserve(request_id, budgets, max_cost_micro_usd, ttl)
            if refusal is not None:
                return Admission(admitted=False, code="budget_exceeded", message=refusal.message,
                                 retry_after_seconds=refusal.retry_after_seconds or 0, **shown)
        granted = NO_TICKETS
        if tickets > 0:
            granted = await self.grant_tickets(
                scopes, tickets, max_cost_micro_usd=ticket_max_cost_micro_usd,
                tokens=ticket_tokens, count_requests=count_requests, ttl_seconds=ttl_seconds)
        return Admission(admitted=True, tickets=granted, **shown)

    async def _tickets_only(self, scopes: CallScopes, wanted: int, max_cost_micro_usd: int,
                            tokens: int, count_requests: int, ttl_seconds: int) -> Admission:
        """A grant with no call of its own; the limits it reports are what is left
        before the tickets (the router counts its tickets off as it uses them)."""
        granted = await self.grant_tickets(
            scopes, wanted, max_cost_micro_usd=max_cost_micro_usd, tokens=tokens,
            count_requests=count_requests, ttl_seconds=ttl_seconds)
        room = granted.room
        shown: dict[str, int] = {}
        if room.requests is not None:
            shown.update(request_limit=room.request_limit, request_remaining=room.requests,
                         request_reset_ms=room.reset_ms)
        if room.tokens is not None:
            shown.update(token_limit=room.token_limit, token_remaining=room.tokens,
                         token_reset_ms=room.reset_ms)
        return Admission(admitted=True, tickets=granted, **shown)

    async def grant_tickets(self, scopes: CallScopes, wanted: int, *, max_cost_micro_usd: int,
                            tokens: int, count_requests: int, ttl_seconds: int) -> Tickets:
        """Admit up to `wanted` calls still to come, each costing at most
        `max_cost_micro_usd` and using at most `tokens`, within a small share of
        what is left of every budget and limit (module docstring)."""
        if not scopes.tenant_id:
            raise InvalidRequest("tenant_id is required", param="tenant_id")
        if max_cost_micro_usd < 0 or tokens < 0 or count_requests < 0:
            raise InvalidRequest("ticket cost, tokens and request counts cannot be negative")
        wanted = min(wanted, MAX_TICKETS)
        if wanted <= 0:
            return NO_TICKETS
        budgets = self.budgets.applicable(scopes)
        room = (await self.limits.room(scopes, count_requests=count_requests > 0)
                if self.limits is not None else NO_LIMITS)
        count = min(wanted, _share(room.requests, count_requests),
                    _share(room.tokens, tokens),
                    _share(await self.budgets.room(budgets), max_cost_micro_usd))
        if count <= 0:
            return Tickets(room=room)
        window = (await self.limits.count_ahead(scopes, count * count_requests)
                  if self.limits is not None and count_requests > 0 else None)
        if window is None and room.requests is not None:
            return Tickets(room=room)  # no longer fit (a race), or the counters are away
        ids = _ticket_ids(count)
        # The calls that will use them are not known yet: hold for at least the
        # default, unused ones come back within a second anyway.
        ttl = min(MAX_TTL_SECONDS, max(DEFAULT_TTL_SECONDS, ttl_seconds))
        try:
            reserved = await self.budgets.reserve_tickets(ids, budgets, max_cost_micro_usd, ttl)
        except ServiceUnavailable:
            reserved = 0
        if reserved < count and window is not None:
            await self.limits.uncount(scopes, (count - reserved) * count_requests,
                                      window.start_ms)
        if reserved == 0:
            return Tickets(room=room)
        TICKETS.labels("granted").inc(reserved)
        ttl_ms = TICKET_TTL_MS
        if window is not None:
            ttl_ms = min(ttl_ms, window.reset_ms(self.limits.now_ms()))
        return Tickets(ids[:reserved], ttl_ms, window.start_ms if window is not None else 0,
                       room)

    async def return_tickets(self, scopes: CallScopes, ticket_ids: Sequence[str], *,
                             count_requests: int, window_start_ms: int) -> None:
        """Release unused tickets' reservations and uncount their requests."""
        if not scopes.tenant_id:
            raise InvalidRequest("tenant_id is required", param="tenant_id")
        if len(ticket_ids) > MAX_RETURNED_TICKETS:
            raise InvalidRequest(f"at most {MAX_RETURNED_TICKETS} tickets at once",
                                 param="ticket_ids")
        if count_requests < 0:
            raise InvalidRequest("count_requests cannot be negative", param="count_requests")
        # Only ticket ids: a call's own reservation is settled by its usage entry.
        for ticket_id in ticket_ids:
            if not TICKET_ID.fullmatch(ticket_id):
                raise InvalidRequest(f"{ticket_id[:80]!r} is not an admission ticket",
                                     param="ticket_ids")
        if not ticket_ids:
            return
        await self.budgets.release(ticket_ids)
        if self.limits is not None and count_requests > 0:
            await self.limits.uncount(scopes, len(ticket_ids) * count_requests, window_start_ms)
        TICKETS.labels("returned").inc(len(ticket_ids))


def _ticket_ids(count: int) -> tuple[str, ...]:
    """`count` new ticket ids ("adm_" and 24 hex digits, as lockgate.ids makes
    them), from one read of the system's random source rather than one each."""
    random = secrets.token_hex(12 * count)
    return tuple(f"adm_{random[i:i + 24]}" for i in range(0, 24 * count, 24))


def _share(left: int | None, each: int) -> int:
    """How many calls of `each` fit in 1/TICKET_SHARE of `left` (None: no limit)."""
    if left is None:
        return MAX_TICKETS
    return max(0, left) // (TICKET_SHARE * max(1, each))


def _refused(code: str, verdict: RequestVerdict | TokenVerdict, shown: dict[str, int]
             ) -> Admission:
    return Admission(admitted=False, code=code, message=verdict.message,
                     retry_after_seconds=verdict.retry_after_seconds, **shown)
