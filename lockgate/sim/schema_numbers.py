"""Numeric keywords of a JSON Schema for the simulator's structured outputs: the
bounds a number must fall in, and the `multipleOf` step (exact, with Fractions)."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any


def number_of(value: Any) -> int | float | None:
    """A schema keyword's number, or None (not a finite number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        if isinstance(value, str):  # Gemini's int64/double as strings
            try:
                return float(value) if any(c in value for c in ".eE") else int(value)
            except ValueError:
                return None
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def bounds(schema: dict[str, Any]) -> tuple[Any, Any, bool, bool]:
    """(lower bound, upper bound, lower exclusive, upper exclusive), None: unbounded."""
    low, high = number_of(schema.get("minimum")), number_of(schema.get("maximum"))
    xlow, xhigh = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    low_excl = high_excl = False
    if xlow is True:  # draft 4: a flag on minimum
        low_excl = low is not None
    elif (x := number_of(xlow)) is not None and (low is None or x >= low):
        low, low_excl = x, True
    if xhigh is True:
        high_excl = high is not None
    elif (x := number_of(xhigh)) is not None and (high is None or x <= high):
        high, high_excl = x, True
    return low, high, low_excl, high_excl


def window(low: Any, high: Any) -> tuple[Any, Any]:
    """The range to draw in: the bounds, 100 wide from the one given, else 0..100."""
    if low is None and high is None:
        return 0, 100
    if low is None:
        return high - 100, high
    if high is None:
        return low, low + 100
    return low, max(low, high)


def step_of(schema: dict[str, Any]) -> Fraction | None:
    m = number_of(schema.get("multipleOf"))
    if m is None or m <= 0:
        return None
    return Fraction(str(m)) if isinstance(m, float) else Fraction(m)


def multiple_ok(value: int | float, multiple: Any) -> bool:
    """Whether ``value`` is a multiple as validators check it (float division)."""
    m = number_of(multiple)
    if isinstance(m, float):
        quotient = value / m
        return math.isfinite(quotient) and int(quotient) == quotient
    if isinstance(value, float):
        return value % m == 0
    return value % m == 0
