"""Rate limits: requests and tokens per minute on a tenant, team, key or model alias.

- Admin use cases: SetRateLimit (upsert by tenant, scope and scope id),
  ListRateLimits, DeleteRateLimit; tenant-scoped, team admins only for their
  own team.
- Requests are counted by `acquire_requests`, asked either at the edge (Envoy's
  rate limit filter asks the ledger's rate limit service,
  services/ledger/edge_ratelimit.py: gRPC and transcoded REST calls) or by
  admission (the router's HTTP listener, which Envoy's limiter does not see:
  services/ledger/admission.py). Each call is counted once, by one of them.
- Tokens are limited by admission (the router asks before a provider call):
  `check_tokens` compares the tokens already used in the window plus the call's
  estimate with each limit, without counting; the ledger counts the real tokens
  when the usage entry arrives (`usage_recorded`).

Which limits exist is answered from memory (`LimitIndex`): loaded at start,
updated by this process's Set/Delete at once, and re-read from the database
every few seconds for other replicas' changes (`LimitRefresher`). Counts live
in `RateCounters` (in-process, or Redis shared by every replica).

When the counters cannot be reached (Redis down), checks fail open: an outage of
the limiter must not take inference down, and usage is still metered.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from lockgate.errors import InvalidRequest, NotFound, PermissionDenied
from lockgate.identity import Identity
from lockgate.ids import new_id
from lockgate.metrics import Counter
from lockgate.periodic import Periodic
from lockgate.rate_headers import retry_after_seconds
from services.ledger.limits_store import RateLimitStore
from services.ledger.models import RateLimit
from services.ledger.rate_counters import (
    REQUESTS,
    TOKENS,
    WINDOW_MS,
    CountersUnavailable,
    RateCounters,
    Window,
    counter_name,
    wall_clock_ms,
)
from services.ledger.scopes import RATE_LIMIT_SCOPES, CallScopes

log = logging.getLogger("lockgate.ledger.limits")

#: Upper bounds of a limit: far above any real need, low enough that counts
#: never get near 2**63.
MAX_REQUESTS_PER_MINUTE = 10_000_000
MAX_TOKENS_PER_MINUTE = 10_000_000_000
MAX_ALIAS_LENGTH = 256
_ID_FORMATS = {
    "tenant": re.compile(r"ten_[A-Za-z0-9]{1,60}"),
    "team": re.compile(r"team_[A-Za-z0-9]{1,59}"),
    "key": re.compile(r"key_[A-Za-z0-9]{1,60}"),
    # A model alias travels in an HTTP header (x-lockgate-model): visible ASCII.
    "alias": re.compile(rf"[\x21-\x7e]{{1,{MAX_ALIAS_LENGTH}}}"),
}
_ID_HINTS = {
    "tenant": "a tenant id (ten_…)",
    "team": "a team id (team_…)",
    "key": "an API key id (key_…)",
    "alias": f"a model alias (1-{MAX_ALIAS_LENGTH} visible ASCII characters)",
}
_TENANT_WIDE_ROLES = frozenset({"tenant_admin", "platform_admin"})

CHECKS = Counter(
    "lockgate_ledger_rate_limit_checks_total",
    "Rate limit checks: kind requests (edge) or tokens (admission); outcome ok,"
    " over_limit, unlimited (no limit applies) or error (counters unavailable: allowed)",
    ["kind", "outcome"],
)
REQUESTS_COUNTED = Counter(
    "lockgate_ledger_rate_limit_requests_total",
    "Requests counted against request limits (counted: by the edge, by admission and by"
    " admission tickets ahead of their calls; uncounted: tickets handed back unused;"
    " window_ended: handed back after their window ended, nothing to take back)",
    ["outcome"],
)


@dataclass(frozen=True, slots=True)
class LimitRule:
    """One configured limit, as the in-memory index holds it."""

    rate_limit_id: str
    tenant_id: str
    scope: str
    scope_id: str
    requests_per_minute: int
    tokens_per_minute: int

    @classmethod
    def of(cls, row: RateLimit) -> LimitRule:
        return cls(row.rate_limit_id, row.tenant_id, row.scope, row.scope_id,
                   row.requests_per_minute, row.tokens_per_minute)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.tenant_id, self.scope, self.scope_id)

    @property
    def label(self) -> str:
        """How a message names it: "key key_3f…", "alias demo"."""
        return f"{self.scope} {self.scope_id}"

    def counter(self, kind: str) -> str:
        return counter_name(kind, self.tenant_id, self.scope, self.scope_id)


class LimitIndex:
    """Every configured limit by (tenant, scope, scope id): the hot path's view."""

    def __init__(self) -> None:
        self._rules: dict[tuple[str, str, str], LimitRule] = {}
        self._tenants: dict[str, int] = {}  # tenant -> number of its rules
        #: Bumped by every local change: a reload that raced with one is dropped.
        self.generation = 0

    def replace_all(self, rules: Iterable[LimitRule]) -> None:
        self._rules = {r.key: r for r in rules}
        tenants: dict[str, int] = {}
        for tenant_id, _, _ in self._rules:
            tenants[tenant_id] = tenants.get(tenant_id, 0) + 1
        self._tenants = tenants

    def put(self, rule: LimitRule) -> None:
        if rule.key not in self._rules:
            self._tenants[rule.tenant_id] = self._tenants.get(rule.tenant_id, 0) + 1
        self._rules[rule.key] = rule
        self.generation += 1

    def remove(self, key: tuple[str, str, str]) -> None:
        if self._rules.pop(key, None) is not None:
            left = self._tenants[key[0]] - 1
            if left:
                self._tenants[key[0]] = left
            else:
                del self._tenants[key[0]]
        self.generation += 1

    def applying(self, scopes: CallScopes) -> list[LimitRule]:
        """The limits a call counts against (at most one per scope)."""
        tenant_id = scopes.tenant_id
        if not tenant_id or tenant_id not in self._tenants:
            return []
        found = []
        for scope in RATE_LIMIT_SCOPES:
            scope_id = scopes.of(scope)
            if scope_id:
                rule = self._rules.get((tenant_id, scope, scope_id))
                if rule is not None:
                    found.append(rule)
        return found

    def __len__(self) -> int:
        return len(self._rules)


@dataclass(frozen=True, slots=True)
class RequestVerdict:
    """The answer for one request (limit 0: no request limit applies)."""

    allowed: bool
    limit: int = 0
    remaining: int = 0
    reset_ms: int = 0
    retry_after_seconds: int = 0
    message: str = ""


@dataclass(frozen=True, slots=True)
class TokenVerdict:
    allowed: bool
    #: The tightest applying tokens_per_minute (0: none applies).
    limit: int
    #: Tokens left in its window after this call's estimate.
    remaining: int
    #: Until that window resets.
    reset_ms: int
    #: When refused: seconds until a retry can succeed; 0 when it never can (the
    #: call alone is larger than the limit).
    retry_after_seconds: int
    #: When refused: names the limit (scope and id) and the rate.
    message: str


_UNLIMITED_TOKENS = TokenVerdict(True, 0, 0, 0, 0, "")


@dataclass(frozen=True, slots=True)
class Room:
    """What is left in the current window of a call's limits: the least of its
    request limits and the least of its token limits (None: none applies), with
    the limit each of those belongs to and when the window resets."""

    requests: int | None
    tokens: int | None
    request_limit: int = 0
    token_limit: int = 0
    reset_ms: int = 0


NO_LIMITS = Room(None, None)


def _least(rules: Sequence[LimitRule], limits: Sequence[int], counts: Sequence[int]
           ) -> tuple[int | None, int]:
    """(what is left of the tightest limit, that limit); (None, 0) without rules."""
    if not rules:
        return None, 0
    i = _tightest(rules, limits, counts, 0)
    return limits[i] - counts[i], limits[i]


def _tightest(rules: Sequence[LimitRule], limits: Sequence[int], used: Sequence[int],
              extra: int) -> int:
    """Index of the limit with the least room left after `extra` more."""
    return min(range(len(rules)), key=lambda i: (limits[i] - used[i] - extra, limits[i]))


class RateLimitService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        counters: RateCounters,
        *,
        clock_ms: Callable[[], int] = wall_clock_ms,
    ):
        self.sessions = sessions
        self.counters = counters
        self.index = LimitIndex()
        self._clock_ms = clock_ms
        self._warned_at = 0.0

    # -- admin use cases -------------------------------------------------------------

    async def set_limit(
        self, caller: Identity, scope: str, scope_id: str, requests_per_minute: int,
        tokens_per_minute: int,
    ) -> RateLimit:
        scope, scope_id = _checked_scope(caller, scope, scope_id)
        _check_rates(requests_per_minute, tokens_per_minute)
        _require_manager(caller, scope, scope_id)
        async with self.sessions() as session, session.begin():
            row = await RateLimitStore(session).upsert(
                new_id=new_id("rl"), tenant_id=caller.tenant_id, scope=scope,
                scope_id=scope_id, requests_per_minute=requests_per_minute,
                tokens_per_minute=tokens_per_minute, now=datetime.now(UTC),
            )
        self.index.put(LimitRule.of(row))
        return row

    async def list_limits(self, caller: Identity, scope: str = "",
                          scope_id: str = "") -> list[RateLimit]:
        if scope and scope not in RATE_LIMIT_SCOPES:
            raise InvalidRequest(
                f"unknown scope {scope!r}: use one of {', '.join(RATE_LIMIT_SCOPES)}",
                param="scope",
            )
        if scope_id and not scope:
            raise InvalidRequest("scope_id needs a scope", param="scope")
        async with self.sessions() as session:
            return await RateLimitStore(session).list_limits(caller.tenant_id, scope, scope_id)

    async def delete_limit(self, caller: Identity, rate_limit_id: str) -> None:
        if not rate_limit_id:
            raise InvalidRequest("rate_limit_id is required", param="rate_limit_id")
        async with self.sessions() as session, session.begin():
            store = RateLimitStore(session)
            row = await store.get(caller.tenant_id, rate_limit_id)
            if row is None:  # another tenant's id answers exactly like a missing one
                raise NotFound(f"rate limit {rate_limit_id!r} not found")
            _require_manager(caller, row.scope, row.scope_id)
            await store.delete(caller.tenant_id, rate_limit_id)
        self.index.remove((row.tenant_id, row.scope, row.scope_id))

    # -- the in-memory index ---------------------------------------------------------

    async def load(self) -> None:
        """(Re)build the index from the database: at start, then periodically."""
        generation = self.index.generation
        async with self.sessions() as session:
            rows = await RateLimitStore(session).all()
        if self.index.generation != generation:
            return  # a local Set/Delete landed meanwhile: the next reload has it
        self.index.replace_all(LimitRule.of(row) for row in rows)

    # -- requests (the edge, or admission) --------------------------------------------

    async def acquire_requests(self, scopes: CallScopes, hits: int = 1) -> RequestVerdict:
        """Count `hits` requests against every request limit of the call, all or
        nothing: a refused request counts nowhere, so a key over its own limit
        does not use up its team's or tenant's."""
        rules = [r for r in self.index.applying(scopes) if r.requests_per_minute > 0]
        if not rules:
            CHECKS.labels("requests", "unlimited").inc()
            return RequestVerdict(allowed=True)
        now = self._clock_ms()
        window = Window.at(now)
        limits = [r.requests_per_minute for r in rules]
        try:
            acquired, counts = await self.counters.acquire(
                window, [r.counter(REQUESTS) for r in rules], limits, hits
            )
        except CountersUnavailable as exc:
            self._counters_failed(exc, "requests")
            return RequestVerdict(allowed=True)
        reset_ms = window.reset_ms(self._clock_ms())
        if acquired:
            CHECKS.labels("requests", "ok").inc()
            REQUESTS_COUNTED.labels("counted").inc(hits)
            i = _tightest(rules, limits, counts, 0)
            return RequestVerdict(allowed=True, limit=limits[i],
                                  remaining=max(0, limits[i] - counts[i]), reset_ms=reset_ms)
        CHECKS.labels("requests", "over_limit").inc()
        i = _tightest(rules, limits, counts, hits)
        rule, retry = rules[i], retry_after_seconds(reset_ms)
        if hits > limits[i]:
            message = (f"Request rate limit of {rule.label} is {limits[i]} requests per minute:"
                       f" {hits} requests at once can never fit.")
        else:
            message = (f"Rate limit reached for {rule.label} on requests per minute:"
                       f" limit {limits[i]}, used {counts[i]}, requested {hits}."
                       f" Please try again in {retry}s.")
        return RequestVerdict(allowed=False, limit=limits[i],
                              remaining=max(0, limits[i] - counts[i]), reset_ms=reset_ms,
                              retry_after_seconds=retry, message=message)

    # -- admission tickets: requests counted ahead of their calls ----------------------

    async def room(self, scopes: CallScopes, *, count_requests: bool) -> Room:
        """What is left of the call's request limits (when it counts requests) and
        token limits in the current window. Counters out of reach: no room (a
        ticket is never granted unchecked)."""
        rules = self.index.applying(scopes)
        requests = [r for r in rules if r.requests_per_minute > 0] if count_requests else []
        tokens = [r for r in rules if r.tokens_per_minute > 0]
        if not requests and not tokens:
            return NO_LIMITS
        window = Window.at(self._clock_ms())
        names = [r.counter(REQUESTS) for r in requests] + [r.counter(TOKENS) for r in tokens]
        try:
            counts = await self.counters.read(window, names)
        except CountersUnavailable as exc:
            self._warn(exc)
            return Room(0 if requests else None, 0 if tokens else None)
        request_left, request_limit = _least(
            requests, [r.requests_per_minute for r in requests], counts[:len(requests)])
        token_left, token_limit = _least(
            tokens, [r.tokens_per_minute for r in tokens], counts[len(requests):])
        return Room(request_left, token_left, request_limit, token_limit,
                    window.reset_ms(self._clock_ms()))

    def now_ms(self) -> int:
        return self._clock_ms()

    async def count_ahead(self, scopes: CallScopes, hits: int) -> Window | None:
        """Count `hits` requests now, for calls still to come (all or nothing, as
        `acquire_requests`); returns the window they were counted in, or None when
        they do not fit or the counters are out of reach."""
        rules = [r for r in self.index.applying(scopes) if r.requests_per_minute > 0]
        window = Window.at(self._clock_ms())
        if not rules or hits <= 0:
            return window
        try:
            acquired, _ = await self.counters.acquire(
                window, [r.counter(REQUESTS) for r in rules],
                [r.requests_per_minute for r in rules], hits)
        except CountersUnavailable as exc:
            self._warn(exc)
            return None
        if not acquired:
            return None
        REQUESTS_COUNTED.labels("counted").inc(hits)
        return window

    async def uncount(self, scopes: CallScopes, hits: int, window_start_ms: int) -> None:
        """Take back `hits` requests counted ahead (`count_ahead`) in the window that
        starts at `window_start_ms`, while it lasts; nothing once it has ended."""
        if hits <= 0 or window_start_ms <= 0 or window_start_ms % WINDOW_MS:
            return
        window = Window(window_start_ms)
        rules = [r for r in self.index.applying(scopes) if r.requests_per_minute > 0]
        if not rules:
            return
        if window.end_ms <= self._clock_ms():
            REQUESTS_COUNTED.labels("window_ended").inc(hits)
            return
        try:
            await self.counters.add(window, [r.counter(REQUESTS) for r in rules], -hits)
        except CountersUnavailable as exc:
            self._warn(exc)
            return
        REQUESTS_COUNTED.labels("uncounted").inc(hits)

    # -- tokens (admission) ----------------------------------------------------------

    def has_token_limits(self, scopes: CallScopes) -> bool:
        """Whether any token limit applies to the call (in memory, no I/O)."""
        return self.limited_kinds(scopes)[1]

    def limited_kinds(self, scopes: CallScopes) -> tuple[bool, bool]:
        """(a request limit applies, a token limit applies) to the call, from one
        look at the index (in memory, no I/O)."""
        rules = self.index.applying(scopes)
        return (any(r.requests_per_minute > 0 for r in rules),
                any(r.tokens_per_minute > 0 for r in rules))

    async def check_tokens(self, scopes: CallScopes, estimated_tokens: int) -> TokenVerdict:
        """Would `estimated_tokens` more fit in every token limit of the call? Counts
        nothing: the usage entry of the call is counted when it is recorded."""
        rules = [r for r in self.index.applying(scopes) if r.tokens_per_minute > 0]
        if not rules:
            CHECKS.labels("tokens", "unlimited").inc()
            return _UNLIMITED_TOKENS
        estimated = max(0, int(estimated_tokens))
        now = self._clock_ms()
        window = Window.at(now)
        try:
            used = await self.counters.read(window, [r.counter(TOKENS) for r in rules])
        except CountersUnavailable as exc:
            self._counters_failed(exc, "tokens")
            return _UNLIMITED_TOKENS
        reset_ms = window.reset_ms(self._clock_ms())
        limits = [r.tokens_per_minute for r in rules]
        i = _tightest(rules, limits, used, estimated)
        rule, limit = rules[i], limits[i]
        remaining = limit - used[i] - estimated
        if remaining >= 0:
            CHECKS.labels("tokens", "ok").inc()
            return TokenVerdict(True, limit, remaining, reset_ms, 0, "")
        CHECKS.labels("tokens", "over_limit").inc()
        if estimated > limit:
            message = (f"Request too large for {rule.label} on tokens per minute: limit"
                       f" {limit}, requested {estimated}. A call this large can never fit in"
                       " this limit: send fewer tokens (shorter input or a lower max_tokens)"
                       " or raise the limit.")
            return TokenVerdict(False, limit, 0, reset_ms, 0, message)
        retry = retry_after_seconds(reset_ms)
        message = (f"Rate limit reached for {rule.label} on tokens per minute: limit {limit},"
                   f" used {used[i]}, requested {estimated}. Please try again in {retry}s.")
        return TokenVerdict(False, limit, 0, reset_ms, retry, message)

    async def usage_recorded(self, entries: Sequence[dict]) -> None:
        """A LedgerService listener: add each new entry's input + output tokens to every
        token limit that applies, in the window the call was made in (an entry that
        arrives after its window ended no longer limits anything). Cache hits made no
        provider call and do not count."""
        now = self._clock_ms()
        batches: dict[tuple[Window, tuple[str, ...]], int] = {}
        # A batch is mostly one caller's calls: look their limits up once per scopes.
        applying: dict[CallScopes, list[LimitRule]] = {}
        for entry in entries:
            if entry.get("cache_hit"):
                continue
            tokens = int(entry.get("input_tokens") or 0) + int(entry.get("output_tokens") or 0)
            if tokens <= 0:
                continue
            scopes = CallScopes.of_entry(entry)
            rules = applying.get(scopes)
            if rules is None:
                rules = applying[scopes] = [r for r in self.index.applying(scopes)
                                            if r.tokens_per_minute > 0]
            if not rules:
                continue
            created = entry.get("created_at")
            if isinstance(created, datetime):
                aware = created if created.tzinfo else created.replace(tzinfo=UTC)
                at = int(aware.timestamp() * 1000)
            else:
                at = now
            window = Window.at(min(at, now))
            if window.end_ms <= now:
                continue
            names = tuple(r.counter(TOKENS) for r in rules)
            batches[(window, names)] = batches.get((window, names), 0) + tokens
        for (window, names), tokens in batches.items():
            try:
                await self.counters.add(window, names, tokens)
            except CountersUnavailable as exc:
                self._counters_failed(exc, "tokens")
                return

    def _counters_failed(self, exc: CountersUnavailable, kind: str) -> None:
        CHECKS.labels(kind, "error").inc()
        self._warn(exc)

    def _warn(self, exc: CountersUnavailable) -> None:
        now = time.monotonic()
        if now - self._warned_at >= 60:  # at most one line a minute in an outage
            self._warned_at = now
            log.warning("rate limit counters unavailable, allowing calls: %s", exc)


class LimitRefresher(Periodic):
    """Re-reads every limit from the database every `interval` seconds, so each
    replica sees the others' changes. Closing it also closes the counters."""

    def __init__(self, service: RateLimitService, interval: float = 5.0):
        super().__init__("rate-limit-refresh", interval, service.load)
        self.service = service

    async def close(self) -> None:
        await super().close()
        await self.service.counters.close()


# -- checks ------------------------------------------------------------------------------


def _checked_scope(caller: Identity, scope: str, scope_id: str) -> tuple[str, str]:
    if scope not in RATE_LIMIT_SCOPES:
        raise InvalidRequest(
            f"scope must be one of {', '.join(RATE_LIMIT_SCOPES)}, not {scope!r}", param="scope"
        )
    if scope == "tenant":
        if scope_id and scope_id != caller.tenant_id:
            raise InvalidRequest(
                "scope_id of a tenant limit must be empty or the caller's tenant id",
                param="scope_id",
            )
        return scope, caller.tenant_id
    if not scope_id:
        raise InvalidRequest(f"scope_id is required for scope {scope!r}: {_ID_HINTS[scope]}",
                             param="scope_id")
    if not _ID_FORMATS[scope].fullmatch(scope_id):
        raise InvalidRequest(f"scope_id {scope_id[:80]!r} is not {_ID_HINTS[scope]}",
                             param="scope_id")
    return scope, scope_id


def _check_rates(requests_per_minute: int, tokens_per_minute: int) -> None:
    if requests_per_minute < 0 or tokens_per_minute < 0:
        raise InvalidRequest("rates cannot be negative")
    if requests_per_minute == 0 and tokens_per_minute == 0:
        raise InvalidRequest(
            "set requests_per_minute, tokens_per_minute or both (to remove a limit, delete it)"
        )
    if requests_per_minute > MAX_REQUESTS_PER_MINUTE:
        raise InvalidRequest(f"requests_per_minute is at most {MAX_REQUESTS_PER_MINUTE:,}",
                             param="requests_per_minute")
    if tokens_per_minute > MAX_TOKENS_PER_MINUTE:
        raise InvalidRequest(f"tokens_per_minute is at most {MAX_TOKENS_PER_MINUTE:,}",
                             param="tokens_per_minute")


def _require_manager(caller: Identity, scope: str, scope_id: str) -> None:
    """Tenant and platform admins manage every limit of their tenant; team admins
    only their own team's."""
    roles = set(caller.roles)
    if roles & _TENANT_WIDE_ROLES:
        return
    if "team_admin" in roles:
        if scope == "team" and caller.team_id and scope_id == caller.team_id:
            return
        raise PermissionDenied("team admins can only manage their own team's rate limit")
    raise PermissionDenied("managing rate limits needs the tenant_admin or team_admin role")
