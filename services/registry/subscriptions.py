"""Subscriptions: a team asks to use an API (one version or all), the approval
policy decides what happens (approved at once, pending for the owners, or
rejected), and the owners approve, reject or revoke. Approved subscriptions
reach the gateway through the watch stream within a second.
"""

from __future__ import annotations

from datetime import UTC, datetime

from lockgate.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidRequest,
    NotFound,
    PermissionDenied,
)
from lockgate.identity import Identity
from lockgate.ids import new_id
from lockgate.pagination import decode_cursor, encode_cursor, page_size
from lockgate.prompts.compat import parse_version
from lockgate.webhook import Webhook
from services.registry.access import can_manage, is_platform_admin, rank
from services.registry.audit import digest
from services.registry.models import Api, Subscription
from services.registry.store import ApiStore
from services.registry.usecase import API_NOT_FOUND, UseCases, change, principal_input

APPROVAL_DECISION = "lockgate/approval/decision"
MAY_DECIDE = "lockgate/approval/may_decide"
MAX_TEXT = 2000
STATES = ("pending", "approved", "rejected", "revoked")
#: action -> (states it applies to, the resulting state)
TRANSITIONS = {
    "approve": (("pending",), "approved"),
    "reject": (("pending",), "rejected"),
    "revoke": (("pending", "approved"), "revoked"),
}

NOT_FOUND = "subscription not found"


def _api_input(api: Api) -> dict:
    return {"id": api.id, "name": api.name, "kind": api.kind, "tenant_id": api.tenant_id,
            "owner_team_id": api.owner_team_id, "visibility": api.visibility,
            "shared_tenants": {t: True for t in api.shared_tenant_ids or []}}


def _text(value: str, param: str) -> str:
    if len(value) > MAX_TEXT:
        raise InvalidRequest(f"{param}: at most {MAX_TEXT} characters", param=param)
    return value


class Subscriptions(UseCases):
    def __init__(self, sessions, policy, decision_log=None, webhook: Webhook | None = None):
        super().__init__(sessions, policy, decision_log)
        self.webhook = webhook

    async def create(self, caller: Identity, ref: str, version: str, justification: str
                     ) -> Subscription:
        justification = _text(justification.strip(), "justification")
        if version:
            version = str(parse_version(version))
        if not caller.team_id:
            raise InvalidRequest("subscriptions belong to a team: call with a key of the team",
                                 param="team")
        async with self.sessions() as session, session.begin():
            store = ApiStore(session)
            api = await self.visible_api(store, caller, ref)
            if version:
                target = await store.version(api.id, version)
                if target is None or target.state == "draft":
                    raise NotFound("version not found", param="version")
                if target.state == "retired":
                    raise FailedPrecondition(f"version {version} is retired", param="version")
            if await store.open_subscription(caller.team_id, api.id, version):
                raise AlreadyExists("the team already has a pending or approved subscription "
                                    "to this API", param="api_id")
            decision, decision_id = await self.decide(APPROVAL_DECISION, {
                "principal": principal_input(caller),
                "api": _api_input(api),
                "subscriber": {"tenant_id": caller.tenant_id, "team_id": caller.team_id},
                "request": {"version": version, "justification": justification},
            })
            outcome = decision.get("outcome") if isinstance(decision, dict) else None
            reason = str((decision or {}).get("reason") or "") if isinstance(decision, dict) \
                else ""
            if outcome not in ("approved", "pending"):
                if reason == API_NOT_FOUND:
                    raise NotFound(API_NOT_FOUND, param="api_id")
                if isinstance(decision, dict) and decision.get("justification_required"):
                    raise InvalidRequest(reason or "a justification is required",
                                         param="justification")
                raise PermissionDenied(reason or "denied by approval policy",
                                       code="subscription_denied")
            now = datetime.now(UTC)
            row = Subscription(
                id=new_id("sub"), api_id=api.id, version=version,
                subscriber_tenant_id=caller.tenant_id, team_id=caller.team_id, state=outcome,
                justification=justification,
                decision_reason=reason if outcome == "approved" else "",
                decided_by="policy" if outcome == "approved" else "", created_at=now,
                updated_at=now,
            )
            store.add(row, change("subscription", row.id))
            await self.audit(session, caller, "subscriptions.create", api.tenant_id,
                             "subscription", row.id, "", row, decision_id)
        self._notify("subscription.requested" if outcome == "pending"
                     else "subscription.approved", api, row)
        return row

    async def _visible(self, store: ApiStore, caller: Identity, subscription_id: str
                       ) -> tuple[Subscription, Api]:
        row = await store.subscription(subscription_id) if subscription_id else None
        api = await store.by_id(row.api_id) if row else None
        if row is None or api is None:
            raise NotFound(NOT_FOUND, param="subscription_id")
        mine = row.team_id == caller.team_id and row.subscriber_tenant_id == caller.tenant_id
        tenant_admin = (row.subscriber_tenant_id == caller.tenant_id
                        and "tenant_admin" in caller.roles)
        if not (mine or tenant_admin or can_manage(caller, api) or is_platform_admin(caller)):
            raise NotFound(NOT_FOUND, param="subscription_id")
        return row, api

    async def api_names(self, rows: list[Subscription]) -> dict[str, str]:
        """{api id: name} for showing subscriptions (their APIs are visible to the caller)."""
        async with self.sessions() as session:
            store = ApiStore(session)
            return {api_id: api.name for api_id in {r.api_id for r in rows}
                    if (api := await store.by_id(api_id)) is not None}

    async def get(self, caller: Identity, subscription_id: str) -> Subscription:
        async with self.sessions() as session:
            row, _ = await self._visible(ApiStore(session), caller, subscription_id)
            return row

    async def list(self, caller: Identity, size: int, token: str, *, pending_approval: bool,
                   api_ref: str = "", state: str = "") -> tuple[list[Subscription], str]:
        size = page_size(size)
        after = decode_cursor(token)
        if state and state not in STATES:
            raise InvalidRequest(f"state must be one of {', '.join(STATES)}", param="state")
        async with self.sessions() as session:
            store = ApiStore(session)
            api_id = (await self.visible_api(store, caller, api_ref)).id if api_ref else ""
            if pending_approval:
                if is_platform_admin(caller):
                    managed = None
                elif "tenant_admin" in caller.roles:
                    managed = await store.apis_managed_by(caller.tenant_id, None)
                elif rank(caller) >= 3 and caller.team_id:
                    managed = await store.apis_managed_by(caller.tenant_id, caller.team_id)
                else:
                    managed = []
                rows = await store.subscriptions_page(
                    size + 1, after, api_ids=managed, api_id=api_id, state=state or "pending")
            else:
                if not caller.team_id:
                    return [], ""
                rows = await store.subscriptions_page(size + 1, after, team_id=caller.team_id,
                                                      api_id=api_id, state=state)
        if len(rows) > size:
            rows = rows[:size]
            return rows, encode_cursor(rows[-1].seq or 0)
        return rows, ""

    async def decide_on(self, caller: Identity, subscription_id: str, action: str,
                        reason: str) -> Subscription:
        """approve, reject or revoke, if the approval policy's may_decide allows it."""
        reason = _text(reason.strip(), "reason")
        states, target = TRANSITIONS[action]
        async with self.sessions() as session, session.begin():
            store = ApiStore(session)
            row, api = await self._visible(store, caller, subscription_id)
            decision, decision_id = await self.decide(MAY_DECIDE, {
                "principal": principal_input(caller),
                "api": {"tenant_id": api.tenant_id, "owner_team_id": api.owner_team_id},
                "subscriber": {"team_id": row.team_id, "tenant_id": row.subscriber_tenant_id},
                "action": action,
            })
            if not isinstance(decision, dict) or decision.get("allow") is not True:
                raise PermissionDenied(str((decision or {}).get("reason") or "not allowed")
                                       if isinstance(decision, dict) else "not allowed",
                                       code="permission_denied")
            if row.state not in states:
                raise FailedPrecondition(f"the subscription is {row.state}; only "
                                         f"{' or '.join(states)} subscriptions can be {target}",
                                         param="subscription_id")
            before = digest(row)
            row.state, row.decision_reason = target, reason
            row.decided_by = caller.principal or f"key:{caller.key_id}"
            self.touch(row)
            store.add(row, change("subscription", row.id))
            await self.audit(session, caller, f"subscriptions.{action}", api.tenant_id,
                             "subscription", row.id, before, row, decision_id)
        self._notify(f"subscription.{target}", api, row)
        return row

    def _notify(self, event: str, api: Api, row: Subscription) -> None:
        if self.webhook is not None:
            self.webhook.send(event, {
                "subscription_id": row.id, "api_id": api.id, "api_name": api.name,
                "api_tenant_id": api.tenant_id, "version": row.version,
                "team_id": row.team_id, "subscriber_tenant_id": row.subscriber_tenant_id,
                "state": row.state, "justification": row.justification,
                "reason": row.decision_reason,
            })
