"""Asks the ledger whether a call may go to a provider (budgets, rate limits).

Before the first provider attempt, the router sends LedgerService/Admit the
call's scopes, the most it can cost and the tokens it is expected to use:

- the request itself, on calls that came in on the router's HTTP listener
  (`Call.counts_requests`): Envoy's rate limiter does not see those, so
  admission counts them against requests-per-minute limits instead. Calls
  answered from the response cache are counted too (`count_cache_hit`), and
  nothing else is asked for them;

- most possible cost: the prompt's tokens (counted with the shipped
  tokenizer) at the input price, plus `max_completion_tokens` / `max_tokens`
  (times `n`), or `default_max_output_tokens` when the request sets none, at
  the output price, for the most expensive deployment the call may fail over
  to. The ledger holds that much on every budget that applies until the
  call's usage entry settles it;
- expected tokens: prompt tokens plus the requested output maximum (none
  when unset), checked against tokens-per-minute limits.

When the ledger says nothing applies to these scopes, the router does not ask
again for them for `unrestricted_ttl_ms`. Scopes with steady traffic ask for
admission tickets too: calls admitted ahead, which later calls use without a
round trip (admission_tickets.py; refilled in the background before they run
out, handed back unused when they expire). The question goes over the ledger's
HTTP/1.1 binding of Admit when one is configured (`HttpAdmit`: the same
messages at a fraction of a grpc.aio call's CPU, see lockgate/lean_http.py),
else over gRPC (`GrpcAdmit`). When the ledger cannot be reached
the call goes ahead (`failure_mode: open`, the default: an outage of the
ledger must not stop inference, and usage is still spooled and metered) or is
refused with 503 (`closed`, for strict cost control).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass

import grpc
from google.protobuf.message import DecodeError

from lockgate import ledger_admit_http as admit_http
from lockgate import rate_headers
from lockgate.errors import RateLimited, RequestRateLimited, ServiceUnavailable
from lockgate.lean_http import HttpCallFailed, LeanHttpClient
from lockgate.ledger.v1 import ledger_service_pb2 as ledger_pb
from lockgate.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc
from lockgate.lru import BoundedLRU
from lockgate.metrics import Counter
from lockgate.periodic import Periodic
from services.router.admission_tickets import CAP_HEADROOM, REFILL_AT, Grant, TicketBook
from services.router.estimates import embeddings_usage
from services.router.table import Deployment
from services.router.tokens import estimate_prompt_tokens

log = logging.getLogger("lockgate.router.admission")

ADMISSIONS = Counter(
    "lockgate_router_admissions_total",
    "Admission checks by outcome (admitted, refused, skipped, unavailable; ticket: admitted"
    " ahead, no round trip)", ["outcome"],
)
TICKETS = Counter(
    "lockgate_router_admission_tickets_total",
    "Admission tickets granted by the ledger, and handed back unused (returned, or"
    " return_failed: their reservations expire on their own)", ["outcome"],
)

#: A reservation outlives the call's deadline by this much before it expires.
_RESERVATION_SLACK_SECONDS = 60
#: While the ledger is away, say so at most this often.
_WARN_EVERY_SECONDS = 60
#: How often expired tickets are looked for and handed back.
_TICKET_SWEEP_SECONDS = 0.25
#: Admit's refusal codes -> the error the caller gets (and its OpenAI code).
_REFUSALS = {"request_rate_limited": (RequestRateLimited, "rate_limit_exceeded")}


@dataclass(frozen=True, slots=True)
class Estimate:
    input_tokens: int
    max_output_tokens: int
    #: The output maximum the caller asked for (0: none).
    requested_output_tokens: int


def estimate(body: dict, kind: str, default_max_output_tokens: int) -> Estimate:
    if kind == "embeddings":
        return Estimate(embeddings_usage(body).input, 0, 0)
    requested = body.get("max_completion_tokens") or body.get("max_tokens") or 0
    requested = requested if isinstance(requested, int) and requested > 0 else 0
    n = body.get("n")
    choices = n if isinstance(n, int) and n > 1 else 1
    return Estimate(
        estimate_prompt_tokens(body),
        (requested or default_max_output_tokens) * choices,
        requested * choices,
    )


def max_cost(plan: list[Deployment], est: Estimate) -> int:
    """What the call costs at most on any deployment it may use (micro-USD)."""
    costs = [d.price.cost_micro_usd(est.input_tokens, est.max_output_tokens)
             for d in plan if d.price is not None]
    return max(costs, default=0)


class AdmissionUnavailable(Exception):
    """The ledger did not answer an admission check (the failure mode applies)."""


class GrpcAdmit:
    """LedgerService/Admit and ReturnTickets over gRPC."""

    def __init__(self, channel: grpc.aio.Channel):
        self.stub = ledger_grpc.LedgerServiceStub(channel)

    async def __call__(self, request: ledger_pb.AdmitRequest, within: float
                       ) -> ledger_pb.AdmitResponse:
        try:
            return await self.stub.Admit(request, timeout=within)
        except grpc.aio.AioRpcError as exc:
            raise AdmissionUnavailable(exc.code().name) from None

    async def return_tickets(self, request: ledger_pb.ReturnTicketsRequest,
                             within: float) -> None:
        try:
            await self.stub.ReturnTickets(request, timeout=within)
        except grpc.aio.AioRpcError as exc:
            raise AdmissionUnavailable(exc.code().name) from None


class HttpAdmit:
    """LedgerService/Admit and ReturnTickets over the ledger's HTTP/1.1 binding."""

    def __init__(self, client: LeanHttpClient):
        self.client = client

    async def __call__(self, request: ledger_pb.AdmitRequest, within: float
                       ) -> ledger_pb.AdmitResponse:
        body = await self._post(admit_http.PATH, request.SerializeToString(), within)
        try:
            return ledger_pb.AdmitResponse.FromString(body)
        except DecodeError:
            raise AdmissionUnavailable("the answer is not an AdmitResponse") from None

    async def return_tickets(self, request: ledger_pb.ReturnTicketsRequest,
                             within: float) -> None:
        await self._post(admit_http.RETURN_TICKETS_PATH, request.SerializeToString(), within)

    async def _post(self, path: str, body: bytes, within: float) -> bytes:
        try:
            reply = await self.client.post(path, body, admit_http.CONTENT_TYPE, within=within)
        except HttpCallFailed as exc:
            raise AdmissionUnavailable(str(exc)) from None
        if reply.status != 200:
            raise AdmissionUnavailable(f"HTTP {reply.status}: {reply.body[:200]!r}")
        return reply.body


class AdmissionClient:
    def __init__(self, ask: GrpcAdmit | HttpAdmit, *, failure_mode: str = "open",
                 timeout_seconds: float = 1.0, default_max_output_tokens: int = 4096,
                 tickets: bool = True):
        if failure_mode not in ("open", "closed"):
            raise ValueError("admission failure_mode must be 'open' or 'closed'")
        self.ask = ask
        self.failure_mode = failure_mode
        self.timeout_seconds = timeout_seconds
        self.default_max_output_tokens = default_max_output_tokens
        #: scopes -> time.monotonic() until which nothing applies to them
        self._unrestricted: BoundedLRU[tuple, float] = BoundedLRU(100_000)
        self._warned_at = -_WARN_EVERY_SECONDS
        #: Admission tickets (None: every call asks the ledger).
        self.tickets = TicketBook() if tickets else None
        self._sweeper = Periodic("admission-tickets", _TICKET_SWEEP_SECONDS,
                                 self.return_expired)
        self._tasks: set[asyncio.Task] = set()

    # -- lifecycle (GrpcService.background) ------------------------------------------------

    def start(self) -> None:
        if self.tickets is not None:
            self._sweeper.start()

    async def close(self) -> None:
        """Stop asking for tickets and hand back every unused one."""
        await self._sweeper.close()
        if self._tasks:  # grants on their way: let them land, so they can go back
            await asyncio.wait(list(self._tasks), timeout=self.timeout_seconds)
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.tickets is not None:
            try:  # bounded: a ledger that is gone must not hold up the stop
                async with asyncio.timeout(2 * self.timeout_seconds):
                    await self._give_back(self.tickets.drain())
            except TimeoutError:
                log.info("unused admission tickets not handed back: the ledger is slow")

    # -- calls --------------------------------------------------------------------------------

    async def admit(self, call, plan: list[Deployment], body: dict) -> list[tuple[str, str]]:
        """Admit the call or raise RateLimited (429) / ServiceUnavailable (503);
        returns the x-ratelimit-* headers to send (none without a limit)."""
        scopes = self._scopes(call)
        if self._skips(scopes):
            return []
        est = estimate(body, call.kind, self.default_max_output_tokens)
        cost = max_cost(plan, est)
        tokens = est.input_tokens + est.requested_output_tokens
        wanted = self.tickets.wanted(scopes) if self.tickets is not None else 0
        if self.tickets is not None:
            taken = self.tickets.take(scopes, cost, tokens)
            if taken is not None:
                call.admission_id, headers = taken
                ADMISSIONS.labels("ticket").inc()
                if (wanted and self.tickets.unused(scopes) <= wanted * REFILL_AT
                        and self.tickets.start_asking(scopes)):
                    self._spawn(self._refill(scopes, wanted, cost, tokens))
                return headers
        remaining = (call.deadline - time.monotonic()) if call.deadline is not None else None
        ttl = int((remaining if remaining is not None else 600) + _RESERVATION_SLACK_SECONDS)
        fields: dict = {}
        if wanted and self.tickets.start_asking(scopes):  # this call asks for the next ones
            fields = _ticket_fields(wanted, cost, tokens)
        request = self._request(
            scopes, call.request_id, max_cost_micro_usd=cost, estimated_tokens=tokens,
            reservation_ttl_seconds=ttl, **fields,
        )
        return await self._ask(scopes, request)

    async def count_cache_hit(self, call) -> list[tuple[str, str]]:
        """Count a response-cache hit against request limits (when this transport
        has no edge limiter); it reserves nothing. Raises RateLimited over a limit."""
        if not call.counts_requests:
            return []
        scopes = self._scopes(call)
        if self._skips(scopes):
            return []
        return await self._ask(scopes, self._request(scopes, call.request_id, cache_hit=True))

    @staticmethod
    def _scopes(call) -> tuple:
        caller = call.caller
        # Whether the call counts requests is part of the key: "nothing applies"
        # to a call the edge counted says nothing of request limits.
        return (caller.tenant_id, caller.team_id, caller.key_id, caller.subscription_id,
                call.alias, call.counts_requests)

    def _skips(self, scopes: tuple) -> bool:
        until = self._unrestricted.get(scopes)
        if until is not None and until > time.monotonic():
            ADMISSIONS.labels("skipped").inc()
            return True
        return False

    @staticmethod
    def _request(scopes: tuple, request_id: str, **fields) -> ledger_pb.AdmitRequest:
        tenant_id, team_id, key_id, subscription_id, alias, counts_requests = scopes
        return ledger_pb.AdmitRequest(
            request_id=request_id, tenant_id=tenant_id, team_id=team_id, key_id=key_id,
            subscription_id=subscription_id, alias=alias,
            count_requests=1 if counts_requests else 0, **fields,
        )

    async def _ask(self, scopes: tuple, request: ledger_pb.AdmitRequest
                   ) -> list[tuple[str, str]]:
        try:
            if request.tickets:
                # Shielded: a caller that goes away must not lose the tickets the
                # ledger grants (they would stay counted and reserved).
                reply = await asyncio.shield(self._spawn(self._fetch(scopes, request)))
            else:
                reply = await self._fetch(scopes, request)
        except AdmissionUnavailable as exc:
            ADMISSIONS.labels("unavailable").inc()
            if self.failure_mode == "closed":
                raise ServiceUnavailable(
                    "budget and rate limit checks are unavailable; try again shortly"
                ) from None
            self._warn_unavailable(exc)
            return []
        headers = _limit_headers(reply)
        if not reply.admitted:
            ADMISSIONS.labels("refused").inc()
            kind, code = _REFUSALS.get(reply.code, (RateLimited, reply.code))
            error = kind(reply.message, code=code)
            if reply.retry_after_seconds > 0:
                error.retry_after = reply.retry_after_seconds
            error.headers = tuple(headers)
            raise error
        ADMISSIONS.labels("admitted").inc()
        return headers

    async def _fetch(self, scopes: tuple, request: ledger_pb.AdmitRequest
                     ) -> ledger_pb.AdmitResponse:
        """Ask, and keep what the answer says for later calls (`_keep`)."""
        try:
            reply = await self.ask(request, self.timeout_seconds)
        finally:
            if request.tickets:
                self.tickets.stop_asking(scopes)
        self._keep(scopes, request, reply)
        return reply

    def _keep(self, scopes: tuple, request: ledger_pb.AdmitRequest,
              reply: ledger_pb.AdmitResponse) -> None:
        """What an answer says for later calls: nothing applies, or tickets."""
        if reply.unrestricted_ttl_ms > 0:
            self._unrestricted.put(scopes, time.monotonic() + reply.unrestricted_ttl_ms / 1000)
        if reply.ticket_ids and self.tickets is not None:
            TICKETS.labels("granted").inc(len(reply.ticket_ids))
            self.tickets.add(scopes, reply, request.ticket_max_cost_micro_usd,
                             request.ticket_tokens)

    def _warn_unavailable(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY_SECONDS:  # not once per call in an outage
            self._warned_at = now
            log.warning("admission unavailable: calls admitted unchecked (failure_mode"
                        " open)", extra={"error": str(exc)})

    # -- tickets in the background ------------------------------------------------------------

    def _spawn(self, work: Coroutine) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(_settled)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _refill(self, scopes: tuple, wanted: int, cost: int, tokens: int) -> None:
        """Ask for tickets before the ones left run out (no call waits for it)."""
        try:
            await self._fetch(scopes, self._request(scopes, "", **_ticket_fields(wanted, cost,
                                                                                 tokens)))
        except AdmissionUnavailable:
            pass  # the next calls ask for themselves, and meet the failure mode

    async def return_expired(self) -> None:
        """Hand back the unused tickets of expired grants (every quarter second)."""
        if self.tickets is not None:
            await self._give_back(self.tickets.expired())

    async def _give_back(self, grants: list[Grant]) -> None:
        for grant in grants:
            tenant_id, team_id, key_id, subscription_id, alias, counts_requests = grant.scopes
            request = ledger_pb.ReturnTicketsRequest(
                tenant_id=tenant_id, team_id=team_id, key_id=key_id,
                subscription_id=subscription_id, alias=alias,
                count_requests=1 if counts_requests else 0, ticket_ids=grant.ids,
                window_start_ms=grant.window_start_ms,
            )
            try:
                await self.ask.return_tickets(request, self.timeout_seconds)
            except AdmissionUnavailable as exc:
                # Conservative: the reservations expire on their own, the
                # requests stay counted until their window ends.
                TICKETS.labels("return_failed").inc(len(grant.ids))
                log.info("unused admission tickets not handed back",
                         extra={"tickets": len(grant.ids), "error": str(exc)})
                continue
            TICKETS.labels("returned").inc(len(grant.ids))


def _settled(task: asyncio.Task) -> None:
    """Retrieve a background ask's outcome: its caller may have gone away, and
    an unavailable ledger is already handled where it matters."""
    if not task.cancelled():
        task.exception()


def _ticket_fields(wanted: int, cost: int, tokens: int) -> dict:
    """An AdmitRequest's ask for tickets, each good for calls like this one."""
    return {"tickets": wanted, "ticket_max_cost_micro_usd": cost * CAP_HEADROOM,
            "ticket_tokens": tokens * CAP_HEADROOM}


def _limit_headers(reply: ledger_pb.AdmitResponse) -> list[tuple[str, str]]:
    """The x-ratelimit-*-requests and -tokens headers of the limits that apply."""
    headers: list[tuple[str, str]] = []
    if reply.request_limit > 0:
        headers.extend(rate_headers.headers("requests", reply.request_limit,
                                            reply.request_remaining,
                                            reply.request_reset_ms).items())
    if reply.token_limit > 0:
        headers.extend(rate_headers.headers("tokens", reply.token_limit, reply.token_remaining,
                                            reply.token_reset_ms).items())
    return headers
