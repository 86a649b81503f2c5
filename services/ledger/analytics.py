"""Usage analytics: what a QueryUsage may ask for, and the rows it gets back.

Everything a caller names (bucket, dimensions, order) is checked against the
allowlists below before any SQL is built; the store maps the names to columns
and never interpolates a caller's string.

Percentiles are continuous (PostgreSQL's percentile_cont): for a group of n
values sorted ascending and a fraction p, take position p * (n - 1); the
result interpolates linearly between the values at floor and ceil of that
position. PostgreSQL computes it in SQL; SQLite, which has no such aggregate,
ranks the values with window functions and returns only the rows at those
positions, and `interpolate` finishes the job here, with the same arithmetic.
Both are rounded to 0.001 ms, so both backends report the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from lockgate.errors import InvalidRequest

#: Dimensions a query may group by: the UsageEntry columns of the same name.
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
#: Measures rows can be ordered by (largest first).
MEASURES = ("requests", "input_tokens", "output_tokens", "total_tokens", "errors", "cost")

PERCENTILES = (0.5, 0.95, 0.99)
DEFAULT_RANGE = timedelta(hours=24)
MAX_RANGE = timedelta(days=90)
#: Most rows one query may return.
MAX_ROWS = 10_000


@dataclass(frozen=True, slots=True)
class UsageQuery:
    tenant_id: str
    bucket: str  # "" = no time bucketing
    group_by: tuple[str, ...]
    start: datetime  # inclusive, UTC
    end: datetime  # exclusive, UTC
    order_by: str  # "" = by bucket, then group values
    limit: int  # 0 = every row (up to MAX_ROWS)


@dataclass(slots=True)
class UsageRow:
    bucket_start: datetime | None
    group: dict[str, str]
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    estimated_requests: int = 0
    cache_hits: int = 0
    #: Sum of the entries' integer micro-USD cost, and how many had no price.
    cost_micro_usd: int = 0
    unpriced_requests: int = 0
    latency_ms: dict[float, float] = field(default_factory=dict)  # percentile -> ms
    ttft_p50_ms: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


def usage_query(
    tenant_id: str,
    *,
    bucket: str = "",
    group_by: list[str] | tuple[str, ...] = (),
    start: datetime | None = None,
    end: datetime | None = None,
    order_by: str = "",
    limit: int = 0,
    now: datetime | None = None,
) -> UsageQuery:
    """A checked query with defaults applied; InvalidRequest on anything outside the lists."""
    if bucket and bucket not in BUCKETS:
        raise InvalidRequest(
            f"unknown bucket {bucket!r}: use one of {', '.join(BUCKETS)}", param="bucket"
        )
    dims: list[str] = []
    for name in group_by:
        if name not in DIMENSIONS:
            raise InvalidRequest(
                f"unknown dimension {name!r}: use one of {', '.join(DIMENSIONS)}",
                param="group_by",
            )
        if name in dims:
            raise InvalidRequest(f"dimension {name!r} given twice", param="group_by")
        dims.append(name)
    if order_by and order_by not in MEASURES:
        raise InvalidRequest(
            f"unknown order {order_by!r}: use one of {', '.join(MEASURES)}", param="order_by"
        )
    if limit < 0 or limit > MAX_ROWS:
        raise InvalidRequest(f"limit must be between 0 and {MAX_ROWS}", param="limit")
    end = _utc(end) if end is not None else (now or datetime.now(UTC))
    start = _utc(start) if start is not None else end - DEFAULT_RANGE
    if end <= start:
        raise InvalidRequest("end_time must be after start_time", param="end_time")
    if end - start > MAX_RANGE:
        raise InvalidRequest(
            f"the time range may span at most {MAX_RANGE.days} days", param="start_time"
        )
    return UsageQuery(tenant_id, bucket, tuple(dims), start, end, order_by, limit)


def too_many_rows() -> InvalidRequest:
    return InvalidRequest(
        f"the result has more than {MAX_ROWS} rows: narrow the time range, use a coarser"
        " bucket or fewer dimensions, or set a limit",
        param="limit",
    )


def interpolate(values_at: dict[int, float], n: int, p: float) -> float:
    """percentile_cont from the values at ranks floor(p*(n-1)) and ceil(p*(n-1)) (0-based)."""
    position = p * (n - 1)
    lo = math.floor(position)
    hi = math.ceil(position)
    low = values_at[lo]
    return low + (values_at[hi] - low) * (position - lo)


def rounded(ms: float | None) -> float:
    return round(float(ms), 3) if ms is not None else 0.0


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
