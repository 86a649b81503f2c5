"""Router use cases: alias -> allowed deployments -> ordered by strategy ->
provider calls with retries, circuit breakers and failover -> metering.

For each call:

1. the alias is looked up in the current routing table (404 when unknown);
2. routing policy keeps the deployments this caller may use (403 when none);
3. the alias's strategy orders them (strategies.py);
4. each deployment in turn, skipping those whose breaker is open or that are
   at their in-flight limit: up to `retry.attempts` attempts, with jittered
   exponential backoff (or the provider's Retry-After when it is short
   enough), for retryable failures only (429, 5xx, 529, timeouts, connection
   resets); then the next deployment. Everything is bounded by the call's
   deadline (the alias's `timeout_seconds` and the caller's gRPC deadline);
5. streams fail over only until their first chunk: after it a failure ends
   the stream (the servicer reports it in-band) and what was delivered is
   billed;
6. the call is metered (metering.py), errors and cancellations included.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import orjson
from google.protobuf.timestamp_pb2 import Timestamp

from lockgate.errors import (
    LockgateError,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from lockgate.identity import Identity
from lockgate.ledger.v1 import ledger_service_pb2 as ledger_pb
from lockgate.metrics import Counter
from lockgate.prices import Price
from services.router import strategies
from services.router.admission import AdmissionClient
from services.router.cache import (
    IncompleteStream,
    ResponseCache,
    UncacheableRequest,
    cache_key,
    chunks_to_completion,
    completion_to_chunks,
    may_store,
    should_bypass,
)
from services.router.call_bodies import BodyCapture, BodyLog
from services.router.config import AliasConfig, RetryConfig, TimeoutsConfig
from services.router.convert import token_usage
from services.router.estimates import (
    StreamTally,
    completion_usage,
    embeddings_usage,
    usage_chunk,
)
from services.router.metering import UsageRecorder
from services.router.openai_api import TokenCounts, usage_of
from services.router.routing_policy import RoutingPolicy
from services.router.table import Deployment, RoutingTable, TableHolder

log = logging.getLogger("lockgate.router")
T = TypeVar("T")

ATTEMPTS = Counter(
    "lockgate_router_attempts_total", "Provider attempts by deployment and outcome",
    ["deployment", "outcome"],
)
#: Rough bytes-per-token ratio for the lowest-cost strategy's input estimate
#: (ranking only, never billing).
_BYTES_PER_TOKEN = 4
#: A stream longer than this is not assembled for the response cache.
_MAX_CACHED_STREAM_CHUNKS = 4096


@dataclass(slots=True)
class Call:
    """One inference call: who asked, for what, and what happened (for the ledger)."""

    request_id: str
    caller: Identity
    alias: str
    kind: str = "chat"
    streamed: bool = False
    #: time.monotonic() by which the call must be over (None: the alias's timeout only).
    deadline: float | None = None
    started: float = field(default_factory=time.perf_counter)
    deployment: str = ""
    provider: str = ""
    provider_model: str = ""
    attempts: int = 0
    #: The price of the deployment that answered (None: unknown).
    price: Price | None = None
    price_source: str = ""
    usage: TokenCounts | None = None
    first_token_at: float | None = None
    error: LockgateError | None = None
    #: The client went away before the answer was complete.
    cancelled: bool = False
    #: The client's Cache-Control header.
    cache_control: str | None = None
    #: "" (the alias does not cache), "hit", "miss" or "bypass".
    cache_status: str = ""
    #: Headers for the caller decided before the provider call (x-ratelimit-*).
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    #: Admission counts the call against requests-per-minute limits: it came in
    #: on the router's HTTP listener, which Envoy's rate limiter does not see.
    counts_requests: bool = False
    #: What the call sent and got back, when its API opted in to body logging.
    bodies: BodyCapture | None = None
    #: The admission ticket the call went ahead on ("": admitted by its own id).
    admission_id: str = ""

    @property
    def cache_hit(self) -> bool:
        return self.cache_status == "hit"

    @property
    def tenant_id(self) -> str:
        return self.caller.tenant_id


def retryable(exc: LockgateError) -> bool:
    """Failures that say something about the deployment, not about the request."""
    return isinstance(exc, UpstreamError | RateLimited)


def backoff_delay(
    attempt: int, retry: RetryConfig, retry_after: float | None,
    rng: Callable[[], float] = random.random,
) -> float | None:
    """Seconds to wait before the next attempt on the same deployment, or None
    to fail over at once (the provider asked for a longer pause than we wait)."""
    if retry_after is not None:
        return retry_after if retry_after <= retry.max_retry_after else None
    ceiling = min(retry.max_backoff, retry.initial_backoff * (2**attempt))
    return ceiling / 2 + rng() * ceiling / 2  # "equal jitter": spread, never zero


class Router:
    def __init__(
        self,
        tables: TableHolder,
        recorder: UsageRecorder,
        policy: RoutingPolicy | None = None,
        cache: ResponseCache | None = None,
        admission: AdmissionClient | None = None,
        *,
        rng: Callable[[], float] = random.random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        body_log: BodyLog | None = None,
    ):
        self.tables = tables
        self.recorder = recorder
        self.policy = policy
        self.cache = cache
        #: Budgets and token limits (the ledger); None: no admission checks.
        self.admission = admission
        self.rng = rng
        self.sleep = sleep
        #: Decides which calls keep their bodies, and redacts them (call_bodies.py).
        self.body_log = body_log

    # -- queries ------------------------------------------------------------------

    async def aliases(
        self, caller: Identity, kind: str | None = None
    ) -> list[tuple[str, AliasConfig]]:
        """The aliases this caller may use (GET /v1/models), sorted, with their
        config (from one table snapshot)."""
        table = self.tables.current
        out = []
        for alias, cfg in sorted(table.config.models.items()):
            if kind is not None and cfg.kind != kind:
                continue
            if caller.models and alias not in caller.models:
                continue
            if self.policy is not None and not (await self.policy.decide(
                caller, alias, cfg.kind, table.policy_view(alias), table.generation
            )).alias_allowed:
                continue
            out.append((alias, cfg))
        return out

    async def plan(
        self, call: Call, table: RoutingTable, cfg: AliasConfig, body: dict
    ) -> list[Deployment]:
        """The deployments this caller may use for this call, in the order to try them."""
        candidates = table.candidates(call.alias)
        if self.policy is not None:
            allowed = set(await self.policy.allowed(
                call.caller, call.alias, call.kind, table.policy_view(call.alias),
                table.generation,
            ))
            candidates = [c for c in candidates if c.deployment in allowed]
        if cfg.strategy == "lowest-cost":
            input_tokens = max(1, len(str(body.get("messages") or body.get("input") or ""))
                               // _BYTES_PER_TOKEN)
        else:
            input_tokens = 0
        output = body.get("max_completion_tokens") or body.get("max_tokens")
        return strategies.order(
            cfg.strategy, candidates, streamed=call.streamed, input_tokens=input_tokens,
            output_tokens=output if isinstance(output, int) else None, rng=self.rng,
        )

    # -- calls ----------------------------------------------------------------------

    async def chat(self, call: Call, body: dict) -> dict:
        """A complete chat completion."""
        return await self._unary(call, body, lambda d, t: d.provider.chat(body, d.config.model, t))

    async def embed(self, call: Call, body: dict) -> dict:
        """An embeddings list."""
        call.kind = "embeddings"
        return await self._unary(call, body, lambda d, t: d.provider.embed(body, d.config.model, t))

    async def _unary(
        self, call: Call, body: dict, op: Callable[[Deployment, TimeoutsConfig], Awaitable[dict]]
    ) -> dict:
        self.recorder.check_capacity()
        call.bodies = self._capture(call, body)
        try:
            cfg, plan, key, cached = await self._prepare(call, body)
            if cached is not None:
                call.usage = usage_of(cached)
                if call.bodies is not None:
                    call.bodies.reply = cached
                return cached
            await self._admit(call, plan, body)
            reply, _ = await self._attempt_in_turn(call, cfg, plan, op)
            if call.bodies is not None:
                call.bodies.reply = reply
            call.usage = usage_of(reply) or (
                embeddings_usage(body) if call.kind == "embeddings"
                else completion_usage(body, reply)
            )
            if call.kind == "embeddings" and call.usage.input == 0:
                call.usage = embeddings_usage(body)  # providers that count nothing
            if key is not None and may_store(call.cache_control):
                await self.cache.put(key, orjson.dumps(reply), cfg.cache.ttl_seconds)
            return reply
        except LockgateError as exc:
            call.error = exc
            raise
        except asyncio.CancelledError:
            call.cancelled = True
            raise
        finally:
            self.meter(call)

    async def _admit(self, call: Call, plan: list[Deployment], body: dict) -> None:
        """Request, token and budget limits, before any provider is called (a cache
        hit is only counted as a request: `_prepare`)."""
        if self.admission is not None and plan:
            call.response_headers = await self.admission.admit(call, plan, body)

    async def _prepare(
        self, call: Call, body: dict
    ) -> tuple[AliasConfig, list[Deployment], str | None, dict | None]:
        """The alias config, the plan (routing policy applied: it authorizes
        cache hits too), the response cache key (None: not cached) and the
        cached answer on a hit, counted against request limits. Sets
        call.cache_status."""
        table = self.tables.current
        cfg = table.alias(call.alias, call.kind)
        plan = await self.plan(call, table, cfg, body)
        if self.cache is None or cfg.cache.ttl_seconds <= 0:
            return cfg, plan, None, None
        try:
            key = cache_key(call.caller.tenant_id, call.alias, call.kind, body)
        except (UncacheableRequest, ValueError):
            return cfg, plan, None, None
        if should_bypass(call.cache_control):
            call.cache_status = "bypass"
            return cfg, plan, key, None
        cached = await self.cache.get(key)
        call.cache_status = "miss" if cached is None else "hit"
        if cached is None:
            return cfg, plan, key, None
        if self.admission is not None:  # free, but still a request
            call.response_headers = await self.admission.count_cache_hit(call)
        return cfg, plan, key, orjson.loads(cached)

    async def stream(self, call: Call, body: dict) -> AsyncIterator[dict]:
        """Chunks of a streamed completion; failover only before the first chunk.

        The last chunk carries usage: the provider's, or an estimate (marked in
        the ledger) when the provider sent none."""
        call.streamed = True
        self.recorder.check_capacity()
        call.bodies = self._capture(call, body)
        chunks: AsyncIterator[dict] | None = None
        deployment: Deployment | None = None
        tally = StreamTally()
        try:
            cfg, plan, key, cached = await self._prepare(call, body)
            if cached is not None:
                call.first_token_at = time.perf_counter()
                for chunk in completion_to_chunks(cached):
                    call.usage = usage_of(chunk) or call.usage
                    if call.bodies is not None:
                        call.bodies.add_chunk(chunk)
                    yield chunk
                return
            await self._admit(call, plan, body)

            async def first_chunk(d: Deployment, t: TimeoutsConfig) -> tuple[dict, AsyncIterator]:
                stream = d.provider.stream_chat(body, d.config.model, t)
                try:
                    return await anext(stream), stream
                except StopAsyncIteration:
                    raise UpstreamError(
                        f"provider {d.provider_name!r} sent an empty stream"
                    ) from None
                except BaseException:
                    await stream.aclose()
                    raise

            (first, chunks), deployment = await self._attempt_in_turn(
                call, cfg, plan, first_chunk
            )
            call.first_token_at = time.perf_counter()
            kept: list[dict] | None = [] if key is not None else None
            last_id = ""
            async for chunk in _chain(first, chunks):
                usage = usage_of(chunk)
                if usage is not None:
                    call.usage = usage
                else:
                    tally.add(chunk)
                last_id = chunk.get("id") or last_id
                if call.bodies is not None:
                    call.bodies.add_chunk(chunk)
                if kept is not None and len(kept) < _MAX_CACHED_STREAM_CHUNKS:
                    kept.append({**chunk})  # a copy: the servicer reshapes what it sends
                yield chunk
            if call.usage is None:
                call.usage = tally.usage(body)
                estimate = usage_chunk(call.usage, call.provider_model, last_id)
                if kept is not None:
                    kept.append({**estimate})
                yield estimate
            if kept and len(kept) < _MAX_CACHED_STREAM_CHUNKS and may_store(call.cache_control):
                try:
                    reply = chunks_to_completion(kept)
                except IncompleteStream:
                    reply = None
                if reply is not None:
                    await self.cache.put(key, orjson.dumps(reply), cfg.cache.ttl_seconds)
        except LockgateError as exc:
            call.error = exc
            if chunks is not None and deployment is not None and retryable(exc):
                deployment.health.breaker.failure()  # a broken stream counts against it
            raise
        except (asyncio.CancelledError, GeneratorExit):
            call.cancelled = True  # what was delivered is still metered
            raise
        finally:
            if chunks is not None:
                await chunks.aclose()  # a gone client frees the provider connection now
            if call.usage is None and call.first_token_at is not None:
                call.usage = tally.usage(body)  # bill what was delivered
            self.meter(call)

    async def _attempt_in_turn(
        self, call: Call, cfg: AliasConfig, plan: list[Deployment],
        op: Callable[[Deployment, TimeoutsConfig], Awaitable[T]],
    ) -> tuple[T, Deployment]:
        """The first successful result of `op` over the plan, and the deployment that gave it."""
        deadline = time.monotonic() + cfg.timeout_seconds
        if call.deadline is not None:
            deadline = min(deadline, call.deadline)
        last: LockgateError | None = None
        for deployment in plan:
            health = deployment.health
            limits = deployment.config.limits
            if limits.max_in_flight and health.in_flight >= limits.max_in_flight:
                last = last or UpstreamUnavailable(
                    f"deployment {deployment.deployment!r} is at its in-flight limit"
                )
                ATTEMPTS.labels(deployment.deployment, "busy").inc()
                continue
            if not health.admit(limits.requests_per_minute):
                last = last or RateLimited(
                    f"deployment {deployment.deployment!r} is at its request rate limit",
                    code="deployment_rate_limited",
                )
                ATTEMPTS.labels(deployment.deployment, "rate_limited").inc()
                continue
            for attempt in range(cfg.retry.attempts):
                if not health.breaker.allow():
                    last = last or UpstreamUnavailable(
                        f"deployment {deployment.deployment!r} is failing (circuit open)"
                    )
                    ATTEMPTS.labels(deployment.deployment, "circuit_open").inc()
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    health.breaker.release()
                    raise UpstreamTimeout("the request deadline passed before a provider answered")
                self._aim(call, deployment)
                call.attempts += 1
                started = time.monotonic()
                health.started()
                try:
                    result = await op(deployment, _within(deployment.timeouts, remaining))
                except LockgateError as exc:
                    if not retryable(exc):
                        health.breaker.success()  # it answered: the request was at fault
                        ATTEMPTS.labels(deployment.deployment, "client_error").inc()
                        raise
                    health.breaker.failure()
                    health.failures += 1
                    health.last_error = exc.code or type(exc).__name__
                    ATTEMPTS.labels(deployment.deployment, "failed").inc()
                    log.warning("provider attempt failed", extra={
                        "deployment": deployment.deployment, "attempt": attempt + 1,
                        "error": health.last_error,
                    })
                    last = exc
                    if attempt + 1 >= cfg.retry.attempts:
                        break
                    delay = backoff_delay(attempt, cfg.retry, exc.retry_after, self.rng)
                    if delay is None or time.monotonic() + delay >= deadline:
                        break  # fail over now rather than wait past the deadline
                    await self.sleep(delay)
                    continue
                except BaseException:
                    health.breaker.release()  # cancelled: no verdict on the deployment
                    raise
                finally:
                    health.ended()
                    health.calls += 1
                elapsed = time.monotonic() - started
                (health.ttft if call.streamed else health.latency).add(elapsed)
                health.breaker.success()
                ATTEMPTS.labels(deployment.deployment, "ok").inc()
                return result, deployment
        if last is None:
            last = UpstreamUnavailable(f"no deployment of `{call.alias}` is available")
        raise last

    def _capture(self, call: Call, body: dict) -> BodyCapture | None:
        """Keep the call's bodies when its API opted in (call_bodies.py)."""
        if self.body_log is None:
            return None
        return self.body_log.capture(call.caller, call.alias, body)

    @staticmethod
    def _aim(call: Call, deployment: Deployment) -> None:
        call.deployment = deployment.deployment
        call.provider = deployment.provider_name
        call.provider_model = deployment.config.model
        call.price = deployment.price
        call.price_source = deployment.price_source

    def meter(self, call: Call) -> None:
        """Hand the call to the ledger (never blocks; see metering.py)."""
        now = time.perf_counter()
        # Built from the clock's integer nanoseconds: Timestamp.GetCurrentTime goes
        # through a datetime, ≈ 5x the cost, once per call.
        wall_ns = time.time_ns()
        created = Timestamp(seconds=wall_ns // 1_000_000_000, nanos=wall_ns % 1_000_000_000)
        self.recorder.record(
            ledger_pb.UsageEntry(
                request_id=call.request_id,
                tenant_id=call.caller.tenant_id,
                key_id=call.caller.key_id,
                alias=call.alias,
                deployment=call.deployment,
                provider=call.provider,
                provider_model=call.provider_model,
                usage=token_usage(call.usage),
                latency_ms=int((now - call.started) * 1000),
                ttft_ms=int((call.first_token_at - call.started) * 1000)
                if call.first_token_at
                else 0,
                status=_status(call),
                error_type=_error_type(call),
                streamed=call.streamed,
                create_time=created,
                cache_hit=call.cache_hit,
                operation=call.kind,
                attempts=call.attempts,
                cost_micro_usd=_cost(call),
                price_source="" if call.cache_hit else call.price_source,
                team_id=call.caller.team_id,
                principal=call.caller.principal,
                api_id=call.caller.api_id,
                api_version=call.caller.api_version,
                subscription_id=call.caller.subscription_id,
                admission_id=call.admission_id,
                **(self.body_log.entry_fields(call.bodies) if call.bodies is not None else {}),
            )
        )


def _within(timeouts: TimeoutsConfig, remaining: float) -> TimeoutsConfig:
    """The deployment's timeouts, cut to what is left of the call's deadline."""
    if remaining >= timeouts.total and remaining >= timeouts.first_token:
        return timeouts
    return TimeoutsConfig.model_construct(
        connect=min(timeouts.connect, remaining),
        first_token=min(timeouts.first_token, remaining),
        total=min(timeouts.total, remaining),
    )


def _cost(call: Call) -> int:
    """What the provider charges for the call; a cache hit costs nothing."""
    if call.cache_hit or call.price is None or call.usage is None:
        return 0
    return call.price.cost_micro_usd(call.usage.input, call.usage.output, call.usage.cached_input)


def _status(call: Call) -> str:
    if call.error is not None:
        return "error"
    return "cancelled" if call.cancelled else "ok"


def _error_type(call: Call) -> str:
    if call.error is not None:
        return call.error.code or type(call.error).__name__
    return "client_cancelled" if call.cancelled else ""


async def _chain(first: dict, rest: AsyncIterator[dict]) -> AsyncIterator[dict]:
    yield first
    async for chunk in rest:
        yield chunk
