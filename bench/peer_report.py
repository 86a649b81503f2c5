"""Pure arithmetic of `make bench-peers`: per-concurrency comparison rows (of
one round; bench/rounds.py combines the rounds), issue 7's S1 targets checked
against them, and the printed summary table."""

from __future__ import annotations

CONTENDERS = ("direct", "lockgate", "litellm", "portkey")
PEERS = ("litellm", "portkey")

# Issue 7, S1: at concurrency 50, Lockgate's throughput >= 2.5x Portkey's and
# >= 9x LiteLLM's with p99 <= 50 ms and no errors; at concurrency 1, added p50
# latency over direct <= 1.0 ms.
TARGET_CONCURRENCY_HIGH = 50
TARGET_CONCURRENCY_LOW = 1
TARGET_OVER_PORTKEY = 2.5
TARGET_OVER_LITELLM = 9.0
TARGET_P99_MS = 50.0
TARGET_ADDED_P50_MS = 1.0


def ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator to 3 decimals; None when the denominator is 0
    (a contender that served nothing has no meaningful ratio)."""
    if not denominator:
        return None
    return round(numerator / denominator, 3)


def compare(concurrency: int, measured: dict[str, dict]) -> dict:
    """One concurrency's row: each contender's wrk summary with its ratio to
    direct and its added latency over direct, and Lockgate over each peer."""
    direct = measured["direct"]
    row: dict = {"concurrency": concurrency}
    for name in CONTENDERS:
        if name not in measured:
            continue
        result = dict(measured[name])
        if name != "direct":
            result["vs_direct_rps"] = ratio(result["rps"], direct["rps"])
            result["added_p50_ms"] = round(result["p50_ms"] - direct["p50_ms"], 3)
            result["added_p99_ms"] = round(result["p99_ms"] - direct["p99_ms"], 3)
        row[name] = result
    lockgate = measured.get("lockgate")
    for peer in PEERS:
        if lockgate is not None and peer in measured:
            row[f"lockgate_over_{peer}_rps"] = ratio(lockgate["rps"], measured[peer]["rps"])
    return row


def _target(name: str, required: str, measured: float | int | None, met: bool) -> dict:
    return {"target": name, "required": required, "measured": measured, "met": met}


def targets(rows: list[dict]) -> list[dict]:
    """Issue 7's S1 targets, each with the measured value and whether it is
    met; a target whose concurrency or contender was not measured is left out."""
    by_concurrency = {row["concurrency"]: row for row in rows}
    checks = []
    high = by_concurrency.get(TARGET_CONCURRENCY_HIGH)
    if high is not None and "lockgate" in high:
        c = TARGET_CONCURRENCY_HIGH
        for peer, needed in (("portkey", TARGET_OVER_PORTKEY), ("litellm", TARGET_OVER_LITELLM)):
            value = high.get(f"lockgate_over_{peer}_rps")
            if f"lockgate_over_{peer}_rps" in high:
                checks.append(_target(f"c={c} Lockgate rps / {peer} rps", f">= {needed}",
                                      value, value is not None and value >= needed))
        p99 = high["lockgate"]["p99_ms"]
        checks.append(_target(f"c={c} Lockgate p99 ms", f"<= {TARGET_P99_MS}", p99,
                              p99 <= TARGET_P99_MS))
        errors = high["lockgate"]["errors"]
        checks.append(_target(f"c={c} Lockgate errors", "0", errors, errors == 0))
    low = by_concurrency.get(TARGET_CONCURRENCY_LOW)
    if low is not None and "lockgate" in low:
        added = low["lockgate"]["added_p50_ms"]
        checks.append(_target(f"c={TARGET_CONCURRENCY_LOW} Lockgate added p50 ms over direct",
                              f"<= {TARGET_ADDED_P50_MS}", added, added <= TARGET_ADDED_P50_MS))
    return checks


def _cell(value: float | int | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def table(rows: list[dict]) -> str:
    """The summary printed at the end of a run: one line per concurrency and
    contender."""
    header = ("c", "contender", "rps", "p50 ms", "p99 ms", "errors", "/ direct rps",
              "+p50 ms", "lockgate /")
    lines = [header]
    for row in rows:
        for name in CONTENDERS:
            result = row.get(name)
            if result is None:
                continue
            over = row.get(f"lockgate_over_{name}_rps") if name in PEERS else None
            lines.append((
                str(row["concurrency"]), name, _cell(result["rps"]), _cell(result["p50_ms"], 2),
                _cell(result["p99_ms"], 2), str(result["errors"]),
                _cell(result.get("vs_direct_rps"), 3), _cell(result.get("added_p50_ms"), 2),
                _cell(over, 2),
            ))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(width) if i not in (1,) else cell.ljust(width)
                               for i, (cell, width) in enumerate(zip(line, widths, strict=True)))
                     for line in lines)


def targets_text(checks: list[dict]) -> str:
    return "\n".join(
        f"{'met' if check['met'] else 'NOT met':>7}  {check['target']}: {check['measured']}"
        f" (target {check['required']})"
        for check in checks)
