"""Asking policies/lockgate/admin whether a caller may perform an admin action.

Every AuthService call goes through `AdminAuthorizer.authorize`: the policy
decides (RBAC plus tenant scoping) and this module turns its answer into
errors — NOT_FOUND when the caller may not even read the object, so ids of
other tenants are never confirmed; PERMISSION_DENIED when they may read but
not act. The decision id links the audit event to the decision-log entry.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field

from lockgate.decision_log import DecisionLog
from lockgate.errors import NotFound, PermissionDenied, ServiceUnavailable
from lockgate.identity import Identity
from lockgate.policy import Evaluator

log = logging.getLogger("lockgate.auth.admin")

ADMIN_DECISION = "lockgate/admin/decision"
SCOPES = ("self", "team", "tenant", "all")


@dataclass(frozen=True, slots=True)
class Resource:
    """What an action is on (for create and list: the container)."""

    type: str
    tenant_id: str = ""
    team_id: str = ""
    owner_id: str = ""
    #: The object's current roles (users, service accounts, keys).
    roles: tuple[str, ...] = ()

    def as_input(self) -> dict:
        return {"type": self.type, "tenant_id": self.tenant_id, "team_id": self.team_id,
                "owner_id": self.owner_id, "roles": list(self.roles)}


@dataclass(frozen=True, slots=True)
class Grant:
    """The rights a created or updated object would hold."""

    roles: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    models: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Allowed:
    #: The widest scope the caller's roles give for the action: self, team, tenant or all.
    scope: str
    decision_id: str = field(default="")


#: Internal calls (bootstrap, tests of the use cases) that no policy is asked about.
SYSTEM = Allowed(scope="all", decision_id="")


def principal_input(caller: Identity) -> dict:
    return {
        "kind": caller.principal_kind,
        "id": caller.principal_id,
        "key_id": caller.key_id,
        "tenant_id": caller.tenant_id,
        "team_id": caller.team_id,
        "roles": list(caller.roles),
        "scopes": list(caller.scopes),
        "models": list(caller.models),
    }


class AdminAuthorizer:
    def __init__(self, policy: Evaluator, decision_log: DecisionLog | None = None):
        self.policy = policy
        self.decision_log = decision_log

    async def authorize(
        self,
        caller: Identity | None,
        action: str,
        resource: Resource,
        grant: Grant | None = None,
    ) -> Allowed:
        """Allowed (with the list scope), or NotFound / PermissionDenied."""
        if caller is None:
            return SYSTEM
        policy_input: dict = {
            "principal": principal_input(caller),
            "action": action,
            "resource": resource.as_input(),
        }
        if grant is not None:
            policy_input["grant"] = {
                "roles": list(grant.roles), "scopes": list(grant.scopes),
                "models": list(grant.models),
            }
        try:
            result = await self.policy.evaluate_async(ADMIN_DECISION, policy_input)
        except Exception:  # noqa: BLE001 - fail closed, and say so
            log.exception("admin policy evaluation failed", extra={"action": action})
            raise ServiceUnavailable("admin policy evaluation failed") from None
        if not isinstance(result, dict):
            result = {"allow": False, "status": 404, "reason": "not found", "scope": ""}
        if self.decision_log is not None:
            decision_id = self.decision_log.record(
                ADMIN_DECISION, policy_input, result, self.policy.revision
            )
        else:
            decision_id = uuid.uuid4().hex
        if result.get("allow") is True and result.get("scope") in SCOPES:
            return Allowed(scope=str(result["scope"]), decision_id=decision_id)
        if result.get("status") == 403:
            raise PermissionDenied(str(result.get("reason") or "permission denied"),
                                   code="permission_denied")
        raise NotFound(f"{resource.type.replace('_', ' ')} not found", code="not_found")
