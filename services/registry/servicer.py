"""RegistryService gRPC transport: identity, convert, call the use case, convert."""

from __future__ import annotations

from lockgate.identity import identity_from_metadata
from lockgate.prompts.proto import prompt_from_proto
from lockgate.registry.v1 import registry_service_pb2 as pb
from lockgate.registry.v1 import registry_service_pb2_grpc as pb_grpc
from services.registry import convert as c
from services.registry.service import RegistryService

API_READERS = {
    "description": lambda p: p.description,
    "visibility": lambda p: p.visibility,
    "shared_tenant_ids": lambda p: list(p.shared_tenant_ids),
    "log_bodies": lambda p: p.log_bodies,
}
VERSION_READERS = {
    "description": lambda p: p.description,
    "model_aliases": lambda p: list(p.model_aliases),
    "prompt": lambda p: prompt_from_proto(p.prompt),
}


def _caller(context):
    return identity_from_metadata(context.invocation_metadata())


def _changes(patch, mask, readers) -> dict:
    """{field: value} for the masked fields (unknown names pass through, to be named
    in the use case's error)."""
    return {path: (readers[path](patch) if path in readers else None) for path in mask.paths}


class RegistryServicer(pb_grpc.RegistryServiceServicer):
    def __init__(self, service: RegistryService):
        self.service = service
        self.catalog = service.catalog
        self.versions = service.versions
        self.subscriptions = service.subscriptions

    # -- APIs ----------------------------------------------------------------------------

    async def CreateApi(self, request, context) -> pb.CreateApiResponse:
        api = await self.catalog.create_api(
            _caller(context), request.name, c.kind_from_proto(request.kind),
            request.description, list(request.model_aliases), request.owner_team_id,
            request.visibility, list(request.shared_tenant_ids), log_bodies=request.log_bodies,
        )
        return pb.CreateApiResponse(api=c.api_to_proto(api))

    async def GetApi(self, request, context) -> pb.GetApiResponse:
        api = await self.catalog.get_api(_caller(context), request.api_id)
        return pb.GetApiResponse(api=c.api_to_proto(api))

    async def ListApis(self, request, context) -> pb.ListApisResponse:
        kind = c.kind_from_proto(request.kind) if request.kind else ""
        apis, token = await self.catalog.list_apis(_caller(context), request.page_size,
                                                   request.page_token, request.query, kind)
        return pb.ListApisResponse(apis=[c.api_to_proto(a) for a in apis], next_page_token=token)

    async def UpdateApi(self, request, context) -> pb.UpdateApiResponse:
        api = await self.catalog.update_api(
            _caller(context), request.api_id,
            _changes(request.patch, request.update_mask, API_READERS), request.etag)
        return pb.UpdateApiResponse(api=c.api_to_proto(api))

    # -- versions ------------------------------------------------------------------------

    async def CreateVersion(self, request, context) -> pb.CreateVersionResponse:
        row = await self.versions.create_version(
            _caller(context), request.api_id, request.version, request.description,
            list(request.model_aliases),
            prompt_from_proto(request.prompt) if request.HasField("prompt") else None,
        )
        return pb.CreateVersionResponse(version=c.version_to_proto(row))

    async def GetVersion(self, request, context) -> pb.GetVersionResponse:
        row = await self.versions.get_version(_caller(context), request.api_id, request.version)
        return pb.GetVersionResponse(version=c.version_to_proto(row))

    async def ListVersions(self, request, context) -> pb.ListVersionsResponse:
        rows, token = await self.versions.list_versions(
            _caller(context), request.api_id, request.page_size, request.page_token)
        return pb.ListVersionsResponse(versions=[c.version_to_proto(v) for v in rows],
                                       next_page_token=token)

    async def UpdateVersion(self, request, context) -> pb.UpdateVersionResponse:
        row = await self.versions.update_version(
            _caller(context), request.api_id, request.version,
            _changes(request.patch, request.update_mask, VERSION_READERS), request.etag)
        return pb.UpdateVersionResponse(version=c.version_to_proto(row))

    async def PublishVersion(self, request, context) -> pb.PublishVersionResponse:
        row = await self.versions.publish(_caller(context), request.api_id, request.version)
        return pb.PublishVersionResponse(version=c.version_to_proto(row))

    async def DeprecateVersion(self, request, context) -> pb.DeprecateVersionResponse:
        row = await self.versions.deprecate(
            _caller(context), request.api_id, request.version,
            c.timestamp(request, "sunset_time"), request.successor)
        return pb.DeprecateVersionResponse(version=c.version_to_proto(row))

    async def RetireVersion(self, request, context) -> pb.RetireVersionResponse:
        row = await self.versions.retire(_caller(context), request.api_id, request.version,
                                         request.force, request.reason)
        return pb.RetireVersionResponse(version=c.version_to_proto(row))

    # -- subscriptions -------------------------------------------------------------------

    async def CreateSubscription(self, request, context) -> pb.CreateSubscriptionResponse:
        row = await self.subscriptions.create(_caller(context), request.api_id, request.version,
                                              request.justification)
        return pb.CreateSubscriptionResponse(subscription=await self._shown(row))

    async def GetSubscription(self, request, context) -> pb.GetSubscriptionResponse:
        row = await self.subscriptions.get(_caller(context), request.subscription_id)
        return pb.GetSubscriptionResponse(subscription=await self._shown(row))

    async def ListSubscriptions(self, request, context) -> pb.ListSubscriptionsResponse:
        rows, token = await self.subscriptions.list(
            _caller(context), request.page_size, request.page_token,
            pending_approval=request.pending_approval, api_ref=request.api_id,
            state=request.state)
        names = await self.subscriptions.api_names(rows)
        return pb.ListSubscriptionsResponse(
            subscriptions=[c.subscription_to_proto(r, names.get(r.api_id, "")) for r in rows],
            next_page_token=token)

    async def _shown(self, row) -> pb.Subscription:
        names = await self.subscriptions.api_names([row])
        return c.subscription_to_proto(row, names.get(row.api_id, ""))

    async def _decide(self, request, context, action: str):
        return await self._shown(await self.subscriptions.decide_on(
            _caller(context), request.subscription_id, action, request.reason))

    async def ApproveSubscription(self, request, context) -> pb.ApproveSubscriptionResponse:
        return pb.ApproveSubscriptionResponse(
            subscription=await self._decide(request, context, "approve"))

    async def RejectSubscription(self, request, context) -> pb.RejectSubscriptionResponse:
        return pb.RejectSubscriptionResponse(
            subscription=await self._decide(request, context, "reject"))

    async def RevokeSubscription(self, request, context) -> pb.RevokeSubscriptionResponse:
        return pb.RevokeSubscriptionResponse(
            subscription=await self._decide(request, context, "revoke"))

    # -- audit -------------------------------------------------------------------------

    async def ListAuditEvents(self, request, context) -> pb.ListAuditEventsResponse:
        rows, token = await self.service.list_audit_events(
            _caller(context), request.page_size, request.page_token, request.object_id)
        return pb.ListAuditEventsResponse(events=[c.audit_to_proto(e) for e in rows],
                                          next_page_token=token)

    async def VerifyAuditChain(self, request, context) -> pb.VerifyAuditChainResponse:
        verdict = await self.service.verify_audit_chain(_caller(context))
        return pb.VerifyAuditChainResponse(intact=verdict.intact, events=verdict.events,
                                           first_bad_seq=verdict.first_bad_seq,
                                           problem=verdict.problem)

    # -- watch (internal) ----------------------------------------------------------------

    async def WatchGovernance(self, request, context):
        async for message in self.service.hub.watch():
            yield message
