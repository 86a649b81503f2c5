"""What the router has observed of each deployment: circuit breaker, latency,
load. Kept per deployment name in a HealthBoard that outlives config reloads.

Circuit breaker (CircuitBreakerConfig):

* closed: calls flow. It opens after `consecutive_failures` failures in a
  row, or when the sliding window of the last `window_seconds` holds at least
  `min_calls` outcomes and the failure share reaches `error_rate`.
* open: the deployment is skipped (failover goes on to the next one) for
  `open_seconds`.
* half-open: up to `half_open_probes` calls go through as probes; a probe that
  succeeds closes the breaker (and clears the window), one that fails opens it
  again for another `open_seconds`.

Only failures that say something about the deployment count (unreachable,
timeouts, 429, 5xx, 529, broken streams); a caller's bad request does not.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from lockgate.metrics import Counter, Gauge
from services.router.config import CircuitBreakerConfig

CLOSED, HALF_OPEN, OPEN = "closed", "half_open", "open"
_STATE_VALUE = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}

BREAKER_STATE = Gauge(
    "lockgate_router_breaker_state",
    "Circuit breaker state per deployment (0 closed, 1 half-open, 2 open)",
    ["deployment"],
)
BREAKER_OPENED = Counter(
    "lockgate_router_breaker_opened_total", "Times a deployment's breaker opened", ["deployment"]
)
IN_FLIGHT = Gauge("lockgate_router_in_flight", "Provider calls in flight", ["deployment"])


class CircuitBreaker:
    def __init__(
        self, name: str, config: CircuitBreakerConfig, clock: Callable[[], float] = time.monotonic
    ):
        self.name = name
        self.config = config
        self.clock = clock
        self.state = CLOSED
        self.consecutive_failures = 0
        self.opened_at = 0.0
        self.probes = 0
        #: (time, failed) outcomes inside the sliding window.
        self.window: deque[tuple[float, bool]] = deque()
        BREAKER_STATE.labels(name).set(0)

    def allow(self) -> bool:
        """May a call go to this deployment now? Counts a half-open probe."""
        if self.state == OPEN:
            if self.clock() - self.opened_at < self.config.open_seconds:
                return False
            self._set(HALF_OPEN)
            self.probes = 0
        if self.state == HALF_OPEN:
            if self.probes >= self.config.half_open_probes:
                return False
            self.probes += 1
        return True

    def release(self) -> None:
        """A call that was allowed ended without an outcome (the client left)."""
        if self.state == HALF_OPEN and self.probes > 0:
            self.probes -= 1

    def success(self) -> None:
        self.consecutive_failures = 0
        if self.state == HALF_OPEN:
            self.window.clear()
            self._set(CLOSED)
            return
        self._observe(False)

    def failure(self) -> None:
        self.consecutive_failures += 1
        if self.state == HALF_OPEN:
            self._open()
            return
        self._observe(True)
        if self.state == CLOSED and (
            self.consecutive_failures >= self.config.consecutive_failures
            or self._error_rate_tripped()
        ):
            self._open()

    def error_rate(self) -> float:
        self._trim()
        if not self.window:
            return 0.0
        return sum(failed for _, failed in self.window) / len(self.window)

    def _error_rate_tripped(self) -> bool:
        return len(self.window) >= self.config.min_calls and (
            self.error_rate() >= self.config.error_rate
        )

    def _observe(self, failed: bool) -> None:
        self.window.append((self.clock(), failed))
        self._trim()

    def _trim(self) -> None:
        horizon = self.clock() - self.config.window_seconds
        while self.window and self.window[0][0] < horizon:
            self.window.popleft()

    def _open(self) -> None:
        self.opened_at = self.clock()
        self.probes = 0
        self.window.clear()
        self._set(OPEN)
        BREAKER_OPENED.labels(self.name).inc()

    def _set(self, state: str) -> None:
        self.state = state
        BREAKER_STATE.labels(self.name).set(_STATE_VALUE[state])


@dataclass(slots=True)
class Ewma:
    """Exponentially weighted moving average; None until the first sample."""

    alpha: float
    value: float | None = None

    def add(self, sample: float) -> None:
        self.value = sample if self.value is None else (
            self.alpha * sample + (1 - self.alpha) * self.value
        )


class TokenBucket:
    """`rate_per_minute` tokens, refilled evenly; `take()` spends one if it can."""

    __slots__ = ("rate", "tokens", "updated", "clock")

    def __init__(self, rate_per_minute: int, clock: Callable[[], float] = time.monotonic):
        self.rate = rate_per_minute
        self.tokens = float(rate_per_minute)
        self.clock = clock
        self.updated = clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(float(self.rate), self.tokens + (now - self.updated) * self.rate / 60)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass(slots=True)
class DeploymentHealth:
    name: str
    breaker: CircuitBreaker
    #: Seconds of complete unary calls.
    latency: Ewma
    #: Seconds to the first chunk of streamed calls.
    ttft: Ewma
    in_flight: int = 0
    calls: int = 0
    failures: int = 0
    last_error: str = ""
    _gauge: object = field(default=None, repr=False)
    _bucket: TokenBucket | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._gauge = IN_FLIGHT.labels(self.name)

    def admit(self, requests_per_minute: int) -> bool:
        """Within the deployment's request rate (0: unbounded)? Spends a token."""
        if not requests_per_minute:
            return True
        if self._bucket is None or self._bucket.rate != requests_per_minute:
            self._bucket = TokenBucket(requests_per_minute, self.breaker.clock)
        return self._bucket.take()

    def started(self) -> None:
        self.in_flight += 1
        self._gauge.inc()

    def ended(self) -> None:
        self.in_flight -= 1
        self._gauge.dec()

    def observed_latency(self, streamed: bool) -> float | None:
        """The latency the least-latency strategy ranks by: time to first
        token for streams, the whole call otherwise; the other one when the
        preferred one has no sample yet."""
        first, second = (self.ttft, self.latency) if streamed else (self.latency, self.ttft)
        return first.value if first.value is not None else second.value


class HealthBoard:
    """DeploymentHealth by deployment name; survives config reloads, so a
    reload neither forgets an open breaker nor loses the latency history."""

    def __init__(
        self,
        breaker: CircuitBreakerConfig,
        ewma_alpha: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.breaker_config = breaker
        self.ewma_alpha = ewma_alpha
        self.clock = clock
        self._by_name: dict[str, DeploymentHealth] = {}

    def reconfigure(self, breaker: CircuitBreakerConfig, ewma_alpha: float) -> None:
        self.breaker_config = breaker
        self.ewma_alpha = ewma_alpha
        for health in self._by_name.values():
            health.breaker.config = breaker
            health.latency.alpha = health.ttft.alpha = ewma_alpha

    def get(self, deployment: str) -> DeploymentHealth:
        health = self._by_name.get(deployment)
        if health is None:
            health = self._by_name[deployment] = DeploymentHealth(
                name=deployment,
                breaker=CircuitBreaker(deployment, self.breaker_config, self.clock),
                latency=Ewma(self.ewma_alpha),
                ttft=Ewma(self.ewma_alpha),
            )
        return health

    def forget_except(self, names: set[str]) -> None:
        """Drop deployments that left the config."""
        for name in list(self._by_name):
            if name not in names:
                del self._by_name[name]
