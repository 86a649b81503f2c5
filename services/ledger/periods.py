"""Budget periods: calendar days, weeks and months in a time zone, or forever.

A period starts at local midnight in the budget's IANA time zone and ends at
the next period's start, so a day is 23 or 25 hours long across a DST change
and a month is as long as the calendar says. Computing the local *date* first
and converting its midnight back to UTC (zoneinfo) keeps that exact, where
adding 24 hours to an instant would drift by an hour twice a year.

Where midnight does not exist locally (a DST gap at 00:00, e.g. in
America/Santiago or Asia/Beirut), zoneinfo maps the missing wall time with the
offset in force before the gap: the instant it gives is the first one of the
new day, which is the period start we want.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lockgate.errors import InvalidRequest

PERIODS = ("day", "week", "month", "total")


@dataclass(frozen=True, slots=True)
class Period:
    """One period of a budget: [start, end) in UTC; both None for "total"."""

    start: datetime | None
    end: datetime | None
    #: Names the period in counters: its UTC start, or "total".
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        key = "total" if self.start is None else self.start.strftime("%Y%m%dT%H%M%SZ")
        object.__setattr__(self, "key", key)

    def contains(self, at: datetime) -> bool:
        return self.start is None or self.start <= at < self.end  # type: ignore[operator]

    def seconds_left(self, now: datetime) -> int | None:
        """Whole seconds until the period ends (rounded up); None if it never ends."""
        if self.end is None:
            return None
        return max(0, math.ceil((self.end - now).total_seconds()))


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`, or INVALID_ARGUMENT naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidRequest(
            f"unknown time zone {name!r}: use an IANA name such as 'UTC' or 'Europe/Berlin'",
            param="timezone",
        ) from None


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def _first_day(period: str, local: date) -> date:
    if period == "day":
        return local
    if period == "week":
        return local - timedelta(days=local.weekday())  # ISO weeks start on Monday
    return local.replace(day=1)


def _next_first_day(period: str, first: date) -> date:
    if period == "day":
        return first + timedelta(days=1)
    if period == "week":
        return first + timedelta(days=7)
    return (first.replace(day=28) + timedelta(days=4)).replace(day=1)


_TOTAL = Period(None, None)
#: (period, time zone) -> its latest period: every budget check asks for the
#: current one, so it is computed once per period, not once per call. Bounded by
#: the periods times the time zones that exist.
_latest: dict[tuple[str, str], Period] = {}


def period_at(period: str, tz_name: str, at: datetime) -> Period:
    """The period of kind `period`, in time zone `tz_name`, that contains `at`."""
    if period == "total":
        return _TOTAL
    latest = _latest.get((period, tz_name))
    if latest is not None and at.tzinfo is not None and latest.contains(at):
        return latest
    if period not in PERIODS:
        raise InvalidRequest(
            f"unknown period {period!r}: use one of {', '.join(PERIODS)}", param="period"
        )
    tz = zone(tz_name)
    first = _first_day(period, at.astimezone(tz).date())
    found = Period(_midnight(first, tz), _midnight(_next_first_day(period, first), tz))
    _latest[(period, tz_name)] = found
    return found
