"""`lockgate usage --by/--since/--bucket/--top/--csv`: the LedgerService/QueryUsage report.

Pure pieces (argument checks, durations, rows, CSV) are separate from the RPC
so they can be tested without a stack.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta

from lockgate.cli.errors import CliError

# The ledger's allowlists (services/ledger/analytics.py; a unit test keeps them equal).
DIMENSIONS = (
    "alias",
    "deployment",
    "provider",
    "provider_model",
    "key_id",
    "status",
    "error_type",
    "operation",
    "streamed",
    "cache_hit",
    "team_id",
    "principal",
    "api_id",
    "api_version",
    "subscription_id",
)
BUCKETS = ("minute", "hour", "day")
MEASURES = ("requests", "input_tokens", "output_tokens", "total_tokens", "errors", "cost")
#: The ledger's longest range.
MAX_RANGE = timedelta(days=90)
#: --top without --order-by ranks by tokens.
DEFAULT_TOP_ORDER = "total_tokens"

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION = re.compile(r"^(\d+)([smhdw])$")

# (CSV/JSON name, table header) of the measure columns, in output order.
MEASURE_COLUMNS = (
    ("requests", "REQUESTS"),
    ("errors", "ERRORS"),
    ("error_rate", "ERROR %"),
    ("input_tokens", "IN"),
    ("output_tokens", "OUT"),
    ("total_tokens", "TOTAL"),
    ("cost_usd", "COST USD"),
    ("cached_input_tokens", "CACHED IN"),
    ("estimated_requests", "ESTIMATED"),
    ("cache_hits", "CACHE HITS"),
    ("latency_p50_ms", "P50 MS"),
    ("latency_p95_ms", "P95 MS"),
    ("latency_p99_ms", "P99 MS"),
    ("ttft_p50_ms", "TTFT P50 MS"),
)


def dimensions(values: list[str] | None) -> list[str]:
    """--by values (repeatable, or comma-separated) -> checked dimension names."""
    out: list[str] = []
    for value in values or ():
        for name in (v.strip() for v in value.split(",")):
            if not name:
                continue
            if name not in DIMENSIONS:
                raise CliError(f"unknown dimension {name!r} (use: {', '.join(DIMENSIONS)})", 2)
            if name not in out:
                out.append(name)
    return out


def check_choice(flag: str, value: str | None, allowed: tuple[str, ...]) -> str:
    if value and value not in allowed:
        raise CliError(f"{flag}: unknown value {value!r} (use: {', '.join(allowed)})", 2)
    return value or ""


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """`30m`, `1h`, `7d`, `2w`, `90s` back from now, or an ISO 8601 time (naive = UTC)."""
    now = now or datetime.now(UTC)
    value = text.strip()
    match = _DURATION.match(value)
    if match:
        amount = int(match.group(1))
        if amount <= 0:
            raise CliError(f"--since: the duration must be positive, not {text!r}", 2)
        try:
            return now - timedelta(**{_UNITS[match.group(2)]: amount})
        except OverflowError:
            raise CliError(f"--since: duration {text!r} is too long", 2) from None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(
            f"--since: {text!r} is neither a duration (30m, 1h, 7d) nor an ISO time", 2
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def columns(dims: list[str], bucketed: bool) -> list[tuple[str, str]]:
    """(CSV name, table header) of every column of the report."""
    head = [("bucket_start", "BUCKET")] if bucketed else []
    return head + [(d, d.upper().replace("_", " ")) for d in dims] + list(MEASURE_COLUMNS)


def _number(value: float, digits: int = 3) -> str:
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return text or "0"


def values(row, dims: list[str], bucketed: bool, *, for_table: bool = False) -> list[str]:
    """One UsageRow as column strings (table: a percentage and a shorter time)."""
    out: list[str] = []
    if bucketed:
        if row.HasField("bucket_start"):
            start = row.bucket_start.ToDatetime(tzinfo=UTC)
            out.append(
                start.strftime("%Y-%m-%d %H:%M") if for_table
                else start.strftime("%Y-%m-%dT%H:%M:%SZ")
            )
        else:
            out.append("")
    out += [row.group.get(d, "") for d in dims]
    for name, _header in MEASURE_COLUMNS:
        if name == "cost_usd":  # exact: integer micro-USD shown as dollars
            micro = row.cost_micro_usd
            out.append(f"{'-' if micro < 0 else ''}{abs(micro) // 10**6}.{abs(micro) % 10**6:06d}")
            continue
        value = getattr(row, name)
        if name == "error_rate":
            out.append(f"{value * 100:.1f}%" if for_table else _number(value, 6))
        elif isinstance(value, float):
            out.append(_number(value))
        else:
            out.append(str(value))
    return out


def to_csv(rows, dims: list[str], bucketed: bool) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([name for name, _ in columns(dims, bucketed)])
    for row in rows:
        writer.writerow(values(row, dims, bucketed))
    return buffer.getvalue()
