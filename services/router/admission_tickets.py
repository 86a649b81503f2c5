"""Admission tickets, the router's side: calls the ledger admitted ahead, used
without asking it again (services/ledger/admission.py says what a ticket holds
and when the ledger grants one).

The book keeps, per scopes (tenant, team, key, subscription, alias, and whether
the call counts requests), the unused tickets of each grant. A call takes one
when its most possible cost and its tokens are within what the grant was asked
for, and the grant has not expired. How many to ask for follows the scopes'
own traffic: about as many calls as they made in the last second, so a quiet
key asks for none and few tickets expire unused. The unused tickets of an
expired grant are handed back to the ledger (ReturnTickets), which releases
their reservations and uncounts their requests.

This module holds the state and does no I/O: AdmissionClient asks and returns.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from lockgate import rate_headers
from lockgate.ledger.v1 import ledger_service_pb2 as ledger_pb

#: Tickets asked for at most at once (the ledger grants at most as many).
MAX_WANTED = 256
#: More are asked for once no more than this share of a grant's worth is left:
#: early, so that a ledger slowed for a moment (a batch of usage entries to
#: write) does not leave calls to ask for themselves behind it.
REFILL_AT = 0.75
#: Scopes that made fewer calls than this in the last second ask for none: a
#: grant and its return would cost more round trips than they save.
MIN_WANTED = 4
#: Calls are counted per second to size the next grant.
RATE_SECONDS = 1.0
#: A ticket is asked for with this much room above the call that asked (twice
#: its most possible cost and tokens), so that similar calls can use it too.
CAP_HEADROOM = 2
#: Scopes tracked at most; calls of scopes beyond it ask the ledger each time.
MAX_POOLS = 10_000


@dataclass(slots=True)
class Grant:
    """One AdmitResponse's tickets and what they were granted for."""

    scopes: tuple
    ids: list[str]
    max_cost_micro_usd: int
    max_tokens: int
    #: time.monotonic() after which no ticket of it may be used.
    expires_at: float
    window_start_ms: int
    #: The limits the grant's answer reported, to tell each call that uses a
    #: ticket what is left (request_remaining: before any of these tickets).
    request_limit: int
    request_remaining: int
    token_limit: int
    token_remaining: int
    reset_at: float
    used: int = 0

    def fits(self, cost_micro_usd: int, tokens: int) -> bool:
        return cost_micro_usd <= self.max_cost_micro_usd and tokens <= self.max_tokens

    def headers(self, now: float) -> list[tuple[str, str]]:
        """The x-ratelimit-* headers for the call that just used a ticket."""
        reset_ms = max(0, int((self.reset_at - now) * 1000))
        headers: list[tuple[str, str]] = []
        if self.request_limit > 0:
            # The scopes end with whether the calls count requests (one each).
            remaining = max(0, self.request_remaining - self.used * int(self.scopes[-1]))
            headers.extend(rate_headers.headers("requests", self.request_limit, remaining,
                                                reset_ms).items())
        if self.token_limit > 0:
            headers.extend(rate_headers.headers("tokens", self.token_limit,
                                                self.token_remaining, reset_ms).items())
        return headers


@dataclass(slots=True)
class _Pool:
    grants: deque[Grant] = field(default_factory=deque)
    #: A grant is being asked for: other calls do not ask for one too.
    asking: bool = False
    #: Calls in the current second, and in the one before.
    calls: int = 0
    previous_calls: int = 0
    second_started: float = 0.0


class TicketBook:
    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 max_pools: int = MAX_POOLS):
        self.clock = clock
        self.max_pools = max_pools
        self._pools: dict[tuple, _Pool] = {}
        #: Expired grants with unused tickets, to hand back (`expired`).
        self._spent: list[Grant] = []

    def wanted(self, scopes: tuple) -> int:
        """Note one call of `scopes`; returns how many tickets a grant for them
        should ask for now (0: none)."""
        now = self.clock()
        pool = self._pools.get(scopes)
        if pool is None:
            if len(self._pools) >= self.max_pools:
                return 0
            pool = self._pools[scopes] = _Pool(second_started=now)
        elapsed = now - pool.second_started
        if elapsed >= RATE_SECONDS:
            pool.previous_calls = pool.calls if elapsed < 2 * RATE_SECONDS else 0
            pool.calls = 0
            pool.second_started = now
        pool.calls += 1
        demand = max(pool.previous_calls, pool.calls)
        return min(MAX_WANTED, demand) if demand >= MIN_WANTED else 0

    def take(self, scopes: tuple, cost_micro_usd: int, tokens: int
             ) -> tuple[str, list[tuple[str, str]]] | None:
        """A ticket for a call of `scopes` that costs at most `cost_micro_usd` and
        uses at most `tokens`, with the headers to send; None when there is none."""
        pool = self._pools.get(scopes)
        if pool is None:
            return None
        now = self.clock()
        self._drop_expired(pool, now)
        for grant in pool.grants:
            if grant.ids and grant.fits(cost_micro_usd, tokens):
                ticket = grant.ids.pop()
                grant.used += 1
                headers = grant.headers(now)
                if not grant.ids:
                    pool.grants.remove(grant)
                return ticket, headers
        return None

    def unused(self, scopes: tuple) -> int:
        pool = self._pools.get(scopes)
        return sum(len(g.ids) for g in pool.grants) if pool is not None else 0

    def start_asking(self, scopes: tuple) -> bool:
        """Whether the caller should ask for a grant (True: it now is asking,
        until `add` or `stop_asking`); False when another caller already is."""
        pool = self._pools.get(scopes)
        if pool is None or pool.asking:
            return False
        pool.asking = True
        return True

    def stop_asking(self, scopes: tuple) -> None:
        pool = self._pools.get(scopes)
        if pool is not None:
            pool.asking = False

    def add(self, scopes: tuple, reply: ledger_pb.AdmitResponse, max_cost_micro_usd: int,
            max_tokens: int) -> None:
        """Keep the tickets of `reply`, a grant asked for with these caps."""
        self.stop_asking(scopes)
        if not reply.ticket_ids:
            return
        now = self.clock()
        grant = Grant(
            scopes, list(reply.ticket_ids), max_cost_micro_usd, max_tokens,
            now + reply.ticket_ttl_ms / 1000, reply.ticket_window_start_ms,
            reply.request_limit, reply.request_remaining, reply.token_limit,
            reply.token_remaining, now + reply.request_reset_ms / 1000
            if reply.request_limit > 0 else now + reply.token_reset_ms / 1000,
        )
        pool = self._pools.get(scopes)
        if pool is None:  # dropped as idle meanwhile: hand the tickets back
            self._spent.append(grant)
            return
        pool.grants.append(grant)

    def expired(self) -> list[Grant]:
        """Takes out every expired grant that has unused tickets (to hand back), and
        forgets scopes with no grants that made no call for two seconds."""
        now = self.clock()
        for scopes, pool in list(self._pools.items()):
            self._drop_expired(pool, now)
            idle = now - pool.second_started >= 2 * RATE_SECONDS
            if not pool.grants and not pool.asking and idle:
                del self._pools[scopes]
        spent, self._spent = self._spent, []
        return spent

    def drain(self) -> list[Grant]:
        """Takes out every grant with unused tickets (the router is stopping)."""
        grants = self.expired()
        for pool in self._pools.values():
            grants.extend(g for g in pool.grants if g.ids)
            pool.grants.clear()
        return grants

    def _drop_expired(self, pool: _Pool, now: float) -> None:
        kept = deque(g for g in pool.grants if g.expires_at > now and g.ids)
        if len(kept) != len(pool.grants):
            self._spent.extend(g for g in pool.grants if g.expires_at <= now and g.ids)
            pool.grants = kept
