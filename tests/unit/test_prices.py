"""The price book kit: admin amounts, the shipped file, merging admin versions,
and the router's book built from a ListPrices answer."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import get_args

import pytest

from lockgate.ledger.v1 import ledger_service_pb2 as pb
from lockgate.prices import (
    MAX_USD_PER_MTOK,
    PROVIDER_TYPES,
    Price,
    PriceBook,
    amount,
    amount_text,
    shipped_price_book,
)
from services.router.config import ProviderType
from services.router.price_sync import book_of


def test_provider_types_are_the_routers():
    assert set(PROVIDER_TYPES) == set(get_args(ProviderType))


@pytest.mark.parametrize("text, value, canonical", [
    ("2.50", Decimal("2.5"), "2.5"),
    ("10.00", Decimal(10), "10"),
    ("0", Decimal(0), "0"),
    ("0.000000", Decimal(0), "0"),
    (" 3 ", Decimal(3), "3"),
    ("0.000001", Decimal("0.000001"), "0.000001"),
    ("1.2500000", Decimal("1.25"), "1.25"),  # trailing zeros are not precision
    ("10000", MAX_USD_PER_MTOK, "10000"),
])
def test_amounts_are_exact_decimals(text, value, canonical):
    assert amount(text) == value
    assert amount_text(amount(text)) == canonical


@pytest.mark.parametrize("text, reason", [
    ("", "not a decimal number"),
    ("-1", "negative"),
    ("-0", "negative"),
    ("NaN", "not a decimal number"),
    ("inf", "not a decimal number"),
    ("1e3", "not a decimal number"),
    (".5", "not a decimal number"),
    ("5.", "not a decimal number"),
    ("1,5", "not a decimal number"),
    ("0x10", "not a decimal number"),
    ("10000.000001", "above the bound"),
    ("0.0000001", "more than 6 decimal places"),
    ("9" * 13, "not a decimal number"),
])
def test_bad_amounts_are_refused_with_a_reason(text, reason):
    with pytest.raises(ValueError, match=reason):
        amount(text)


def test_every_shipped_price_passes_the_admin_checks():
    book = shipped_price_book()
    versions = list(book.versions())
    assert len(versions) >= len(book) >= 30
    for provider, model, price in versions:
        assert provider in PROVIDER_TYPES, (provider, model)
        for value in (price.input, price.output, price.cached_input):
            assert amount(str(value)) == value, (provider, model)
        assert price.since > dt.date(2023, 1, 1), (provider, model)  # every version dated
        assert price.cached_input <= price.input, (provider, model)


def test_the_major_providers_current_models_are_shipped():
    book = shipped_price_book()
    for key in ("openai/gpt-5", "openai/gpt-4.1", "openai/o3", "anthropic/claude-sonnet-4-5",
                "anthropic/claude-opus-4-5", "anthropic/claude-haiku-4-5",
                "gemini/gemini-2.5-pro", "gemini/gemini-2.5-flash",
                "mistral/mistral-large-latest", "mistral/mistral-medium-latest"):
        provider, model = key.split("/", 1)
        assert book.at(provider, model) is not None, key
    # A price change is a second version: the o3 cut of June 2025.
    assert book.at("openai", "o3", dt.date(2025, 6, 9)).input == Decimal("10.00")
    assert book.at("openai", "o3", dt.date(2025, 6, 10)).input == Decimal("2.00")


def price(since: str, value: str) -> Price:
    v = Decimal(value)
    return Price(v, v, v, dt.date.fromisoformat(since))


def test_merged_adds_versions_and_replaces_the_same_date():
    base = PriceBook({"openai/m": [price("2025-01-01", "1"), price("2025-06-01", "2")]})
    merged = base.merged({"openai/m": [price("2025-06-01", "3"), price("2026-01-01", "4")],
                          "mistral/x/y": [price("2025-01-01", "5")]})
    assert [(p, m, str(v.since), v.input) for p, m, v in merged.versions()] == [
        ("mistral", "x/y", "2025-01-01", Decimal(5)),  # a model name may hold a slash
        ("openai", "m", "2025-01-01", Decimal(1)),
        ("openai", "m", "2025-06-01", Decimal(3)),
        ("openai", "m", "2026-01-01", Decimal(4)),
    ]
    assert base.at("openai", "m", dt.date(2025, 7, 1)).input == 2  # the base is untouched
    assert merged != base and base.merged({}) == base


def listed(source: str, since: str, value: str, model: str = "m", cached: str = "") -> pb.PriceVersion:
    return pb.PriceVersion(provider="openai", model=model, effective_date=since,
                           input_usd_per_mtok=value, output_usd_per_mtok=value,
                           cached_input_usd_per_mtok=cached, source=source)


def test_router_book_prefers_admin_versions_of_the_same_date():
    shipped = PriceBook({"openai/m": [price("2025-01-01", "1")]})
    # The ledger lists the admin version first: it must still win over the shipped one.
    book = book_of(shipped, [listed("admin", "2025-01-01", "9"),
                             listed("shipped", "2025-01-01", "1"),
                             listed("admin", "2030-01-01", "7", cached="0.5")])
    assert book.at("openai", "m", dt.date(2025, 1, 1)).input == 9
    later = book.at("openai", "m", dt.date(2030, 1, 1))
    assert (later.input, later.cached_input) == (7, Decimal("0.5"))
    assert book.at("openai", "m", dt.date(2025, 1, 1)).cached_input == 9  # default: input


@pytest.mark.parametrize("bad", [
    listed("admin", "2025-13-01", "1"), listed("admin", "2025-01-01", "x"),
    listed("admin", "2025-01-01", "-1"), listed("admin", "2025-01-01", "NaN"),
])
def test_router_book_refuses_malformed_versions(bad):
    with pytest.raises(ValueError, match="malformed price"):
        book_of(PriceBook({}), [bad])
