"""RegistryService gRPC transport: identity, convert, call the service, convert."""

from __future__ import annotations

from lockgate.identity import identity_from_metadata
from lockgate.registry.v1 import registry_service_pb2 as pb
from lockgate.registry.v1 import registry_service_pb2_grpc as pb_grpc
from services.registry.convert import api_to_proto, kind_from_proto
from services.registry.service import RegistryService


class RegistryServicer(pb_grpc.RegistryServiceServicer):
    def __init__(self, service: RegistryService):
        self.service = service

    async def CreateApi(self, request: pb.CreateApiRequest, context) -> pb.CreateApiResponse:
        caller = identity_from_metadata(context.invocation_metadata())
        api = await self.service.create_api(
            caller,
            request.name,
            kind_from_proto(request.kind),
            request.description,
            list(request.model_aliases),
        )
        return pb.CreateApiResponse(api=api_to_proto(api))

    async def GetApi(self, request: pb.GetApiRequest, context) -> pb.GetApiResponse:
        caller = identity_from_metadata(context.invocation_metadata())
        api = await self.service.get_api(caller, request.api_id)
        return pb.GetApiResponse(api=api_to_proto(api))

    async def ListApis(self, request: pb.ListApisRequest, context) -> pb.ListApisResponse:
        caller = identity_from_metadata(context.invocation_metadata())
        apis, token = await self.service.list_apis(caller, request.page_size, request.page_token)
        return pb.ListApisResponse(apis=[api_to_proto(a) for a in apis], next_page_token=token)
