"""Users' JWTs at the edge: a real auth server whose identity provider serves its
JWKS on loopback; Check maps tokens to users, teams and roles, and says why a
token is refused."""

from __future__ import annotations

import asyncio
import time

import grpc
import jwt
import orjson
import pytest
from envoy.service.auth.v3 import external_auth_pb2_grpc as authz_grpc
from google.rpc import code_pb2

from lockgate.auth.v1 import auth_service_pb2 as pb
from lockgate.auth.v1 import auth_service_pb2_grpc as pb_grpc
from services.auth.app import AuthSettings, build
from tests.integration.auth_harness import admin_call, check_request
from tests.integration.test_jwks_url import AUDIENCE, EC_KEY, ISSUER, RSA_KEY, Idp

GET_CALLER = "/lockgate.auth.v1.AuthService/GetCaller"


def token(email: str, *, key=RSA_KEY, kid="rsa1", alg="RS256", ttl=600, **claims) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": f"sub-{email}", "email": email,
            "iat": now, "exp": now + ttl, **claims}
    return jwt.encode(body, key, algorithm=alg, headers={"kid": kid})


@pytest.fixture
async def world(tmp_path):
    idp = Idp()
    await idp.start()
    settings = AuthSettings(
        data_dir=tmp_path, grpc_port=0, jwt_issuer=ISSUER, jwt_audience=AUDIENCE,
        jwt_jwks_url=idp.url, change_poll_seconds=0.05,
    )
    server, service, engine = await build(settings)
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    check = authz_grpc.AuthorizationStub(channel)
    admin = pb_grpc.AuthServiceStub(channel)
    admin_key = (tmp_path / "admin.key").read_text().strip()

    async def call(rpc, request, key=admin_key):
        return await admin_call(check, admin, key, rpc, request)

    await call("CreateTenant", pb.CreateTenantRequest(name="acme"))
    for team in ("ml", "web"):
        await call("CreateTeam", pb.CreateTeamRequest(tenant="acme", name=team))
    await call("CreateUser", pb.CreateUserRequest(
        tenant="acme", email="ada@acme.example", memberships=[
            pb.TeamMembership(team="ml", roles=["developer"]),
            pb.TeamMembership(team="web", roles=["viewer"]),
        ]))
    await call("CreateUser", pb.CreateUserRequest(
        tenant="acme", email="solo@acme.example",
        memberships=[pb.TeamMembership(team="ml", roles=["team_admin"])]))
    yield check, call
    await channel.close()
    await server.stop(0)
    await engine.dispose()
    await idp.stop()


def headers_of(reply) -> dict[str, str]:
    return {h.header.key: h.header.value for h in reply.ok_response.headers}


def denial(reply) -> dict:
    assert reply.status.code != code_pb2.OK
    return orjson.loads(reply.denied_response.body)["error"]


async def test_a_users_token_acts_in_the_chosen_team_with_its_roles(world):
    check, _ = world
    ada = token("ada@acme.example")
    reply = await check.Check(check_request(ada, extra={"x-lockgate-team": "ml"}))
    assert reply.status.code == code_pb2.OK
    identity = headers_of(reply)
    assert identity["x-lockgate-principal"].startswith("user:usr_")
    assert identity["x-lockgate-roles"] == "developer"
    assert "x-lockgate-key-id" not in identity  # a JWT is no key: nothing (empty) is sent
    assert identity["x-lockgate-tenant-name"] == "acme"
    assert "authorization" in reply.ok_response.headers_to_remove
    assert "x-lockgate-team" in reply.ok_response.headers_to_remove

    web = await check.Check(check_request(ada, extra={"x-lockgate-team": "web"}))
    assert headers_of(web)["x-lockgate-roles"] == "viewer"


async def test_a_single_team_user_needs_no_team_header(world):
    check, _ = world
    reply = await check.Check(check_request(token("solo@acme.example")))
    assert reply.status.code == code_pb2.OK
    assert headers_of(reply)["x-lockgate-roles"] == "team_admin"


async def test_tokens_are_refused_with_a_reason(world):
    check, _ = world
    cases = {
        token("ada@acme.example", ttl=-120): "token expired",
        token("nobody@acme.example"): "no Lockgate user matches this token",
        token("ada@acme.example", iss="https://evil.example/"): "token issuer is not trusted",
        token("ada@acme.example", key=EC_KEY, kid="rsa1", alg="ES256"): "token",
        token("ada@acme.example")[:-4] + "AAAA": "token signature is invalid",
    }
    for presented, reason in cases.items():
        reply = await check.Check(check_request(presented, extra={"x-lockgate-team": "ml"}))
        error = denial(reply)
        assert reply.denied_response.status.code == 401
        assert error["code"] == "invalid_token"
        assert reason in error["message"]
        assert presented not in error["message"]


async def test_a_team_the_user_is_not_in_is_refused(world):
    check, call = world
    await call("CreateTeam", pb.CreateTeamRequest(tenant="acme", name="finance"))
    reply = await check.Check(check_request(token("ada@acme.example"),
                                            extra={"x-lockgate-team": "finance"}))
    assert denial(reply)["code"] == "invalid_token"


async def test_disabling_or_demoting_the_user_takes_effect_within_a_second(world):
    check, call = world
    ada = token("ada@acme.example")
    request = check_request(ada, extra={"x-lockgate-team": "ml"})
    assert (await check.Check(request)).status.code == code_pb2.OK
    user = (await call("GetUser", pb.GetUserRequest(tenant="acme", user="ada@acme.example"))).user
    await call("UpdateUser", pb.UpdateUserRequest(
        tenant="acme", user=user.id, patch=pb.User(status="disabled"),
        update_mask={"paths": ["status"]}, etag=user.etag))
    started = time.monotonic()
    while (await check.Check(request)).status.code == code_pb2.OK:
        assert time.monotonic() - started < 1.0, "the disabled user still passes"
        await asyncio.sleep(0.02)
    assert denial(await check.Check(request))["message"] == "The owner of this API key is disabled."


async def test_a_token_reaches_the_admin_api_as_its_user(world):
    check, call = world
    caller = await call("GetCaller", pb.GetCallerRequest(), key=token("solo@acme.example"))
    assert caller.principal_kind == "user"
    assert caller.tenant_name == "acme"
    assert list(caller.roles) == ["team_admin"]
    # A team admin manages its team's service accounts with its token.
    created = await call("CreateServiceAccount", pb.CreateServiceAccountRequest(
        tenant="acme", team="ml", name="ml-bot"), key=token("solo@acme.example"))
    assert created.service_account.team_id == caller.team_id
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await call("CreateServiceAccount", pb.CreateServiceAccountRequest(
            tenant="acme", team="web", name="web-bot"), key=token("solo@acme.example"))
    assert denied.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED)
