"""Routing strategies: the order in which an alias's deployments are tried.

Every strategy returns all candidates (the later ones are the failover
path); they differ only in who goes first.

* priority: lowest `priority` first; ties keep the config's list order.
* weighted: a random order in which each deployment's chance to come first is
  its share of the total weight (weighted sampling without replacement,
  Efraimidis–Spirakis); weight 0 deployments come last, as pure fallbacks.
* least-latency: lowest moving average of observed latency first (time to
  first token for streams, whole-call latency otherwise). Deployments with no
  sample yet go first, so each gets measured; ties by priority.
* lowest-cost: cheapest price for this request first — its estimated input
  tokens plus its output bound (max tokens, or 1,000 when unset) at the
  deployment's price (config `price:` or the shipped price book); unknown
  prices go last; ties by priority.
* least-busy: fewest calls in flight first; ties by priority.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Protocol

from lockgate.prices import Price
from services.router.health import DeploymentHealth

#: Output tokens assumed by lowest-cost when the request sets no bound.
DEFAULT_OUTPUT_TOKENS = 1_000


class Candidate(Protocol):
    deployment: str
    priority: int
    weight: float
    health: DeploymentHealth
    price: Price | None


def order(
    strategy: str,
    candidates: Sequence[Candidate],
    *,
    streamed: bool,
    input_tokens: int,
    output_tokens: int | None,
    rng: Callable[[], float] = random.random,
) -> list[Candidate]:
    by_priority = sorted(candidates, key=lambda c: c.priority)  # stable: list order on ties
    if strategy == "priority" or len(candidates) < 2:
        return by_priority
    if strategy == "weighted":
        return _weighted(by_priority, rng)
    if strategy == "least-latency":
        def latency(c: Candidate) -> float:
            value = c.health.observed_latency(streamed)
            return -1.0 if value is None else value

        return sorted(by_priority, key=latency)
    if strategy == "lowest-cost":
        tokens_out = output_tokens if output_tokens is not None else DEFAULT_OUTPUT_TOKENS

        def cost(c: Candidate) -> tuple[int, Decimal]:
            if c.price is None:
                return (1, Decimal(0))
            return (0, c.price.cost_usd(input_tokens, tokens_out))

        return sorted(by_priority, key=cost)
    if strategy == "least-busy":
        return sorted(by_priority, key=lambda c: c.health.in_flight)
    raise ValueError(f"unknown strategy {strategy!r}")  # config validation prevents this


def _weighted(candidates: list[Candidate], rng: Callable[[], float]) -> list[Candidate]:
    def key(c: Candidate) -> float:
        if c.weight <= 0:
            return -1.0
        # u ** (1/w): the larger the weight, the closer to 1 the key tends.
        return max(rng(), 1e-12) ** (1.0 / c.weight)

    return sorted(candidates, key=key, reverse=True)
