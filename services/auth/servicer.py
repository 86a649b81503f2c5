"""Auth gRPC transport: the admin AuthService and Envoy's Authorization/Check."""

from __future__ import annotations

from envoy.service.auth.v3 import external_auth_pb2 as authz
from envoy.service.auth.v3 import external_auth_pb2_grpc as authz_grpc

from lockgate.auth.v1 import auth_service_pb2 as pb
from lockgate.auth.v1 import auth_service_pb2_grpc as pb_grpc
from lockgate.identity import identity_from_metadata
from services.auth.check import Checker
from services.auth.convert import key_to_proto, tenant_to_proto
from services.auth.service import AuthService


class AuthServicer(pb_grpc.AuthServiceServicer):
    def __init__(self, service: AuthService):
        self.service = service

    async def CreateTenant(self, request, context) -> pb.CreateTenantResponse:
        caller = identity_from_metadata(context.invocation_metadata())
        tenant = await self.service.create_tenant(caller, request.name)
        return pb.CreateTenantResponse(tenant=tenant_to_proto(tenant))

    async def ListTenants(self, request, context) -> pb.ListTenantsResponse:
        caller = identity_from_metadata(context.invocation_metadata())
        tenants = await self.service.list_tenants(caller)
        return pb.ListTenantsResponse(tenants=[tenant_to_proto(t) for t in tenants])

    async def CreateApiKey(self, request, context) -> pb.CreateApiKeyResponse:
        caller = identity_from_metadata(context.invocation_metadata())
        created = await self.service.create_key(
            caller, request.tenant, request.name, list(request.roles), list(request.models)
        )
        return pb.CreateApiKeyResponse(key=key_to_proto(created.key), secret=created.secret)

    async def ListApiKeys(self, request, context) -> pb.ListApiKeysResponse:
        caller = identity_from_metadata(context.invocation_metadata())
        keys = await self.service.list_keys(caller, request.tenant)
        return pb.ListApiKeysResponse(keys=[key_to_proto(k) for k in keys])

    async def RevokeApiKey(self, request, context) -> pb.RevokeApiKeyResponse:
        caller = identity_from_metadata(context.invocation_metadata())
        key = await self.service.revoke_key(caller, request.tenant, request.key_id)
        return pb.RevokeApiKeyResponse(key=key_to_proto(key))


class AuthorizationServicer(authz_grpc.AuthorizationServicer):
    def __init__(self, checker: Checker):
        self.checker = checker

    async def Check(self, request: authz.CheckRequest, context) -> authz.CheckResponse:
        return await self.checker.check(request)
