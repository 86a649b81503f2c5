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
again for them for `unrestricted_ttl_ms`. The question goes over the ledger's
HTTP/1.1 binding of Admit when one is configured (`HttpAdmit`: the same
messages at a fraction of a grpc.aio call's CPU, see lockgate/lean_http.py),
else over gRPC (`GrpcAdmit`). When the ledger cannot be reached
the call goes ahead (`failure_mode: open`, the default: an outage of the
ledger must not stop inference, and usage is still spooled and metered) or is
refused with 503 (`closed`, for strict cost control).
"""

from __future__ import annotations

import logging
import time
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
from services.router.estimates import embeddings_usage
from services.router.table import Deployment
from services.router.tokens import estimate_prompt_tokens

log = logging.getLogger("lockgate.router.admission")

ADMISSIONS = Counter(
    "lockgate_router_admissions_total",
    "Admission checks by outcome (admitted, refused, skipped, unavailable)", ["outcome"],
)

#: A reservation outlives the call's deadline by this much before it expires.
_RESERVATION_SLACK_SECONDS = 60
#: While the ledger is away, say so at most this often.
_WARN_EVERY_SECONDS = 60
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
    """LedgerService/Admit over gRPC."""

    def __init__(self, channel: grpc.aio.Channel):
        self.stub = ledger_grpc.LedgerServiceStub(channel)

    async def __call__(self, request: ledger_pb.AdmitRequest, within: float
                       ) -> ledger_pb.AdmitResponse:
        try:
            return await self.stub.Admit(request, timeout=within)
        except grpc.aio.AioRpcError as exc:
            raise AdmissionUnavailable(exc.code().name) from None


class HttpAdmit:
    """LedgerService/Admit over the ledger's HTTP/1.1 binding."""

    def __init__(self, client: LeanHttpClient):
        self.client = client

    async def __call__(self, request: ledger_pb.AdmitRequest, within: float
                       ) -> ledger_pb.AdmitResponse:
        try:
            reply = await self.client.post(admit_http.PATH, request.SerializeToString(),
                                           admit_http.CONTENT_TYPE, within=within)
        except HttpCallFailed as exc:
            raise AdmissionUnavailable(str(exc)) from None
        if reply.status != 200:
            raise AdmissionUnavailable(f"HTTP {reply.status}: {reply.body[:200]!r}")
        try:
            return ledger_pb.AdmitResponse.FromString(reply.body)
        except DecodeError:
            raise AdmissionUnavailable("the answer is not an AdmitResponse") from None


class AdmissionClient:
    def __init__(self, ask: GrpcAdmit | HttpAdmit, *, failure_mode: str = "open",
                 timeout_seconds: float = 1.0, default_max_output_tokens: int = 4096):
        if failure_mode not in ("open", "closed"):
            raise ValueError("admission failure_mode must be 'open' or 'closed'")
        self.ask = ask
        self.failure_mode = failure_mode
        self.timeout_seconds = timeout_seconds
        self.default_max_output_tokens = default_max_output_tokens
        #: scopes -> time.monotonic() until which nothing applies to them
        self._unrestricted: BoundedLRU[tuple, float] = BoundedLRU(100_000)
        self._warned_at = -_WARN_EVERY_SECONDS

    async def admit(self, call, plan: list[Deployment], body: dict) -> list[tuple[str, str]]:
        """Admit the call or raise RateLimited (429) / ServiceUnavailable (503);
        returns the x-ratelimit-* headers to send (none without a limit)."""
        scopes = self._scopes(call)
        if self._skips(scopes):
            return []
        est = estimate(body, call.kind, self.default_max_output_tokens)
        remaining = (call.deadline - time.monotonic()) if call.deadline is not None else None
        ttl = int((remaining if remaining is not None else 600) + _RESERVATION_SLACK_SECONDS)
        request = self._request(
            call, max_cost_micro_usd=max_cost(plan, est),
            estimated_tokens=est.input_tokens + est.requested_output_tokens,
            reservation_ttl_seconds=ttl,
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
        return await self._ask(scopes, self._request(call, cache_hit=True))

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
    def _request(call, **fields) -> ledger_pb.AdmitRequest:
        caller = call.caller
        return ledger_pb.AdmitRequest(
            request_id=call.request_id, tenant_id=caller.tenant_id, team_id=caller.team_id,
            key_id=caller.key_id, subscription_id=caller.subscription_id, alias=call.alias,
            count_requests=1 if call.counts_requests else 0, **fields,
        )

    async def _ask(self, scopes: tuple, request: ledger_pb.AdmitRequest
                   ) -> list[tuple[str, str]]:
        try:
            reply = await self.ask(request, self.timeout_seconds)
        except AdmissionUnavailable as exc:
            ADMISSIONS.labels("unavailable").inc()
            if self.failure_mode == "closed":
                raise ServiceUnavailable(
                    "budget and rate limit checks are unavailable; try again shortly"
                ) from None
            now = time.monotonic()
            if now - self._warned_at >= _WARN_EVERY_SECONDS:  # not once per call in an outage
                self._warned_at = now
                log.warning("admission unavailable: calls admitted unchecked (failure_mode"
                            " open)", extra={"error": str(exc)})
            return []
        if reply.unrestricted_ttl_ms > 0:
            self._unrestricted.put(scopes, time.monotonic() + reply.unrestricted_ttl_ms / 1000)
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
