"""LedgerService RPCs ListCalls: convert, call the service, convert."""

from __future__ import annotations


class CallLogRpcs:
    """Mixin of LedgerServicer."""
