"""Registry queries. Never commits: the service owns transactions."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func
from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.registry.models import Api, ApiVersion, AuditEvent, Change, Subscription


class ApiStore:
    def __init__(self, session: AsyncSession):
        self.session = session

    def add(self, *objs) -> None:
        self.session.add_all(objs)

    async def flush(self) -> None:
        await self.session.flush()

    # -- APIs ----------------------------------------------------------------------------

    async def get(self, tenant_id: str, api_id: str) -> Api | None:
        query = select(Api).where(Api.id == api_id, Api.tenant_id == tenant_id)
        return (await self.session.exec(query)).first()

    async def by_ref(self, home_tenant_id: str, ref: str) -> Api | None:
        """An API by id (any tenant: the caller's visibility is checked after), or by
        name within the caller's own tenant."""
        query = select(Api).where(
            or_(Api.id == ref, (Api.name == ref) & (Api.tenant_id == home_tenant_id))
        )
        return (await self.session.exec(query)).first()

    async def by_id(self, api_id: str) -> Api | None:
        return (await self.session.exec(select(Api).where(Api.id == api_id))).first()

    async def catalog_page(self, home_tenant_id: str | None, limit: int,
                           after_seq: int | None, query_text: str = "", kind: str = ""
                           ) -> list[Api]:
        """Candidates the caller might see: their tenant's APIs and every shared or public
        one (visibility is then checked row by row); every API for home_tenant_id None."""
        query = select(Api)
        if home_tenant_id is not None:
            query = query.where(or_(Api.tenant_id == home_tenant_id,
                                    col(Api.visibility).in_(["shared", "public"])))
        if after_seq is not None:
            query = query.where(col(Api.seq) > after_seq)
        if kind:
            query = query.where(Api.kind == kind)
        if query_text:
            pattern = f"%{query_text.lower()}%"
            query = query.where(or_(func.lower(Api.name).like(pattern, escape="\\"),
                                    func.lower(Api.description).like(pattern, escape="\\")))
        query = query.order_by(col(Api.seq)).limit(limit)
        return list((await self.session.exec(query)).all())

    # -- versions --------------------------------------------------------------------------

    async def version(self, api_id: str, version: str) -> ApiVersion | None:
        query = select(ApiVersion).where(ApiVersion.api_id == api_id,
                                         ApiVersion.version == version)
        return (await self.session.exec(query)).first()

    async def versions(self, api_id: str) -> list[ApiVersion]:
        query = select(ApiVersion).where(ApiVersion.api_id == api_id).order_by(
            col(ApiVersion.major), col(ApiVersion.minor))
        return list((await self.session.exec(query)).all())

    async def versions_of(self, api_ids: Iterable[str]) -> list[ApiVersion]:
        ids = list(api_ids)
        if not ids:
            return []
        query = select(ApiVersion).where(col(ApiVersion.api_id).in_(ids))
        return list((await self.session.exec(query)).all())

    async def live_aliases(self, aliases: list[str], except_api: str, except_version: str
                           ) -> dict[str, str]:
        """{alias: "api/version"} for aliases already bound by another non-draft version."""
        query = select(ApiVersion).where(col(ApiVersion.state).in_(
            ["published", "deprecated", "retired"]))
        taken: dict[str, str] = {}
        for row in (await self.session.exec(query)).all():
            if row.api_id == except_api and row.version == except_version:
                continue
            for alias in row.model_aliases:
                if alias in aliases:
                    taken[alias] = f"{row.api_id}/{row.version}"
        return taken

    # -- subscriptions ---------------------------------------------------------------------

    async def subscription(self, subscription_id: str) -> Subscription | None:
        query = select(Subscription).where(Subscription.id == subscription_id)
        return (await self.session.exec(query)).first()

    async def open_subscription(self, team_id: str, api_id: str, version: str
                                ) -> Subscription | None:
        query = select(Subscription).where(
            Subscription.team_id == team_id, Subscription.api_id == api_id,
            Subscription.version == version,
            col(Subscription.state).in_(["pending", "approved"]),
        )
        return (await self.session.exec(query)).first()

    async def subscriptions_page(self, limit: int, after_seq: int | None, *,
                                 team_id: str | None = None, api_ids: list[str] | None = None,
                                 api_id: str = "", state: str = "") -> list[Subscription]:
        query = select(Subscription)
        if team_id is not None:
            query = query.where(Subscription.team_id == team_id)
        if api_ids is not None:
            query = query.where(col(Subscription.api_id).in_(api_ids))
        if api_id:
            query = query.where(Subscription.api_id == api_id)
        if state:
            query = query.where(Subscription.state == state)
        if after_seq is not None:
            query = query.where(col(Subscription.seq) > after_seq)
        query = query.order_by(col(Subscription.seq)).limit(limit)
        return list((await self.session.exec(query)).all())

    async def approved_subscriptions(self, ids: Iterable[str] | None = None
                                     ) -> list[Subscription]:
        query = select(Subscription).where(Subscription.state == "approved")
        if ids is not None:
            query = query.where(col(Subscription.id).in_(list(ids)))
        return list((await self.session.exec(query)).all())

    async def apis_managed_by(self, tenant_id: str | None, team_id: str | None) -> list[str]:
        query = select(Api.id)
        if tenant_id is not None:
            query = query.where(Api.tenant_id == tenant_id)
        if team_id is not None:
            query = query.where(Api.owner_team_id == team_id)
        return list((await self.session.exec(query)).all())

    # -- audit and changes -------------------------------------------------------------------

    async def audit_page(self, tenant_id: str, limit: int, before_seq: int | None,
                         object_id: str = "") -> list[AuditEvent]:
        query = select(AuditEvent).where(AuditEvent.tenant_id == tenant_id)
        if object_id:
            query = query.where(AuditEvent.object_id == object_id)
        if before_seq is not None:
            query = query.where(col(AuditEvent.seq) < before_seq)
        query = query.order_by(col(AuditEvent.seq).desc()).limit(limit)
        return list((await self.session.exec(query)).all())

    async def changes_after(self, seq: int, limit: int) -> list[Change]:
        query = select(Change).where(col(Change.seq) > seq).order_by(col(Change.seq)).limit(limit)
        return list((await self.session.exec(query)).all())

    async def last_change(self) -> int:
        return (await self.session.exec(select(func.max(Change.seq)))).one() or 0

    async def all_apis(self) -> list[Api]:
        return list((await self.session.exec(select(Api))).all())
