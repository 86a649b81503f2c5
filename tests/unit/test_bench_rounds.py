"""bench/rounds.py: the rounds of an S1 measurement combined into one result,
as `make bench` and `make bench-peers` report it."""

from __future__ import annotations

import json

import pytest

from bench import peer_report, rounds


def wrk_result(rps: float, p50: float, p99: float, errors: int = 0) -> dict:
    return {"requests": int(rps * 10), "rps": rps, "p50_ms": p50, "p90_ms": p50, "p99_ms": p99,
            "errors": errors}


def peers_round(lockgate_rps: float = 400.0, lockgate_p99: float = 60.0,
                lockgate_errors: int = 0, scale: float = 1.0) -> dict:
    """One round of bench-peers at c=50; `scale`: how fast the machine ran."""
    return peer_report.compare(50, {
        "direct": wrk_result(4000.0 * scale, 0.25, 2.0),
        "lockgate": wrk_result(lockgate_rps, 5.0, lockgate_p99, lockgate_errors),
        "litellm": wrk_result(160.0 * scale, 20.0, 40.0),
        "portkey": wrk_result(500.0 * scale, 2.5, 9.0),
    })


def test_each_figure_is_its_median_and_requests_and_errors_are_totals():
    measured = [peers_round(400.0, 60.0), peers_round(1000.0, 40.0, lockgate_errors=2),
                peers_round(600.0, 90.0)]
    row = rounds.combine(measured)
    assert row["concurrency"] == 50
    assert row["lockgate"]["rps"] == 600.0
    assert row["lockgate"]["p99_ms"] == 60.0
    assert row["lockgate"]["requests"] == 4000 + 10000 + 6000
    assert row["lockgate"]["errors"] == 2
    assert row["lockgate_over_portkey_rps"] == 1.2  # 0.8, 2.0, 1.2
    assert row["rounds"] == measured


def test_a_ratio_is_the_median_of_the_ratios_within_each_round():
    # The machine ran twice as fast in the last two rounds: every contender doubled.
    measured = [peers_round(400.0), peers_round(1200.0, scale=2.0), peers_round(1200.0, scale=2.0)]
    row = rounds.combine(measured)
    # Within the rounds: 400 / 500 = 0.8, then 1200 / 1000 = 1.2 twice.
    assert row["lockgate_over_portkey_rps"] == 1.2
    assert row["lockgate"]["rps"] == 1200.0 and row["portkey"]["rps"] == 1000.0
    two = rounds.combine(measured[:2])
    # An even count: the mean of the middle two, for ratios and figures alike,
    # while the concurrency stays what it was.
    assert two["lockgate_over_portkey_rps"] == 1.0
    assert two["lockgate"]["rps"] == 800.0
    assert two["concurrency"] == 50 and isinstance(two["concurrency"], int)


def test_one_round_combines_to_itself():
    row = peers_round()
    combined = rounds.combine([row])
    assert {k: v for k, v in combined.items() if k != "rounds"} == row


def test_a_round_where_a_peer_served_nothing_leaves_no_ratio():
    empty = peer_report.compare(50, {
        "direct": wrk_result(4000.0, 0.25, 2.0), "lockgate": wrk_result(400.0, 5.0, 60.0),
        "portkey": wrk_result(0.0, 0.0, 0.0, errors=100)})
    full = peer_report.compare(50, {
        "direct": wrk_result(4000.0, 0.25, 2.0), "lockgate": wrk_result(400.0, 5.0, 60.0),
        "portkey": wrk_result(500.0, 2.5, 9.0)})
    row = rounds.combine([full, empty, full])
    assert row["lockgate_over_portkey_rps"] is None
    assert row["portkey"]["errors"] == 100
    checks = {c["target"]: c for c in peer_report.targets([row])}
    assert checks["c=50 Lockgate rps / portkey rps"]["met"] is False


def test_governance_checks_are_totals_key_by_key():
    def make_bench_round(rps: float, checks: dict) -> dict:
        return {"concurrency": 1, "direct": wrk_result(5000.0, 0.2, 0.9),
                "governed": {**wrk_result(rps, 1.2, 3.0), "governance_checks": checks},
                "governed_vs_direct_rps": round(rps / 5000.0, 3), "added_p50_ms": 1.0}
    measured = [
        make_bench_round(600.0, {"admission": {"admitted": 4, "ticket": 5996},
                                 "requests_counted": {"counted": 6100, "uncounted": 100},
                                 "edge_limiter": {}}),
        make_bench_round(700.0, {"admission": {"admitted": 3, "ticket": 6997, "unavailable": 1},
                                 "requests_counted": {"counted": 7000},
                                 "edge_limiter": {}}),
    ]
    row = rounds.combine(measured)
    assert row["governed"]["governance_checks"] == {
        "admission": {"admitted": 7, "ticket": 12993, "unavailable": 1},
        "requests_counted": {"counted": 13100, "uncounted": 100},
        "edge_limiter": {},
    }
    assert row["governed"]["rps"] == 650.0
    assert row["governed"]["requests"] == 13000


def test_combining_leaves_the_rounds_as_they_were():
    measured = [peers_round(400.0), peers_round(900.0)]
    before = json.dumps(measured, sort_keys=True)
    rounds.combine(measured)
    assert json.dumps(measured, sort_keys=True) == before


def test_no_rounds_is_an_error():
    with pytest.raises(ValueError, match="no rounds"):
        rounds.combine([])
