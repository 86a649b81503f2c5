"""Auth gRPC transport: the admin AuthService and Envoy's Authorization/Check.

Transport only: read the caller's identity (set by Check at the edge), convert,
call the use case, convert back. Authorization is the use cases' business.
"""

from __future__ import annotations

import functools
from datetime import timedelta

from envoy.service.auth.v3 import external_auth_pb2 as authz
from envoy.service.auth.v3 import external_auth_pb2_grpc as authz_grpc
from google.protobuf.message import Message

from lockgate.auth.v1 import auth_service_pb2 as pb
from lockgate.auth.v1 import auth_service_pb2_grpc as pb_grpc
from lockgate.errors import InvalidRequest
from lockgate.identity import identity_from_metadata
from services.auth import convert as c
from services.auth.check import Checker
from services.auth.service import AuthService


def _caller(context):
    return identity_from_metadata(context.invocation_metadata())




class AuthServicer(pb_grpc.AuthServiceServicer):
    def __init__(self, service: AuthService):
        self.service = service
        self.tenancy = service.tenancy
        self.keys = service.keys

    async def GetCaller(self, request, context) -> pb.GetCallerResponse:
        caller = _caller(context)
        return pb.GetCallerResponse(
            tenant_id=caller.tenant_id, tenant_name=caller.tenant_name, team_id=caller.team_id,
            principal_kind=caller.principal_kind, principal_id=caller.principal_id,
            key_id=caller.key_id, roles=caller.roles, scopes=caller.scopes, models=caller.models,
        )

    # -- tenants -----------------------------------------------------------------------

    async def CreateTenant(self, request, context) -> pb.CreateTenantResponse:
        tenant = await self.tenancy.create_tenant(_caller(context), request.name,
                                                  request.display_name)
        return pb.CreateTenantResponse(tenant=c.tenant_to_proto(tenant))

    async def GetTenant(self, request, context) -> pb.GetTenantResponse:
        tenant = await self.tenancy.get_tenant(_caller(context), request.tenant)
        return pb.GetTenantResponse(tenant=c.tenant_to_proto(tenant))

    async def ListTenants(self, request, context) -> pb.ListTenantsResponse:
        page = await self.tenancy.list_tenants(_caller(context), request.page_size,
                                               request.page_token, request.name_prefix)
        return pb.ListTenantsResponse(tenants=[c.tenant_to_proto(t) for t in page.items],
                                      next_page_token=page.next_page_token)

    async def UpdateTenant(self, request, context) -> pb.UpdateTenantResponse:
        changes = c.patch_changes(request.patch, request.update_mask.paths, c.TENANT_READERS)
        tenant = await self.tenancy.update_tenant(_caller(context), request.tenant, changes,
                                                  request.etag)
        return pb.UpdateTenantResponse(tenant=c.tenant_to_proto(tenant))

    # -- teams -------------------------------------------------------------------------

    async def CreateTeam(self, request, context) -> pb.CreateTeamResponse:
        team = await self.tenancy.create_team(_caller(context), request.tenant, request.name,
                                              request.display_name)
        return pb.CreateTeamResponse(team=c.team_to_proto(team))

    async def GetTeam(self, request, context) -> pb.GetTeamResponse:
        team = await self.tenancy.get_team(_caller(context), request.tenant, request.team)
        return pb.GetTeamResponse(team=c.team_to_proto(team))

    async def ListTeams(self, request, context) -> pb.ListTeamsResponse:
        page = await self.tenancy.list_teams(_caller(context), request.tenant, request.page_size,
                                             request.page_token, request.name_prefix)
        return pb.ListTeamsResponse(teams=[c.team_to_proto(t) for t in page.items],
                                    next_page_token=page.next_page_token)

    async def UpdateTeam(self, request, context) -> pb.UpdateTeamResponse:
        changes = c.patch_changes(request.patch, request.update_mask.paths, c.TEAM_READERS)
        team = await self.tenancy.update_team(_caller(context), request.tenant, request.team,
                                              changes, request.etag)
        return pb.UpdateTeamResponse(team=c.team_to_proto(team))

    async def DeleteTeam(self, request, context) -> pb.DeleteTeamResponse:
        await self.tenancy.delete_team(_caller(context), request.tenant, request.team,
                                       request.etag)
        return pb.DeleteTeamResponse()

    # -- users -------------------------------------------------------------------------

    async def CreateUser(self, request, context) -> pb.CreateUserResponse:
        view = await self.tenancy.create_user(
            _caller(context), request.tenant, request.email, request.display_name,
            list(request.roles), c.memberships_from_proto(request.memberships),
        )
        return pb.CreateUserResponse(user=c.user_to_proto(view))

    async def GetUser(self, request, context) -> pb.GetUserResponse:
        view = await self.tenancy.get_user(_caller(context), request.tenant, request.user)
        return pb.GetUserResponse(user=c.user_to_proto(view))

    async def ListUsers(self, request, context) -> pb.ListUsersResponse:
        page = await self.tenancy.list_users(
            _caller(context), request.tenant, request.page_size, request.page_token,
            request.team, request.email_prefix,
        )
        return pb.ListUsersResponse(users=[c.user_to_proto(v) for v in page.items],
                                    next_page_token=page.next_page_token)

    async def UpdateUser(self, request, context) -> pb.UpdateUserResponse:
        changes = c.patch_changes(request.patch, request.update_mask.paths, c.USER_READERS)
        view = await self.tenancy.update_user(_caller(context), request.tenant, request.user,
                                              changes, request.etag)
        return pb.UpdateUserResponse(user=c.user_to_proto(view))

    async def DeleteUser(self, request, context) -> pb.DeleteUserResponse:
        await self.tenancy.delete_user(_caller(context), request.tenant, request.user,
                                       request.etag)
        return pb.DeleteUserResponse()

    # -- service accounts ----------------------------------------------------------------

    async def CreateServiceAccount(self, request, context) -> pb.CreateServiceAccountResponse:
        account = await self.tenancy.create_service_account(
            _caller(context), request.tenant, request.team, request.name, request.display_name,
            list(request.roles),
        )
        return pb.CreateServiceAccountResponse(
            service_account=c.service_account_to_proto(account))

    async def GetServiceAccount(self, request, context) -> pb.GetServiceAccountResponse:
        account = await self.tenancy.get_service_account(_caller(context), request.tenant,
                                                         request.service_account)
        return pb.GetServiceAccountResponse(service_account=c.service_account_to_proto(account))

    async def ListServiceAccounts(self, request, context) -> pb.ListServiceAccountsResponse:
        page = await self.tenancy.list_service_accounts(
            _caller(context), request.tenant, request.page_size, request.page_token, request.team
        )
        return pb.ListServiceAccountsResponse(
            service_accounts=[c.service_account_to_proto(a) for a in page.items],
            next_page_token=page.next_page_token,
        )

    async def UpdateServiceAccount(self, request, context) -> pb.UpdateServiceAccountResponse:
        changes = c.patch_changes(request.patch, request.update_mask.paths,
                                  c.SERVICE_ACCOUNT_READERS)
        account = await self.tenancy.update_service_account(
            _caller(context), request.tenant, request.service_account, changes, request.etag
        )
        return pb.UpdateServiceAccountResponse(
            service_account=c.service_account_to_proto(account))

    async def DeleteServiceAccount(self, request, context) -> pb.DeleteServiceAccountResponse:
        await self.tenancy.delete_service_account(_caller(context), request.tenant,
                                                  request.service_account, request.etag)
        return pb.DeleteServiceAccountResponse()

    # -- keys --------------------------------------------------------------------------

    async def CreateApiKey(self, request, context) -> pb.CreateApiKeyResponse:
        created = await self.keys.create(
            _caller(context), request.tenant, request.name, list(request.roles),
            list(request.models), owner=request.owner, team=request.team,
            scopes=list(request.scopes), expire_time=c.expire_time(request),
        )
        return pb.CreateApiKeyResponse(key=c.key_to_proto(created.key), secret=created.secret)

    async def GetApiKey(self, request, context) -> pb.GetApiKeyResponse:
        key = await self.keys.get(_caller(context), request.tenant, request.key_id)
        return pb.GetApiKeyResponse(key=c.key_to_proto(key))

    async def ListApiKeys(self, request, context) -> pb.ListApiKeysResponse:
        page = await self.keys.list(
            _caller(context), request.tenant, request.page_size, request.page_token,
            team=request.team, owner=request.owner, status=request.status,
        )
        return pb.ListApiKeysResponse(keys=[c.key_to_proto(k) for k in page.items],
                                      next_page_token=page.next_page_token)

    async def UpdateApiKey(self, request, context) -> pb.UpdateApiKeyResponse:
        changes = c.patch_changes(request.patch, request.update_mask.paths, c.KEY_READERS)
        key = await self.keys.update(_caller(context), request.tenant, request.key_id, changes,
                                     request.etag)
        return pb.UpdateApiKeyResponse(key=c.key_to_proto(key))

    async def RotateApiKey(self, request, context) -> pb.RotateApiKeyResponse:
        # Clamped so that timedelta cannot overflow; the use case refuses out-of-range values.
        overlap = (timedelta(seconds=max(-1, min(request.overlap_seconds, 10**9)))
                   if request.HasField("overlap_seconds") else None)
        created, previous = await self.keys.rotate(_caller(context), request.tenant,
                                                   request.key_id, overlap)
        return pb.RotateApiKeyResponse(key=c.key_to_proto(created.key), secret=created.secret,
                                       previous=c.key_to_proto(previous))

    async def RevokeApiKey(self, request, context) -> pb.RevokeApiKeyResponse:
        key = await self.keys.revoke(_caller(context), request.tenant, request.key_id)
        return pb.RevokeApiKeyResponse(key=c.key_to_proto(key))

    # -- audit -------------------------------------------------------------------------

    async def ListAuditEvents(self, request, context) -> pb.ListAuditEventsResponse:
        page = await self.service.list_audit_events(
            _caller(context), request.tenant, request.page_size, request.page_token,
            request.object_id, request.action,
        )
        return pb.ListAuditEventsResponse(events=[c.audit_event_to_proto(e) for e in page.items],
                                          next_page_token=page.next_page_token)


def _refuse_nul(message: Message) -> None:
    """NUL belongs in no name, id or filter, and PostgreSQL text cannot hold it (the
    query would fail as an internal error): refuse it as an invalid argument."""
    for field, value in message.ListFields():
        for item in value if field.is_repeated else (value,):
            if isinstance(item, str) and "\x00" in item:
                raise InvalidRequest(f"{field.name} must not contain NUL characters",
                                     param=field.name)
            if isinstance(item, Message):
                _refuse_nul(item)


def _nul_checked(method):
    @functools.wraps(method)
    async def call(self, request, context):
        _refuse_nul(request)
        return await method(self, request, context)

    return call


for _method in pb.DESCRIPTOR.services_by_name["AuthService"].methods:
    setattr(AuthServicer, _method.name, _nul_checked(getattr(AuthServicer, _method.name)))


class AuthorizationServicer(authz_grpc.AuthorizationServicer):
    def __init__(self, checker: Checker):
        self.checker = checker

    async def Check(self, request: authz.CheckRequest, context) -> authz.CheckResponse:
        return await self.checker.check(request)
