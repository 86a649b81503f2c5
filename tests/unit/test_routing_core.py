"""Routing building blocks: circuit breaker, strategies, backoff, price book."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from decimal import Decimal

import pytest

from lockgate.errors import InvalidRequest, RateLimited, UpstreamTimeout, UpstreamUnavailable
from lockgate.prices import Price, load_price_book, shipped_price_book
from services.router import strategies
from services.router.config import CircuitBreakerConfig, RetryConfig
from services.router.health import CLOSED, HALF_OPEN, OPEN, CircuitBreaker, HealthBoard
from services.router.service import backoff_delay, retryable


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock, **overrides) -> CircuitBreaker:
    config = CircuitBreakerConfig(**{
        "consecutive_failures": 3, "error_rate": 0.5, "window_seconds": 10, "min_calls": 6,
        "open_seconds": 5, "half_open_probes": 1, **overrides,
    })
    return CircuitBreaker("dep", config, clock)


# -- circuit breaker -----------------------------------------------------------------


def test_breaker_opens_after_consecutive_failures_and_skips_until_open_seconds():
    clock = Clock()
    b = breaker(clock)
    for _ in range(2):
        assert b.allow()
        b.failure()
    assert b.state == CLOSED
    assert b.allow()
    b.failure()
    assert b.state == OPEN
    assert not b.allow()
    clock.now += 4.9
    assert not b.allow()
    clock.now += 0.2
    assert b.allow() and b.state == HALF_OPEN


def test_a_success_resets_the_consecutive_count():
    clock = Clock()
    b = breaker(clock, min_calls=100)
    for _ in range(10):
        b.failure()
        b.failure()
        b.success()
    assert b.state == CLOSED


def test_breaker_opens_on_error_rate_over_the_window_only_with_enough_calls():
    clock = Clock()
    b = breaker(clock, consecutive_failures=100)
    for _ in range(2):  # 4 calls, 50 % failures: not enough calls yet
        b.failure()
        b.success()
    assert b.state == CLOSED
    b.failure()
    b.success()  # 6 calls, 3 failed
    assert b.state == CLOSED  # the rate is only checked on a failure
    b.failure()  # 7 calls, 4 failed: 57 %
    assert b.state == OPEN


def test_old_outcomes_leave_the_window():
    clock = Clock()
    b = breaker(clock, consecutive_failures=100)
    for _ in range(3):
        b.failure()
        b.success()
    clock.now += 11  # all outside the 10 s window
    assert b.error_rate() == 0.0
    b.failure()
    assert b.state == CLOSED


def test_half_open_lets_one_probe_through_and_closes_on_success():
    clock = Clock()
    b = breaker(clock)
    for _ in range(3):
        b.failure()
    clock.now += 5
    assert b.allow()
    assert not b.allow()  # one probe at a time
    b.success()
    assert b.state == CLOSED
    assert b.allow() and b.allow()


def test_a_failed_probe_reopens_for_another_period():
    clock = Clock()
    b = breaker(clock)
    for _ in range(3):
        b.failure()
    clock.now += 5
    assert b.allow()
    b.failure()
    assert b.state == OPEN
    clock.now += 4
    assert not b.allow()


def test_a_cancelled_probe_frees_its_slot():
    clock = Clock()
    b = breaker(clock)
    for _ in range(3):
        b.failure()
    clock.now += 5
    assert b.allow()
    b.release()
    assert b.allow()


def test_health_board_keeps_state_across_reconfiguration_and_forgets_removed():
    board = HealthBoard(CircuitBreakerConfig(consecutive_failures=1), 0.5)
    board.get("a").breaker.failure()
    board.get("a").latency.add(1.0)
    board.reconfigure(CircuitBreakerConfig(consecutive_failures=9), 0.1)
    assert board.get("a").breaker.state == OPEN
    assert board.get("a").breaker.config.consecutive_failures == 9
    assert board.get("a").latency.value == 1.0 and board.get("a").latency.alpha == 0.1
    board.forget_except({"b"})
    assert board.get("a").breaker.state == CLOSED  # a new deployment "a" starts fresh


def test_ewma():
    board = HealthBoard(CircuitBreakerConfig(), 0.5)
    h = board.get("x")
    assert h.observed_latency(streamed=False) is None
    h.latency.add(1.0)
    h.latency.add(3.0)
    assert h.latency.value == 2.0
    assert h.observed_latency(streamed=True) == 2.0  # no TTFT sample: falls back
    h.ttft.add(0.5)
    assert h.observed_latency(streamed=True) == 0.5


# -- strategies ------------------------------------------------------------------------


@dataclass
class C:
    deployment: str
    priority: int = 0
    weight: float = 1.0
    price: Price | None = None
    health: object = None


def candidates(board: HealthBoard, *specs: dict) -> list[C]:
    return [C(health=board.get(s["deployment"]), **s) for s in specs]


def names(ordered) -> list[str]:
    return [c.deployment for c in ordered]


def order(strategy, cs, **kw):
    return names(strategies.order(
        strategy, cs, streamed=kw.pop("streamed", False), input_tokens=kw.pop("input", 100),
        output_tokens=kw.pop("output", None), **kw,
    ))


def test_priority_orders_by_priority_then_config_order():
    board = HealthBoard(CircuitBreakerConfig(), 0.5)
    cs = candidates(board, {"deployment": "a", "priority": 2}, {"deployment": "b", "priority": 1},
                    {"deployment": "c", "priority": 1})
    assert order("priority", cs) == ["b", "c", "a"]


def test_weighted_follows_the_weights_and_keeps_everyone_as_failover():
    board = HealthBoard(CircuitBreakerConfig(), 0.5)
    cs = candidates(board, {"deployment": "a", "weight": 3}, {"deployment": "b", "weight": 1},
                    {"deployment": "never-first", "weight": 0})
    rng = random.Random(7).random
    firsts = {"a": 0, "b": 0, "never-first": 0}
    for _ in range(4000):
        ordered = order("weighted", cs, rng=rng)
        firsts[ordered[0]] += 1
        assert sorted(ordered) == ["a", "b", "never-first"]
        assert ordered[-1] == "never-first"
    assert firsts["never-first"] == 0
    assert 0.71 < firsts["a"] / 4000 < 0.79  # expected 0.75


def test_least_latency_measures_unknown_deployments_first_then_prefers_the_fastest():
    board = HealthBoard(CircuitBreakerConfig(), 1.0)
    cs = candidates(board, {"deployment": "slow"}, {"deployment": "fast"},
                    {"deployment": "new"})
    board.get("slow").latency.add(0.9)
    board.get("fast").latency.add(0.1)
    assert order("least-latency", cs) == ["new", "fast", "slow"]
    board.get("new").latency.add(0.5)
    assert order("least-latency", cs) == ["fast", "new", "slow"]
    board.get("slow").ttft.add(0.01)  # streams rank by time to first token
    assert order("least-latency", cs, streamed=True)[0] == "slow"


def test_lowest_cost_uses_input_and_output_prices_and_puts_unknown_prices_last():
    board = HealthBoard(CircuitBreakerConfig(), 0.5)
    cheap_in = Price(Decimal("0.1"), Decimal("10"), Decimal("0.1"))
    cheap_out = Price(Decimal("5"), Decimal("1"), Decimal("5"))
    cs = candidates(board, {"deployment": "unknown"}, {"deployment": "cheap-in", "price": cheap_in},
                    {"deployment": "cheap-out", "price": cheap_out})
    # Long prompt, short answer: input price dominates.
    assert order("lowest-cost", cs, input=100_000, output=10) == ["cheap-in", "cheap-out", "unknown"]
    # Short prompt, long answer: output price dominates.
    assert order("lowest-cost", cs, input=10, output=10_000) == [
        "cheap-out", "cheap-in", "unknown"
    ]


def test_least_busy_prefers_fewest_in_flight():
    board = HealthBoard(CircuitBreakerConfig(), 0.5)
    cs = candidates(board, {"deployment": "a"}, {"deployment": "b"})
    board.get("a").started()
    board.get("a").started()
    board.get("b").started()
    assert order("least-busy", cs) == ["b", "a"]
    board.get("b").started()
    board.get("b").started()
    assert order("least-busy", cs) == ["a", "b"]


# -- retries --------------------------------------------------------------------------


def test_backoff_is_jittered_exponential_and_capped():
    retry = RetryConfig(initial_backoff=0.2, max_backoff=1.0)
    assert backoff_delay(0, retry, None, rng=lambda: 0.0) == pytest.approx(0.1)
    assert backoff_delay(0, retry, None, rng=lambda: 1.0) == pytest.approx(0.2)
    assert backoff_delay(2, retry, None, rng=lambda: 1.0) == pytest.approx(0.8)
    assert backoff_delay(10, retry, None, rng=lambda: 1.0) == pytest.approx(1.0)


def test_retry_after_is_honoured_when_short_and_means_failover_when_long():
    retry = RetryConfig(max_retry_after=10)
    assert backoff_delay(0, retry, 3.0) == 3.0
    assert backoff_delay(0, retry, 30.0) is None


def test_only_deployment_failures_are_retryable():
    assert retryable(UpstreamUnavailable("x")) and retryable(UpstreamTimeout("x"))
    assert retryable(RateLimited("x"))
    assert not retryable(InvalidRequest("x"))


# -- price book -----------------------------------------------------------------------


def test_shipped_price_book_has_the_major_models():
    book = shipped_price_book()
    for key in ("openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5", "gemini/gemini-2.5-flash",
                "mistral/mistral-large-latest"):
        provider, model = key.split("/", 1)
        assert book.at(provider, model) is not None, key


def test_cost_is_exact_decimal_with_cached_input_priced_separately():
    price = shipped_price_book().at("openai", "gpt-4o")
    assert price.cost_usd(1_000, 500, cached_input_tokens=200) == Decimal("0.00725")
    assert isinstance(price.cost_usd(1, 1), Decimal)


def test_effective_dated_versions(tmp_path):
    path = tmp_path / "prices.yaml"
    path.write_text(
        'p/m: [{since: 2025-01-01, input: "1", output: "2"},'
        ' {since: 2025-06-01, input: "0.5", output: "1", cached_input: "0.1"}]\n'
    )
    book = load_price_book(path)
    assert book.at("p", "m", dt.date(2024, 12, 31)) is None
    assert book.at("p", "m", dt.date(2025, 5, 31)).input == Decimal("1")
    assert book.at("p", "m", dt.date(2025, 5, 31)).cached_input == Decimal("1")
    assert book.at("p", "m", dt.date(2025, 6, 1)).cached_input == Decimal("0.1")


@pytest.mark.parametrize("bad", ['p/m: [{input: "-1", output: "1"}]',
                                 'p/m: [{input: "x", output: "1"}]',
                                 'p/m: [{input: "1", output: "1", colour: red}]', "p/m: []"])
def test_bad_price_files_are_rejected(tmp_path, bad):
    path = tmp_path / "prices.yaml"
    path.write_text(bad)
    with pytest.raises(ValueError):
        load_price_book(path)


def test_token_bucket_allows_a_minutes_burst_then_refills_evenly():
    from services.router.health import TokenBucket

    clock = Clock()
    bucket = TokenBucket(60, clock)
    assert all(bucket.take() for _ in range(60))
    assert not bucket.take()
    clock.now += 1.0  # 60/min = one per second
    assert bucket.take() and not bucket.take()
    clock.now += 3600
    assert sum(bucket.take() for _ in range(100)) == 60  # never more than a minute's worth


def test_admit_follows_a_changed_rate():
    board = HealthBoard(CircuitBreakerConfig(), 0.5)
    health = board.get("d")
    assert all(health.admit(0) for _ in range(1000))  # unbounded
    assert sum(health.admit(2) for _ in range(5)) == 2
    assert sum(health.admit(3) for _ in range(5)) == 3  # a reload changed the limit


def test_cost_in_micro_usd_is_rounded_half_up_once_per_entry():
    price = Price(Decimal("2.5"), Decimal("10"), Decimal("1.25"))
    assert price.cost_micro_usd(13, 15) == 183  # 32.5 + 150 = 182.5 -> 183
    assert price.cost_micro_usd(1, 0) == 3  # 2.5 -> 3
    assert price.cost_micro_usd(1_000_000, 0, cached_input_tokens=1_000_000) == 1_250_000
    assert price.cost_micro_usd(0, 0) == 0
