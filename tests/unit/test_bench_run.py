"""bench/run.py's reading of the stack's counters (governance_checks)."""

from __future__ import annotations

from bench.run import _prometheus, checks_since

METRICS = """\
# HELP lockgate_ledger_rate_limit_checks_total Rate limit checks
# TYPE lockgate_ledger_rate_limit_checks_total counter
lockgate_ledger_rate_limit_checks_total{kind="requests",outcome="ok"} 1200.0
lockgate_ledger_rate_limit_checks_total{kind="tokens",outcome="ok"} 1190.0
lockgate_ledger_rate_limit_checks_total{kind="requests",outcome="over_limit"} 3.0
lockgate_ledger_rate_limit_checks_total_created{kind="requests",outcome="ok"} 1.7e9
"""


def test_counter_samples_by_label_filtered_by_the_others():
    requests = _prometheus(METRICS, "lockgate_ledger_rate_limit_checks_total", "outcome",
                           kind="requests")
    assert requests == {"ok": 1200, "over_limit": 3}
    assert _prometheus(METRICS, "lockgate_ledger_rate_limit_checks_total", "kind") == {
        "requests": 1203, "tokens": 1190}
    assert _prometheus(METRICS, "lockgate_router_admissions_total", "outcome") == {}


def test_checks_since_is_the_difference_of_two_readings():
    before = {"requests": {"ok": 10}, "admission": {}}
    after = {"requests": {"ok": 25, "error": 1}, "admission": {"admitted": 15}}
    assert checks_since(before, after) == {"requests": {"ok": 15, "error": 1},
                                           "admission": {"admitted": 15}}
