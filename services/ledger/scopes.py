"""Who a call counts against: the scopes budgets and rate limits are set on."""

from __future__ import annotations

from dataclasses import dataclass

#: Scopes a budget can be set on.
BUDGET_SCOPES = ("tenant", "team", "key", "subscription")
#: Scopes a rate limit can be set on ("alias": a model alias, for the whole tenant).
RATE_LIMIT_SCOPES = ("tenant", "team", "key", "alias")


#: Scope -> the CallScopes field holding a call's id in it (looked up per
#: budget and limit check: a table, not a dict built per call).
_FIELDS = {"tenant": "tenant_id", "team": "team_id", "key": "key_id",
           "subscription": "subscription_id", "alias": "alias"}


@dataclass(frozen=True, slots=True)
class CallScopes:
    """One call's tenant, team, key, subscription and model alias ("" when none)."""

    tenant_id: str
    team_id: str = ""
    key_id: str = ""
    subscription_id: str = ""
    alias: str = ""

    def of(self, scope: str) -> str:
        """The call's id in one scope ("" when the call has none there)."""
        return getattr(self, _FIELDS[scope])

    @classmethod
    def of_entry(cls, entry: dict) -> CallScopes:
        """The scopes of a usage entry (as LedgerService.record sees it)."""
        return cls(
            tenant_id=entry["tenant_id"],
            team_id=entry.get("team_id", ""),
            key_id=entry.get("key_id", ""),
            subscription_id=entry.get("subscription_id", ""),
            alias=entry.get("alias", ""),
        )
