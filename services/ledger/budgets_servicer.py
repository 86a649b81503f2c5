"""LedgerService RPCs SetBudget, ListBudgets, DeleteBudget and Admit: convert, call the service, convert."""

from __future__ import annotations


class BudgetRpcs:
    """Mixin of LedgerServicer."""
