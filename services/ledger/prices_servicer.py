"""LedgerService RPCs ListPrices, SetPrice, DeletePrice: convert, call the service, convert."""

from __future__ import annotations


class PriceRpcs:
    """Mixin of LedgerServicer."""
