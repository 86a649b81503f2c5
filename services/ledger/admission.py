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
"""

from __future__ import annotations

from dataclasses import dataclass

from lockgate.errors import InvalidRequest
from services.ledger.budgets import BudgetBook
from services.ledger.limits import RateLimitService, RequestVerdict, TokenVerdict
from services.ledger.scopes import CallScopes

#: How long "nothing applies" may be cached by the router.
UNRESTRICTED_TTL_MS = 1000
#: Reservations live at least this long, at most MAX (a call's deadline plus slack).
MIN_TTL_SECONDS, MAX_TTL_SECONDS, DEFAULT_TTL_SECONDS = 5, 3600, 600


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


class Gate:
    def __init__(self, budgets: BudgetBook, limits: RateLimitService | None = None):
        self.budgets = budgets
        self.limits = limits

    async def admit(self, request_id: str, scopes: CallScopes, *, max_cost_micro_usd: int,
                    estimated_tokens: int, ttl_seconds: int, count_requests: int = 0,
                    cache_hit: bool = False) -> Admission:
        if not request_id:
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
        return Admission(admitted=True, **shown)


def _refused(code: str, verdict: RequestVerdict | TokenVerdict, shown: dict[str, int]
             ) -> Admission:
    return Admission(admitted=False, code=code, message=verdict.message,
                     retry_after_seconds=verdict.retry_after_seconds, **shown)
