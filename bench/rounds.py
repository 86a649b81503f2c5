"""Many rounds of a measurement -> one result: what `make bench` and `make
bench-peers` report for S1, where each concurrency is measured in interleaved
rounds because one 10 s sample on this shared machine moves by a third between
runs minutes apart (docs/performance.md).

Every round has the same shape (nested dicts of figures). In the combined
result each figure is the median over the rounds of that figure; counts are
totals instead: the request and error counts of a wrk run, and every count
under `governance_checks` (how calls were counted against their limits). The
rounds themselves are kept under "rounds".

A ratio is a figure like any other, so a ratio measured within each round
(Lockgate and a peer, or governed and direct, seconds apart on the machine as
it was then) is combined as the median of those paired ratios, not rebuilt
from medians taken from different rounds: the paired figure is the steadier
one when the machine's speed drifts.
"""

from __future__ import annotations

import statistics

#: Figures that add up over rounds.
TOTALS = frozenset({"requests", "errors"})
#: Subtrees whose every figure is a count.
TOTAL_TREES = frozenset({"governance_checks"})
#: What a round is of, the same in every round.
LABELS = frozenset({"concurrency"})


def median(values: list) -> float | int | None:
    """The median of one figure over the rounds; None if any round has none (a
    contender that served nothing in a round has no ratio for the whole run)."""
    if any(value is None for value in values):
        return None
    middle = statistics.median(values)
    return round(middle, 3) if isinstance(middle, float) else middle


def _total_tree(values: list[dict]) -> dict:
    """Counts keyed alike, summed key by key (a key missing in a round is 0)."""
    out: dict = {}
    for value in values:
        for key, count in value.items():
            if isinstance(count, dict):
                out[key] = _total_tree([out.get(key, {}), count])
            else:
                out[key] = out.get(key, 0) + count
    return out


def _combine(values: list, name: str = ""):
    if name in TOTAL_TREES:
        return _total_tree(values)
    if isinstance(values[0], dict):
        return {key: _combine([v[key] for v in values], key) for key in values[0]}
    if name in TOTALS:
        return sum(values)
    if name in LABELS or isinstance(values[0], bool | str):
        return values[0]
    return median(values)


def combine(rounds: list[dict]) -> dict:
    """Rounds of one measurement, in the order they ran -> one result (see the
    module's docstring), with the rounds under "rounds"."""
    if not rounds:
        raise ValueError("no rounds to combine")
    combined = _combine(rounds)
    combined["rounds"] = rounds
    return combined
