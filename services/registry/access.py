"""Who may see and who may manage an API.

Seeing follows the API's visibility (the same rules the approval policy uses
for subscriptions, policies/lockgate/approval); managing (editing, versions,
lifecycle requests) belongs to the owner team's admins and the tenant's
admins. Lifecycle transitions and subscription decisions are then decided by
policy; these rules only keep other callers away from the objects at all, and
an API a caller may not see answers NOT_FOUND like one that does not exist.
"""

from __future__ import annotations

from lockgate.identity import Identity
from services.registry.models import Api

ROLE_RANK = {"viewer": 1, "developer": 2, "team_admin": 3, "tenant_admin": 4, "platform_admin": 5}
VISIBILITIES = ("private", "team", "tenant", "shared", "public")


def rank(caller: Identity) -> int:
    return max((ROLE_RANK.get(r, 0) for r in caller.roles), default=0)


def is_platform_admin(caller: Identity) -> bool:
    return "platform_admin" in caller.roles


def can_manage_team(caller: Identity, tenant_id: str, team_id: str) -> bool:
    """Team admins of the team, tenant admins of its tenant, platform admins."""
    if is_platform_admin(caller):
        return True
    if caller.tenant_id != tenant_id:
        return False
    return rank(caller) >= ROLE_RANK["tenant_admin"] or (
        bool(team_id) and caller.team_id == team_id and rank(caller) >= ROLE_RANK["team_admin"]
    )


def can_manage(caller: Identity, api: Api) -> bool:
    return can_manage_team(caller, api.tenant_id, api.owner_team_id)


def can_see(caller: Identity, api: Api) -> bool:
    if can_manage(caller, api):
        return True
    same_tenant = caller.tenant_id == api.tenant_id
    if api.visibility == "public":
        return True
    if api.visibility == "shared":
        return same_tenant or caller.tenant_id in (api.shared_tenant_ids or [])
    if api.visibility == "tenant":
        return same_tenant
    if api.visibility == "team":
        return same_tenant and bool(caller.team_id) and caller.team_id == api.owner_team_id
    return False  # private: its managers only
