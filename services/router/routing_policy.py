"""Policy-aware routing: Rego (policies/lockgate/routing/) filters an alias's
deployments for each caller, and decides which aliases /v1/models lists.

Decisions are cached on everything they depend on: the caller's tenant, key
scope and roles, the alias and the call's kind (the policy input has it), the
gateway config generation (the candidate deployments) and the policy revision
(policies and data) — an edit to either takes effect at once, and the cache
costs no staleness.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from lockgate.decision_log import DecisionLog
from lockgate.errors import PermissionDenied, ServiceUnavailable
from lockgate.identity import Identity
from lockgate.lru import BoundedLRU
from lockgate.policy import Evaluator

log = logging.getLogger("lockgate.router.policy")

ROUTING_DECISION = "lockgate/routing/decision"


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    alias_allowed: bool
    deployments: tuple[str, ...]
    reason: str


class RoutingPolicy:
    def __init__(
        self, engine: Evaluator, max_entries: int = 50_000,
        decision_log: DecisionLog | None = None,
    ):
        self.engine = engine
        #: key -> the decision, with the policy input and result it logs (a hit
        #: logs them as they are instead of building them again per call).
        self._cache: BoundedLRU[tuple, tuple[RoutingDecision, dict, dict]] = BoundedLRU(
            max_entries)
        #: Every decision, cached or not, in OPA's decision-log format.
        self.decision_log = decision_log

    async def decide(
        self, caller: Identity, alias: str, kind: str, deployments: list[dict], generation: int
    ) -> RoutingDecision:
        revision = self.engine.revision
        key = (
            revision, generation, caller.tenant_id, caller.tenant_name,
            caller.key_id, caller.roles, caller.models, alias, kind,
        )
        cached = self._cache.get(key)
        if cached is None:
            policy_input = _input(caller, alias, kind, deployments)
            decision = await self._evaluate(policy_input, deployments)
            cached = (decision, policy_input, {
                "alias_allowed": decision.alias_allowed,
                "deployments": list(decision.deployments),
                "reason": decision.reason,
            })
            self._cache.put(key, cached)
        decision, policy_input, result = cached
        if self.decision_log is not None:
            self.decision_log.record(ROUTING_DECISION, policy_input, result, revision)
        return decision

    async def allowed(
        self, caller: Identity, alias: str, kind: str, deployments: list[dict], generation: int
    ) -> tuple[str, ...]:
        """The deployments the caller may use; PermissionDenied with the policy's reason."""
        decision = await self.decide(caller, alias, kind, deployments, generation)
        if not decision.alias_allowed or not decision.deployments:
            raise PermissionDenied(decision.reason, code="model_not_allowed", param="model")
        return decision.deployments

    async def _evaluate(self, policy_input: dict, deployments: list[dict]) -> RoutingDecision:
        try:
            result = await self.engine.evaluate_async(ROUTING_DECISION, policy_input)
        except Exception:  # noqa: BLE001 - fail closed, and say so
            log.exception("routing policy evaluation failed")
            raise ServiceUnavailable("routing policy evaluation failed") from None
        if not isinstance(result, dict):
            return RoutingDecision(False, (), "Routing denied by policy.")
        names = result.get("deployments")
        known = {d["name"] for d in deployments}
        return RoutingDecision(
            alias_allowed=result.get("alias_allowed") is True,
            # Only deployments of this alias, whatever the policy answered.
            deployments=tuple(n for n in names if n in known) if isinstance(names, list) else (),
            reason=str(result.get("reason") or "Routing denied by policy."),
        )


def _input(caller: Identity, alias: str, kind: str, deployments: list[dict]) -> dict:
    """The policy input (documented in policies/lockgate/routing/routing.rego)."""
    return {
        "caller": {
            "tenant_id": caller.tenant_id,
            "tenant_name": caller.tenant_name,
            "key_id": caller.key_id,
            "roles": list(caller.roles),
            "models": list(caller.models),
        },
        "alias": alias,
        "kind": kind,
        "deployments": deployments,
    }
