"""Budget periods across month ends, leap years, time zones and DST; the
in-process counters' all-or-nothing reservations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lockgate.errors import InvalidRequest, ServiceUnavailable
from lockgate.money import usd
from services.ledger.budget_alerts import crossed
from services.ledger.budget_counters import Hold, Level, MemoryCounters
from services.ledger.periods import period_at


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_day_in_utc():
    p = period_at("day", "UTC", utc(2026, 11, 26, 23, 59, 59))
    assert (p.start, p.end) == (utc(2026, 11, 26), utc(2026, 11, 27))
    assert p.contains(utc(2026, 11, 26, 12)) and not p.contains(utc(2026, 11, 27))


def test_day_follows_the_time_zone():
    # 23:30 UTC on the 26th is already the 27th in Berlin (UTC+1 in winter).
    p = period_at("day", "Europe/Berlin", utc(2026, 11, 26, 23, 30))
    assert (p.start, p.end) == (utc(2026, 11, 26, 23), utc(2026, 11, 27, 23))


def test_days_across_dst_are_23_and_25_hours():
    spring = period_at("day", "Europe/Berlin", utc(2026, 3, 29, 12))  # clocks go forward
    assert spring.end - spring.start == timedelta(hours=23)
    assert spring.start == utc(2026, 3, 28, 23)
    autumn = period_at("day", "Europe/Berlin", utc(2026, 10, 25, 12))  # clocks go back
    assert autumn.end - autumn.start == timedelta(hours=25)
    assert autumn.start == utc(2026, 10, 24, 22)
    new_york = period_at("day", "America/New_York", utc(2026, 3, 8, 12))
    assert new_york.end - new_york.start == timedelta(hours=23)


def test_midnight_that_does_not_exist_starts_the_day_at_the_first_instant():
    # Asia/Beirut springs forward at 00:00 (to 01:00) on the last Sunday of March.
    p = period_at("day", "Asia/Beirut", utc(2026, 3, 29, 12))
    assert p.start == utc(2026, 3, 28, 22)  # 00:00 EET = 01:00 EEST: the first instant
    assert p.end == utc(2026, 3, 29, 21)  # next midnight, in summer time
    assert p.end - p.start == timedelta(hours=23)


def test_week_starts_on_monday():
    p = period_at("week", "UTC", utc(2026, 11, 26, 10))  # a Thursday
    assert (p.start, p.end) == (utc(2026, 11, 23), utc(2026, 11, 30))
    sunday = period_at("week", "UTC", utc(2026, 11, 29, 23, 59))
    assert sunday.start == utc(2026, 11, 23)


def test_week_across_a_year_end():
    p = period_at("week", "UTC", utc(2027, 1, 1, 10))  # a Friday
    assert (p.start, p.end) == (utc(2026, 12, 28), utc(2027, 1, 4))


@pytest.mark.parametrize(("at", "start", "end"), [
    (utc(2026, 1, 31, 12), utc(2026, 1, 1), utc(2026, 2, 1)),
    (utc(2026, 2, 28, 23, 59), utc(2026, 2, 1), utc(2026, 3, 1)),
    (utc(2028, 2, 29, 12), utc(2028, 2, 1), utc(2028, 3, 1)),  # leap year
    (utc(2026, 12, 31, 23, 59), utc(2026, 12, 1), utc(2027, 1, 1)),
    (utc(2026, 4, 30, 0), utc(2026, 4, 1), utc(2026, 5, 1)),
])
def test_calendar_months(at, start, end):
    p = period_at("month", "UTC", at)
    assert (p.start, p.end) == (start, end)


def test_month_in_a_time_zone_and_across_dst():
    # 2026-10-31 23:30 UTC is November 1st in Tokyo.
    tokyo = period_at("month", "Asia/Tokyo", utc(2026, 10, 31, 23, 30))
    assert tokyo.start == utc(2026, 10, 31, 15)
    # October in Berlin starts in summer time and ends in winter time.
    berlin = period_at("month", "Europe/Berlin", utc(2026, 10, 15))
    assert berlin.start == utc(2026, 9, 30, 22) and berlin.end == utc(2026, 10, 31, 23)


def test_total_never_ends():
    p = period_at("total", "UTC", utc(2026, 11, 26))
    assert (p.start, p.end, p.key) == (None, None, "total")
    assert p.contains(utc(1999, 1, 1)) and p.seconds_left(utc(2026, 1, 1)) is None


def test_period_keys_differ_per_period_and_seconds_left_round_up():
    a = period_at("day", "UTC", utc(2026, 11, 26, 1))
    b = period_at("day", "UTC", utc(2026, 11, 27, 1))
    assert a.key != b.key
    assert a.seconds_left(utc(2026, 11, 26, 23, 59, 59, 500_000)) == 1


def test_bad_period_and_time_zone_are_invalid():
    with pytest.raises(InvalidRequest, match="period"):
        period_at("fortnight", "UTC", utc(2026, 1, 1))
    with pytest.raises(InvalidRequest, match="time zone 'Mars/Olympus'"):
        period_at("day", "Mars/Olympus", utc(2026, 1, 1))


def test_money_prints_exactly():
    assert usd(5_000_000) == "$5.00"
    assert usd(1) == "$0.000001"
    assert usd(1_234_500) == "$1.2345"
    assert usd(0) == "$0.00"


def test_thresholds_crossed():
    assert crossed(1000, 499) == []
    assert crossed(1000, 500) == [50]
    assert crossed(1000, 800) == [50, 80]
    assert crossed(1000, 1200) == [50, 80, 100]


# -- in-process counters ----------------------------------------------------------------


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_reservations_are_all_or_nothing():
    counters = MemoryCounters()
    await counters.seed("a", 0)
    await counters.seed("b", 900)
    holds = [Hold("a", 1000), Hold("b", 1000)]
    assert await counters.reserve("r1", holds, 100, 60) is None
    assert await counters.reserve("r2", holds, 1, 60) == "b"  # b: 900 + 100 + 1 > 1000
    assert await counters.level("a") == Level(0, 100)  # r2 reserved nothing anywhere
    assert await counters.level("b") == Level(900, 100)


async def test_soft_holds_count_but_never_refuse():
    counters = MemoryCounters()
    await counters.seed("soft", 5000)
    assert await counters.reserve("r1", [Hold("soft", None)], 10, 60) is None
    assert await counters.level("soft") == Level(5000, 10)


async def test_settle_releases_the_reservation_and_adds_the_actual_cost():
    counters = MemoryCounters()
    await counters.seed("a", 0)
    await counters.reserve("r1", [Hold("a", 1000)], 600, 60)
    assert await counters.reserve("r2", [Hold("a", 1000)], 600, 60) == "a"
    levels = await counters.settle("r1", [("a", 150)])
    assert levels == {"a": Level(150, 0)}
    assert await counters.reserve("r2", [Hold("a", 1000)], 600, 60) is None
    # settling twice never releases twice (the ledger settles new entries only, but be safe)
    await counters.settle("r2", [])
    await counters.settle("r2", [])
    assert await counters.level("a") == Level(150, 0)


async def test_a_reserved_request_id_is_reserved_once():
    counters = MemoryCounters()
    await counters.seed("a", 0)
    assert await counters.reserve("r1", [Hold("a", 1000)], 400, 60) is None
    assert await counters.reserve("r1", [Hold("a", 1000)], 400, 60) is None
    assert await counters.level("a") == Level(0, 400)


async def test_reservations_expire():
    clock = Clock()
    counters = MemoryCounters(clock=clock)
    await counters.seed("a", 0)
    await counters.reserve("r1", [Hold("a", 1000)], 900, 30)
    clock.now = 29
    assert await counters.reserve("r2", [Hold("a", 1000)], 200, 30) == "a"
    clock.now = 31
    assert await counters.reserve("r2", [Hold("a", 1000)], 200, 30) is None
    assert await counters.level("a") == Level(0, 200)


async def test_unseeded_keys_take_no_settlement_and_retain_drops_old_keys():
    counters = MemoryCounters()
    assert await counters.settle("r1", [("never-seeded", 10)]) == {}
    assert await counters.level("never-seeded") is None
    await counters.seed("old", 5)
    await counters.seed("new", 6)
    await counters.retain({"new"})
    assert await counters.level("old") is None and await counters.level("new") == Level(6, 0)


async def test_reservations_are_bounded():
    counters = MemoryCounters(max_reservations=2)
    await counters.seed("a", 0)
    await counters.reserve("r1", [Hold("a", None)], 1, 60)
    await counters.reserve("r2", [Hold("a", None)], 1, 60)
    with pytest.raises(ServiceUnavailable):
        await counters.reserve("r3", [Hold("a", None)], 1, 60)


async def test_settled_holds_leave_nothing_behind():
    clock = Clock()
    counters = MemoryCounters(clock=clock)
    await counters.seed("a", 0)
    await counters.reserve("open", [Hold("a", None)], 5, 600)
    for i in range(5000):
        await counters.reserve(f"r{i}", [Hold("a", None)], 1, 600)
        await counters.settle(f"r{i}", [("a", 1)])
    assert set(counters.holds) == {"open"}
    assert len(counters._expiry) <= 2 + 1024  # expiry entries of settled holds are dropped
    assert await counters.level("a") == Level(5000, 5)
    clock.now = 601  # the live hold still expires on time
    assert await counters.level("a") == Level(5000, 0)
