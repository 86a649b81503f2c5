"""LedgerService RPCs SetRateLimit, ListRateLimits, DeleteRateLimit: convert, call the service, convert."""

from __future__ import annotations


class RateLimitRpcs:
    """Mixin of LedgerServicer."""
