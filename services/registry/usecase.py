"""What the registry's use cases share: transactions, the policies, the audit
chain and the change feed, API lookup with visibility, etags."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from lockgate.decision_log import DecisionLog
from lockgate.errors import NotFound, ServiceUnavailable
from lockgate.identity import Identity
from lockgate.policy import Evaluator
from lockgate.revisions import check_etag, touch
from services.registry import audit
from services.registry.access import can_see
from services.registry.models import Api, Change
from services.registry.store import ApiStore

log = logging.getLogger("lockgate.registry")

#: One message for "no such id" and "not visible to you": ids are never confirmed.
API_NOT_FOUND = "API not found"


def principal_input(caller: Identity) -> dict:
    return {"id": caller.principal_id, "kind": caller.principal_kind,
            "tenant_id": caller.tenant_id, "team_id": caller.team_id,
            "roles": list(caller.roles)}


def change(kind: str, subject_id: str) -> Change:
    return Change(subject_kind=kind, subject_id=subject_id, created_at=datetime.now(UTC))


class UseCases:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], policy: Evaluator,
                 decision_log: DecisionLog | None = None):
        self.sessions = sessions
        self.policy = policy
        self.decision_log = decision_log

    async def decide(self, entrypoint: str, policy_input: dict) -> tuple[Any, str]:
        """(policy result, decision id); ServiceUnavailable when the engine fails (closed)."""
        try:
            result = await self.policy.evaluate_async(entrypoint, policy_input)
        except Exception:  # noqa: BLE001 - fail closed, and say so
            log.exception("policy evaluation failed", extra={"entrypoint": entrypoint})
            raise ServiceUnavailable("governance policy evaluation failed") from None
        if self.decision_log is not None:
            return result, self.decision_log.record(entrypoint, policy_input, result,
                                                    self.policy.revision)
        return result, uuid.uuid4().hex

    @staticmethod
    async def visible_api(store: ApiStore, caller: Identity, ref: str) -> Api:
        api = await store.by_ref(caller.tenant_id, ref) if ref else None
        if api is None or not can_see(caller, api):
            raise NotFound(API_NOT_FOUND, param="api_id")
        return api

    check_etag = staticmethod(check_etag)
    touch = staticmethod(touch)

    @staticmethod
    async def audit(session: AsyncSession, caller: Identity | None, action: str, tenant_id: str,
                    object_type: str, object_id: str, before: str, after: Any,
                    decision_id: str = "") -> None:
        await audit.append(session, caller, action, tenant_id, object_type, object_id, before,
                           after, decision_id)
