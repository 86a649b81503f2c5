"""What every auth use case shares: transactions, the admin policy, tenant
visibility, etags and the audit trail."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from lockgate.errors import NotFound, PermissionDenied
from lockgate.identity import Identity
from lockgate.revisions import check_etag, touch
from services.auth.admin_policy import AdminAuthorizer, Allowed, Resource
from services.auth.audit import audit_event, digest
from services.auth.models import Tenant
from services.auth.store import AuthStore


@dataclass(frozen=True, slots=True)
class Page:
    items: list
    next_page_token: str


class UseCases:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], authorizer: AdminAuthorizer):
        self.sessions = sessions
        self.authorizer = authorizer

    async def authorize(self, caller: Identity | None, action: str, resource: Resource,
                        grant=None) -> Allowed:
        return await self.authorizer.authorize(caller, action, resource, grant)

    async def visible_tenant(self, store: AuthStore, caller: Identity | None, ref: str) -> Tenant:
        """The tenant, if the caller may read it; otherwise NotFound, worded the same
        whether or not it exists (another tenant's name or id is never confirmed)."""
        tenant = await store.tenant_by_name_or_id(ref) if ref else None
        if tenant is None:
            raise NotFound("tenant not found", param="tenant")
        try:
            await self.authorize(caller, "tenants.get", Resource("tenant", tenant_id=tenant.id))
        except (NotFound, PermissionDenied):
            raise NotFound("tenant not found", param="tenant") from None
        return tenant

    check_etag = staticmethod(check_etag)
    touch = staticmethod(touch)

    @staticmethod
    def audit(store: AuthStore, caller: Identity | None, allowed: Allowed, action: str,
              tenant_id: str, object_type: str, object_id: str, before: str, after: Any) -> None:
        store.add(audit_event(caller, action, tenant_id, object_type, object_id, before,
                              digest(after), allowed.decision_id))

