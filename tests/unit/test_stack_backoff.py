"""Restart backoff: 0.5 s doubling to 30 s, reset after a long healthy run."""

from __future__ import annotations

import pytest

from lockgate.stack.backoff import Backoff


def test_default_schedule_doubles_to_thirty_seconds():
    backoff = Backoff()
    assert [backoff.next_delay() for _ in range(9)] == [
        0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0
    ]


def test_reset_starts_over():
    backoff = Backoff()
    for _ in range(4):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_crash_after_sixty_healthy_seconds_counts_as_first():
    backoff = Backoff()
    assert [backoff.on_crash(None) for _ in range(3)] == [0.5, 1.0, 2.0]
    assert backoff.on_crash(59.9) == 4.0  # not healthy long enough: keep backing off
    assert backoff.on_crash(60.0) == 0.5
    assert backoff.on_crash(1.0) == 1.0


@pytest.mark.parametrize(
    "kwargs", [{"initial": 0}, {"initial": 2, "maximum": 1}, {"factor": 0.5}]
)
def test_nonsense_parameters_are_rejected(kwargs):
    with pytest.raises(ValueError):
        Backoff(**kwargs)
