"""Money as people read and type it: integer micro-USD (1e-6 USD) to and from
dollar text, exactly (Decimal, never float)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

MICRO_PER_USD = 1_000_000
_MICRO = Decimal(MICRO_PER_USD)


def usd(micro: int) -> str:
    """"$1.234567", trailing zeros cut down to cents: "$5.00", "$0.000001"."""
    text = f"{Decimal(micro) / _MICRO:.6f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"${whole}.{frac.ljust(2, '0')}"


def parse_usd(text: str) -> int:
    """"5", "0.25", "$1.50" -> integer micro-USD; ValueError unless positive with at
    most 6 decimals."""
    try:
        value = Decimal(text.strip().lstrip("$").replace("_", ""))
    except InvalidOperation:
        raise ValueError(f"not an amount of dollars: {text!r}") from None
    if not value.is_finite() or value <= 0:
        raise ValueError("a positive amount of dollars")
    micro = value * _MICRO
    if micro != micro.to_integral_value():
        raise ValueError("at most 6 decimals (a micro-dollar)")
    return int(micro)
