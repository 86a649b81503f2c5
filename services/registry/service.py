"""Registry use cases, assembled: the catalog, versions and lifecycle,
subscriptions, the audit log, and the governance watch hub."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from lockgate.decision_log import DecisionLog
from lockgate.errors import PermissionDenied
from lockgate.identity import Identity
from lockgate.pagination import decode_cursor, encode_cursor, page_size
from lockgate.policy import Evaluator
from lockgate.webhook import Webhook
from services.registry import audit
from services.registry.access import is_platform_admin
from services.registry.catalog import Catalog
from services.registry.models import AuditEvent
from services.registry.store import ApiStore
from services.registry.subscriptions import Subscriptions
from services.registry.versions import LastCall, Versions
from services.registry.watch import GovernanceHub


class RegistryService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        policy: Evaluator | None = None,
        *,
        decision_log: DecisionLog | None = None,
        last_call: LastCall | None = None,
        webhook: Webhook | None = None,
        watch_interval: float = 0.2,
    ):
        if policy is None:
            from lockgate.policy import PolicyEngine

            policy = PolicyEngine()
        self.sessions = sessions
        self.catalog = Catalog(sessions, policy, decision_log)
        self.versions = Versions(sessions, policy, decision_log, last_call)
        self.subscriptions = Subscriptions(sessions, policy, decision_log, webhook)
        self.hub = GovernanceHub(sessions, watch_interval)

    async def list_audit_events(self, caller: Identity, size: int, token: str,
                                object_id: str = "") -> tuple[list[AuditEvent], str]:
        """The caller's tenant's registry audit events, newest first (tenant admins)."""
        size = page_size(size)
        if not ({"tenant_admin", "platform_admin"} & set(caller.roles)):
            raise PermissionDenied("the audit log is for tenant admins",
                                   code="permission_denied")
        async with self.sessions() as session:
            rows = await ApiStore(session).audit_page(caller.tenant_id, size + 1,
                                                      decode_cursor(token), object_id)
        if len(rows) > size:
            rows = rows[:size]
            return rows, encode_cursor(rows[-1].seq or 0)
        return rows, ""

    async def verify_audit_chain(self, caller: Identity) -> audit.Verdict:
        if not is_platform_admin(caller):
            raise PermissionDenied("verifying the audit chain is for platform admins",
                                   code="permission_denied")
        async with self.sessions() as session:
            return await audit.verify(session)
