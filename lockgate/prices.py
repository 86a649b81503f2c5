"""The price book: what a provider model costs per token, from lockgate/data/prices.yaml.

Money is Decimal (USD per million tokens here; the ledger converts to
integer micro-USD), never float. A model has effective-dated versions; `at()`
picks the newest one in force on a date, so a price change is a new entry,
not an edit, and past usage keeps its price.

The router prices calls from a book that merges the shipped file with the
versions platform admins set through the ledger (services/router/price_sync.py);
`amount()` is the check every admin-set amount passes.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache
from pathlib import Path

import yaml

PRICE_FILE = Path(__file__).parent / "data" / "prices.yaml"
_MILLION = Decimal(1_000_000)

#: Provider types a price is kept for: the router's (services/router/config.py
#: ProviderType; a unit test keeps them equal).
PROVIDER_TYPES = ("openai", "azure", "anthropic", "gemini", "mistral")
#: Bound on one amount, USD per million tokens: far above any list price, low
#: enough that a misplaced decimal point is refused.
MAX_USD_PER_MTOK = Decimal(10_000)
#: Amounts are exact to 1e-6 USD per million tokens (1e-12 USD per token).
MAX_DECIMAL_PLACES = 6
#: Plain decimal notation: no sign, exponent, NaN or infinity.
_PLAIN = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,24})?$")


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens."""

    input: Decimal
    output: Decimal
    cached_input: Decimal
    since: dt.date = dt.date.min

    def cost_usd(self, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0) -> Decimal:
        """Exact cost of a call; `input_tokens` includes the cached ones."""
        uncached = max(0, input_tokens - cached_input_tokens)
        return (
            uncached * self.input + cached_input_tokens * self.cached_input
            + output_tokens * self.output
        ) / _MILLION


    def cost_micro_usd(
        self, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0
    ) -> int:
        """The cost in integer micro-USD, rounded half up (so a call's rounding
        error is at most half a micro-dollar, and never compounds: each entry
        is rounded once, sums are exact)."""
        exact = self.cost_usd(input_tokens, output_tokens, cached_input_tokens) * _MILLION
        return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


class PriceBook:
    """Effective-dated prices keyed by "<provider type>/<provider model>"."""

    def __init__(self, versions: dict[str, list[Price]]):
        self._versions = {k: sorted(v, key=lambda p: p.since) for k, v in versions.items()}

    def versions(self) -> Iterator[tuple[str, str, Price]]:
        """(provider type, model, price) of every version, by key then date."""
        for key in sorted(self._versions):
            provider, _, model = key.partition("/")
            for price in self._versions[key]:
                yield provider, model, price

    def merged(self, overrides: dict[str, list[Price]]) -> PriceBook:
        """This book plus `overrides`; an override replaces the version of the
        same model and date."""
        merged: dict[str, dict[dt.date, Price]] = {
            key: {p.since: p for p in prices} for key, prices in self._versions.items()
        }
        for key, prices in overrides.items():
            by_date = merged.setdefault(key, {})
            for price in prices:
                by_date[price.since] = price
        return PriceBook({key: list(by_date.values()) for key, by_date in merged.items()})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PriceBook) and self._versions == other._versions

    __hash__ = None  # type: ignore[assignment]  (mutable-looking; compared, never hashed)

    def at(self, provider_type: str, model: str, day: dt.date | None = None) -> Price | None:
        """The price in force on `day` (today by default), or None if unknown."""
        day = day or dt.datetime.now(dt.UTC).date()
        found = None
        for price in self._versions.get(f"{provider_type}/{model}", ()):
            if price.since <= day:
                found = price
        return found

    def __len__(self) -> int:
        return len(self._versions)


def _decimal(value: object, where: str) -> Decimal:
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{where}: not a number: {value!r}") from None
    if result < 0 or not result.is_finite():
        raise ValueError(f"{where}: must be a non-negative number")
    return result


def amount(text: str) -> Decimal:
    """An admin-set amount (USD per million tokens) from its decimal text: finite,
    0 <= x <= MAX_USD_PER_MTOK, at most MAX_DECIMAL_PLACES decimals. ValueError
    with a user-facing reason otherwise."""
    value = text.strip() if isinstance(text, str) else ""
    if value.startswith("-"):
        raise ValueError(f"{text!r} is negative")
    if not _PLAIN.match(value):
        raise ValueError(f"{text!r} is not a decimal number like 2.50")
    result = Decimal(value)
    if result > MAX_USD_PER_MTOK:
        raise ValueError(f"{text!r} is above the bound of {MAX_USD_PER_MTOK} USD per million tokens")
    if -result.normalize().as_tuple().exponent > MAX_DECIMAL_PLACES:
        raise ValueError(f"{text!r} has more than {MAX_DECIMAL_PLACES} decimal places")
    return result


def amount_text(value: Decimal) -> str:
    """The canonical text of an amount: plain notation, no trailing zeros ("2.5", "10")."""
    return format(value.normalize(), "f")


def price_from(entry: dict, where: str) -> Price:
    """One version; `cached_input` defaults to `input`."""
    unknown = set(entry) - {"since", "input", "output", "cached_input"}
    if unknown:
        raise ValueError(f"{where}: unknown fields {sorted(unknown)}")
    since = entry.get("since", dt.date.min)
    if isinstance(since, str):
        since = dt.date.fromisoformat(since)
    if not isinstance(since, dt.date):
        raise ValueError(f"{where}.since: must be a date")
    price_in = _decimal(entry["input"], f"{where}.input")
    cached = entry.get("cached_input")
    return Price(
        input=price_in,
        output=_decimal(entry["output"], f"{where}.output"),
        cached_input=price_in if cached is None else _decimal(cached, f"{where}.cached_input"),
        since=since,
    )


def load_price_book(path: Path = PRICE_FILE) -> PriceBook:
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: top level must be a mapping")
    versions = {}
    for key, entries in raw.items():
        if not isinstance(entries, list) or not entries:
            raise ValueError(f"{path}: {key}: must be a non-empty list of versions")
        versions[key] = [price_from(e, f"{path}: {key}[{i}]") for i, e in enumerate(entries)]
    return PriceBook(versions)


@cache
def shipped_price_book() -> PriceBook:
    return load_price_book()
