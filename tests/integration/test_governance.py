"""API governance, in process, on SQLite and PostgreSQL: the registry's lifecycle,
subscriptions, webhooks, audit chain and watch stream over gRPC, a GovernanceView
following the stream, and auth's Check enforcing it end to end."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from typing import Any

import grpc
import orjson
import pytest
from envoy.service.auth.v3 import external_auth_pb2_grpc as authz_grpc
from google.protobuf import field_mask_pb2, struct_pb2, timestamp_pb2
from google.rpc import code_pb2
from sqlalchemy import text

from lockgate.auth.v1 import auth_service_pb2 as auth_pb
from lockgate.auth.v1 import auth_service_pb2_grpc as auth_grpc
from lockgate.governance_view import GovernanceView
from lockgate.identity import KEY_ID, PRINCIPAL, ROLES, TEAM_ID, TENANT_ID
from lockgate.policy import DEFAULT_ROOT
from lockgate.registry.v1 import registry_service_pb2 as pb
from lockgate.registry.v1 import registry_service_pb2_grpc as pb_grpc
from lockgate.webhook import Webhook
from services.auth.app import AuthSettings
from services.auth.app import build as build_auth
from services.registry.app import RegistrySettings, build
from tests.integration.auth_harness import admin_call, check_request, identity_metadata
from tests.integration.webhook_receiver import WEBHOOK_SECRET, serving_receiver

REGISTRY = "/lockgate.registry.v1.RegistryService/"


# -- harness --------------------------------------------------------------------------------


@dataclass
class Registry:
    server: Any
    service: Any
    engine: Any
    port: int
    channel: grpc.aio.Channel
    stub: pb_grpc.RegistryServiceStub
    stopped: bool = False

    async def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            await self.channel.close()
            await self.server.stop(0)
            await self.engine.dispose()


@pytest.fixture
async def registries(database_url, tmp_path):
    """Starts registries on the test's database (each call: one more server)."""
    started: list[Registry] = []

    async def start(port: int = 0, **settings) -> Registry:
        server, service, engine = await build(RegistrySettings(
            database_url=database_url, data_dir=tmp_path, grpc_port=port, **settings))
        bound = await server.start()
        # Its own subchannel: never one left in backoff by another channel to this port.
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{bound}",
                                            options=[("grpc.use_local_subchannel_pool", 1)])
        registry = Registry(server, service, engine, bound, channel,
                            pb_grpc.RegistryServiceStub(channel))
        started.append(registry)
        return registry

    yield start
    for registry in reversed(started):
        await registry.stop()


@pytest.fixture
async def registry(registries) -> Registry:
    return await registries()


def policies(tmp_path, **lifecycle) -> Any:
    """A copy of the shipped policies with lifecycle data overridden."""
    root = tmp_path / "policies"
    shutil.copytree(DEFAULT_ROOT, root)
    data_file = root / "lockgate" / "lifecycle" / "data.json"
    data = json.loads(data_file.read_text())
    data.update(lifecycle)
    data_file.write_text(json.dumps(data))
    return root


def make_team(name: str) -> str:
    """A team id as auth makes them: team_ and 24 hex digits."""
    return "team_" + hashlib.sha256(name.encode()).hexdigest()[:24]


TEAM_A, TEAM_B, TEAM_C, TEAM_D, TEAM_X, TEAM_Y = map(make_team, "abcdxy")


def who(tenant: str = "ten_a", team: str = TEAM_A, role: str = "team_admin"):
    """Identity metadata as auth's Check forwards it."""
    metadata = [(TENANT_ID, tenant), (KEY_ID, f"key_{tenant}_{team}_{role}"), (ROLES, role),
                (PRINCIPAL, f"user:usr_{tenant}_{team[-6:] or 'none'}_{role}")]
    if team:
        metadata.append((TEAM_ID, team))
    return tuple(metadata)


OWNER = who()  # team admin of team_a, the owner team, in tenant ten_a
OWNER_DEV = who(role="developer")
TEAM_B_DEV = who(team=TEAM_B, role="developer")
TEAM_B_ADMIN = who(team=TEAM_B)
TEAM_C_DEV = who(team=TEAM_C, role="developer")
TENANT_ADMIN = who(team="", role="tenant_admin")
OTHER_TENANT_DEV = who("ten_b", TEAM_X, "developer")
THIRD_TENANT_DEV = who("ten_c", TEAM_Y, "developer")
PLATFORM_ADMIN = who("ten_root", "", "platform_admin")


async def rpc_error(call: Awaitable) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value


async def expect(call: Awaitable, code: grpc.StatusCode, *fragments: str
                 ) -> grpc.aio.AioRpcError:
    error = await rpc_error(call)
    assert error.code() == code, error.details()
    for fragment in fragments:
        assert fragment in error.details(), (fragment, error.details())
    return error


def struct(value: dict) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(value)
    return out


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(value)
    return out


def in_days(days: float) -> timestamp_pb2.Timestamp:
    return timestamp(datetime.now(UTC) + timedelta(days=days))


def input_schema(*required: str, tone: bool = True) -> dict:
    properties: dict = {"question": {"type": "string", "minLength": 1, "maxLength": 500}}
    if tone:
        properties["tone"] = {"type": "string", "enum": ["formal", "casual"]}
    return {"type": "object", "properties": properties, "required": list(required),
            "additionalProperties": False}


def prompt(schema: dict | None) -> pb.PromptSpec:
    spec = pb.PromptSpec(
        system_template="Answer briefly.{{#if tone}} Be {{ tone }}.{{/if}}",
        user_template="{{ question }}", model="support-default",
        parameters=struct({"temperature": 0.2, "max_completion_tokens": 500}),
    )
    if schema is not None:
        spec.input_schema.CopyFrom(struct(schema))
    return spec


async def model_api(stub, name: str, *aliases: str, caller=OWNER, visibility: str = "tenant",
                    shared: tuple[str, ...] = (), publish: bool = True) -> pb.Api:
    """A model API (with a description) whose v1 exposes `aliases`, published."""
    api = (await stub.CreateApi(pb.CreateApiRequest(
        name=name, kind=pb.API_KIND_MODEL, description=f"{name} models",
        model_aliases=list(aliases), visibility=visibility, shared_tenant_ids=list(shared),
    ), metadata=caller)).api
    if publish:
        await stub.PublishVersion(pb.PublishVersionRequest(api_id=api.id, version="v1"),
                                  metadata=caller)
    return api


async def new_version(stub, api: pb.Api, version: str, *aliases: str, publish: bool = True,
                      caller=OWNER) -> pb.ApiVersion:
    made = (await stub.CreateVersion(pb.CreateVersionRequest(
        api_id=api.id, version=version, model_aliases=list(aliases)), metadata=caller)).version
    if publish:
        return (await stub.PublishVersion(pb.PublishVersionRequest(
            api_id=api.id, version=version), metadata=caller)).version
    return made


async def subscribe(stub, api: pb.Api, caller, version: str = "", justification: str = ""
                    ) -> pb.Subscription:
    return (await stub.CreateSubscription(pb.CreateSubscriptionRequest(
        api_id=api.id, version=version, justification=justification), metadata=caller)
    ).subscription


async def decide(stub, rpc: str, subscription: pb.Subscription, caller=OWNER,
                 reason: str = "") -> pb.Subscription:
    request = getattr(pb, f"{rpc}Request")(subscription_id=subscription.id, reason=reason)
    return (await getattr(stub, rpc)(request, metadata=caller)).subscription


class LastCalls:
    """A fake ledger: when each version was last called (or an outage)."""

    def __init__(self):
        self.answer: datetime | None = None
        self.down = False
        self.asked: list[tuple[str, str]] = []

    async def __call__(self, api_id: str, version: str) -> datetime | None:
        self.asked.append((api_id, version))
        if self.down:
            raise ConnectionError("ledger down")
        return self.answer


# -- lifecycle -----------------------------------------------------------------------------


async def test_prompt_api_lifecycle(registry):
    stub = registry.stub
    ledger = LastCalls()
    registry.service.versions.last_call = ledger
    api = (await stub.CreateApi(pb.CreateApiRequest(name="support", kind=pb.API_KIND_PROMPT),
                                metadata=OWNER)).api
    assert (api.owner_team_id, api.visibility) == (TEAM_A, "tenant")

    # A draft without an input schema, nor a description anywhere: not publishable.
    draft = (await stub.CreateVersion(pb.CreateVersionRequest(
        api_id=api.id, version="v1", prompt=prompt(None)), metadata=OWNER)).version
    assert draft.state == "draft" and not draft.HasField("publish_time")
    publish_v1 = pb.PublishVersionRequest(api_id=api.id, version="v1")
    await expect(stub.PublishVersion(publish_v1, metadata=OWNER),
                 grpc.StatusCode.INVALID_ARGUMENT, "input_schema")
    # Drafts change freely (the prompt's numbers survive the trip through Struct).
    patched = (await stub.UpdateVersion(pb.UpdateVersionRequest(
        api_id=api.id, version="v1", patch=pb.ApiVersion(prompt=prompt(input_schema("question"))),
        update_mask=field_mask_pb2.FieldMask(paths=["prompt"]), etag=draft.etag,
    ), metadata=OWNER)).version
    assert patched.etag != draft.etag
    await expect(stub.PublishVersion(publish_v1, metadata=OWNER),
                 grpc.StatusCode.FAILED_PRECONDITION, "needs a description")
    await stub.UpdateVersion(pb.UpdateVersionRequest(
        api_id=api.id, version="v1", patch=pb.ApiVersion(description="First version"),
        update_mask=field_mask_pb2.FieldMask(paths=["description"])), metadata=OWNER)
    # Only the owners publish (to others, a draft does not exist).
    await expect(stub.PublishVersion(publish_v1, metadata=OWNER_DEV),
                 grpc.StatusCode.NOT_FOUND, "version not found")
    v1 = (await stub.PublishVersion(publish_v1, metadata=OWNER)).version
    assert v1.state == "published" and v1.HasField("publish_time")
    assert v1.prompt.input_schema == struct(input_schema("question"))
    await expect(stub.PublishVersion(publish_v1, metadata=OWNER),
                 grpc.StatusCode.FAILED_PRECONDITION, "cannot move a published version")

    # Published versions are immutable.
    await expect(stub.UpdateVersion(pb.UpdateVersionRequest(
        api_id=api.id, version="v1", patch=pb.ApiVersion(description="changed"),
        update_mask=field_mask_pb2.FieldMask(paths=["description"])), metadata=OWNER),
        grpc.StatusCode.FAILED_PRECONDITION, "immutable")
    got = (await stub.GetVersion(pb.GetVersionRequest(api_id=api.id, version="v1"),
                                 metadata=OWNER)).version
    assert got.description == "First version"

    async def version(name: str, schema: dict) -> None:
        await stub.CreateVersion(pb.CreateVersionRequest(
            api_id=api.id, version=name, description=f"{name}", prompt=prompt(schema)),
            metadata=OWNER)

    # A new required input field breaks v1's callers: not as a minor version...
    await version("v1.1", input_schema("question", "tone"))
    await expect(stub.PublishVersion(pb.PublishVersionRequest(api_id=api.id, version="v1.1"),
                                     metadata=OWNER),
                 grpc.StatusCode.FAILED_PRECONDITION,
                 "breaking input schema change needs a new major version", "tone")
    # ... an optional one is compatible ...
    await version("v1.2", input_schema("question"))
    await stub.PublishVersion(pb.PublishVersionRequest(api_id=api.id, version="v1.2"),
                              metadata=OWNER)
    # ... and a new major version may break.
    await version("v2", input_schema("question", "tone"))
    v2 = (await stub.PublishVersion(pb.PublishVersionRequest(api_id=api.id, version="v2"),
                                    metadata=OWNER)).version
    assert v2.state == "published"

    # Deprecation: a sunset far enough ahead, and a published successor.
    def deprecate(sunset, successor: str = "v2", caller=OWNER):
        return stub.DeprecateVersion(pb.DeprecateVersionRequest(
            api_id=api.id, version="v1", sunset_time=sunset, successor=successor), metadata=caller)

    await expect(deprecate(in_days(10)), grpc.StatusCode.FAILED_PRECONDITION,
                 "the sunset date must be at least 30 days ahead")
    await expect(deprecate(in_days(40), "v1.1"), grpc.StatusCode.FAILED_PRECONDITION,
                 "the successor version v1.1 is draft, not published")
    await expect(deprecate(in_days(40), "v7"), grpc.StatusCode.FAILED_PRECONDITION,
                 "the successor version v7 does not exist")
    await expect(deprecate(in_days(40), ""), grpc.StatusCode.FAILED_PRECONDITION,
                 "needs a successor")
    await expect(deprecate(in_days(40), "v1"), grpc.StatusCode.FAILED_PRECONDITION,
                 "its own successor")
    await expect(stub.DeprecateVersion(pb.DeprecateVersionRequest(
        api_id=api.id, version="v1", successor="v2"), metadata=OWNER),
        grpc.StatusCode.INVALID_ARGUMENT, "sunset_time")
    await expect(deprecate(in_days(40), caller=TEAM_B_ADMIN), grpc.StatusCode.PERMISSION_DENIED)
    sunset = in_days(40)
    deprecated = (await deprecate(sunset)).version
    assert (deprecated.state, deprecated.successor) == ("deprecated", "v2")
    assert deprecated.sunset_time.seconds == sunset.seconds
    assert deprecated.HasField("deprecate_time")

    # Retirement: not before the sunset; forcing it is a platform admin's, with a reason.
    def retire(caller=OWNER, force=False, reason=""):
        return stub.RetireVersion(pb.RetireVersionRequest(
            api_id=api.id, version="v1", force=force, reason=reason), metadata=caller)

    await expect(retire(), grpc.StatusCode.FAILED_PRECONDITION,
                 "the sunset date has not passed: retirement is possible in 40 days")
    await expect(retire(force=True, reason="urgent"), grpc.StatusCode.PERMISSION_DENIED,
                 "platform admin")
    await expect(retire(TENANT_ADMIN, force=True, reason="urgent"),
                 grpc.StatusCode.PERMISSION_DENIED, "platform admin")
    await expect(retire(PLATFORM_ADMIN, force=True), grpc.StatusCode.FAILED_PRECONDITION,
                 "needs a reason")
    retired = (await retire(PLATFORM_ADMIN, force=True, reason="security incident")).version
    assert retired.state == "retired" and retired.HasField("retire_time")
    assert ledger.asked and set(ledger.asked) == {(api.id, "v1")}
    listed = (await stub.ListVersions(pb.ListVersionsRequest(api_id=api.id),
                                      metadata=OWNER)).versions
    assert [(v.version, v.state) for v in listed] == [
        ("v1", "retired"), ("v1.1", "draft"), ("v1.2", "published"), ("v2", "published")]
    # Others see the live versions, never the drafts.
    seen = (await stub.ListVersions(pb.ListVersionsRequest(api_id=api.id),
                                    metadata=TEAM_B_DEV)).versions
    assert [v.version for v in seen] == ["v1", "v1.2", "v2"]
    await expect(stub.GetVersion(pb.GetVersionRequest(api_id=api.id, version="v1.1"),
                                 metadata=TEAM_B_DEV), grpc.StatusCode.NOT_FOUND)


async def until_past(moment: datetime) -> None:
    await asyncio.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()) + 0.02)


async def deprecate_briefly(stub, api: pb.Api, version: str, successor: str) -> None:
    """Deprecate with a sunset just ahead (deprecation_min_days 0), then wait it out."""
    sunset = datetime.now(UTC) + timedelta(milliseconds=300)
    await stub.DeprecateVersion(pb.DeprecateVersionRequest(
        api_id=api.id, version=version, sunset_time=timestamp(sunset), successor=successor),
        metadata=OWNER)
    await until_past(sunset)


async def test_retirement_waits_for_sunset_and_quiet_period(registries, tmp_path):
    registry = await registries(policy_dir=policies(tmp_path, deprecation_min_days=0,
                                                    retirement_quiet_days=2))
    stub = registry.stub
    ledger = LastCalls()
    registry.service.versions.last_call = ledger
    api = await model_api(stub, "quiet", "quiet-v1")
    await new_version(stub, api, "v2", "quiet-v2")
    # Published, not deprecated: only a forced retirement.
    await expect(stub.RetireVersion(pb.RetireVersionRequest(api_id=api.id, version="v1"),
                                    metadata=OWNER),
                 grpc.StatusCode.FAILED_PRECONDITION, "unless a platform admin forces")
    # Far enough ahead to still be ahead at the next call on a slow, shared machine
    # (700 ms was not: a CI run passed it during DeprecateVersion).
    sunset = datetime.now(UTC) + timedelta(seconds=3)
    await stub.DeprecateVersion(pb.DeprecateVersionRequest(
        api_id=api.id, version="v1", sunset_time=timestamp(sunset), successor="v2"),
        metadata=OWNER)
    retire = pb.RetireVersionRequest(api_id=api.id, version="v1")
    await expect(stub.RetireVersion(retire, metadata=OWNER), grpc.StatusCode.FAILED_PRECONDITION,
                 "the sunset date has not passed")
    await until_past(sunset)

    ledger.down = True  # unknown last call: refused, never guessed
    await expect(stub.RetireVersion(retire, metadata=OWNER), grpc.StatusCode.UNAVAILABLE,
                 "ledger")
    ledger.down = False
    ledger.answer = datetime.now(UTC) - timedelta(hours=1)
    await expect(stub.RetireVersion(retire, metadata=OWNER), grpc.StatusCode.FAILED_PRECONDITION,
                 "subscribers called this version less than a day ago; "
                 "retirement needs 2 quiet days")
    ledger.answer = datetime.now(UTC) - timedelta(days=1, hours=1)
    await expect(stub.RetireVersion(retire, metadata=OWNER), grpc.StatusCode.FAILED_PRECONDITION,
                 "subscribers called this version 1 day ago")
    ledger.answer = datetime.now(UTC) - timedelta(days=3)
    retired = (await stub.RetireVersion(retire, metadata=OWNER)).version
    assert retired.state == "retired"
    assert ledger.asked[-1] == (api.id, "v1")
    # Never called at all is quiet too.
    await new_version(stub, api, "v3", "quiet-v3")
    await deprecate_briefly(stub, api, "v2", "v3")
    ledger.answer = None
    done = (await stub.RetireVersion(pb.RetireVersionRequest(api_id=api.id, version="v2"),
                                     metadata=OWNER)).version
    assert done.state == "retired"
    # Without a ledger, only forced retirements pass.
    await new_version(stub, api, "v4", "quiet-v4")
    await deprecate_briefly(stub, api, "v3", "v4")
    registry.service.versions.last_call = None
    await expect(stub.RetireVersion(pb.RetireVersionRequest(api_id=api.id, version="v3"),
                                    metadata=OWNER),
                 grpc.StatusCode.UNAVAILABLE, "ledger is not configured")
    forced = (await stub.RetireVersion(pb.RetireVersionRequest(
        api_id=api.id, version="v3", force=True, reason="no ledger here"),
        metadata=PLATFORM_ADMIN)).version
    assert forced.state == "retired"


async def test_aliases_ownership_and_visibility(registry):
    stub = registry.stub
    alpha = await model_api(stub, "alpha", "shared-alias", "alpha-only")
    # An alias bound by a live version of another API cannot be published again ...
    beta = await model_api(stub, "beta", "shared-alias", publish=False)
    await expect(stub.PublishVersion(pb.PublishVersionRequest(api_id=beta.id, version="v1"),
                                     metadata=OWNER),
                 grpc.StatusCode.FAILED_PRECONDITION, "'shared-alias'", alpha.id)
    # ... nor by another version of the same API: each alias names one version.
    await stub.CreateVersion(pb.CreateVersionRequest(
        api_id=alpha.id, version="v2", model_aliases=["alpha-only"]), metadata=OWNER)
    await expect(stub.PublishVersion(pb.PublishVersionRequest(api_id=alpha.id, version="v2"),
                                     metadata=OWNER),
                 grpc.StatusCode.FAILED_PRECONDITION, "'alpha-only'")
    got = (await stub.GetApi(pb.GetApiRequest(api_id=alpha.id), metadata=OWNER)).api
    assert list(got.model_aliases) == ["shared-alias", "alpha-only"]
    assert list((await stub.GetApi(pb.GetApiRequest(api_id=beta.id),
                                   metadata=OWNER)).api.model_aliases) == []

    # Non-owners: a developer of another team (or of the owner team) manages nothing.
    for caller in (TEAM_B_DEV, TEAM_B_ADMIN, OWNER_DEV):
        await expect(stub.CreateVersion(pb.CreateVersionRequest(
            api_id=alpha.id, version="v3", model_aliases=["x"]), metadata=caller),
            grpc.StatusCode.PERMISSION_DENIED)
    # Another team's admin may not create APIs for the owner team.
    await expect(stub.CreateApi(pb.CreateApiRequest(
        name="hijack", kind=pb.API_KIND_MODEL, owner_team_id=TEAM_A), metadata=TEAM_B_ADMIN),
        grpc.StatusCode.PERMISSION_DENIED)
    await expect(stub.CreateApi(pb.CreateApiRequest(name="nope", kind=pb.API_KIND_MODEL),
                                metadata=OWNER_DEV), grpc.StatusCode.PERMISSION_DENIED)
    # A tenant admin manages every team's APIs of its tenant.
    await stub.CreateVersion(pb.CreateVersionRequest(
        api_id=alpha.id, version="v3", model_aliases=["alpha-3"]), metadata=TENANT_ADMIN)
    # Other tenants: a tenant-visibility API does not exist for them.
    for call in (
        stub.GetApi(pb.GetApiRequest(api_id=alpha.id), metadata=OTHER_TENANT_DEV),
        stub.CreateVersion(pb.CreateVersionRequest(api_id=alpha.id, version="v9",
                                                   model_aliases=["x"]),
                           metadata=who("ten_b", TEAM_X, "tenant_admin")),
        stub.ListVersions(pb.ListVersionsRequest(api_id=alpha.id), metadata=OTHER_TENANT_DEV),
        stub.CreateSubscription(pb.CreateSubscriptionRequest(api_id=alpha.id),
                                metadata=OTHER_TENANT_DEV),
    ):
        await expect(call, grpc.StatusCode.NOT_FOUND, "API not found")

    # The catalog: visibility decides who finds what.
    made = {}
    for visibility in ("private", "team", "tenant", "shared", "public"):
        made[visibility] = await model_api(
            stub, f"vis-{visibility}", publish=False, visibility=visibility,
            shared=("ten_b",) if visibility == "shared" else ())
    await model_api(stub, "unrelated", publish=False, visibility="public")

    async def catalog(caller, query: str = "vis-") -> set[str]:
        apis = (await stub.ListApis(pb.ListApisRequest(query=query), metadata=caller)).apis
        return {a.name.removeprefix("vis-") for a in apis}

    everything = {"private", "team", "tenant", "shared", "public"}
    assert await catalog(OWNER) == everything
    assert await catalog(TENANT_ADMIN) == everything
    assert await catalog(OWNER_DEV) == everything - {"private"}
    assert await catalog(TEAM_B_DEV) == {"tenant", "shared", "public"}
    assert await catalog(OTHER_TENANT_DEV) == {"shared", "public"}
    assert await catalog(THIRD_TENANT_DEV) == {"public"}
    # The query matches names and descriptions, case-insensitively, literally.
    assert await catalog(THIRD_TENANT_DEV, "VIS-PUB") == {"public"}
    assert await catalog(OWNER, "PRIVATE MODELS") == {"private"}
    assert await catalog(OWNER, "%") == set()
    assert await catalog(OWNER, "vis_") == set()
    # GetApi follows the same rules (by id; a name only within one's own tenant).
    shared = made["shared"]
    got = (await stub.GetApi(pb.GetApiRequest(api_id=shared.id), metadata=OTHER_TENANT_DEV)).api
    assert list(got.shared_tenant_ids) == ["ten_b"]
    await expect(stub.GetApi(pb.GetApiRequest(api_id="vis-shared"), metadata=OTHER_TENANT_DEV),
                 grpc.StatusCode.NOT_FOUND)
    await expect(stub.GetApi(pb.GetApiRequest(api_id=shared.id), metadata=THIRD_TENANT_DEV),
                 grpc.StatusCode.NOT_FOUND)
    await expect(stub.GetApi(pb.GetApiRequest(api_id=made["private"].id), metadata=OWNER_DEV),
                 grpc.StatusCode.NOT_FOUND)
    await expect(stub.GetApi(pb.GetApiRequest(api_id=made["team"].id), metadata=TEAM_B_DEV),
                 grpc.StatusCode.NOT_FOUND)
    # Widening the visibility is the owners' to do.
    await expect(stub.UpdateApi(pb.UpdateApiRequest(
        api_id=made["team"].id, patch=pb.Api(visibility="public"),
        update_mask=field_mask_pb2.FieldMask(paths=["visibility"])), metadata=OWNER_DEV),
        grpc.StatusCode.PERMISSION_DENIED)
    await stub.UpdateApi(pb.UpdateApiRequest(
        api_id=made["team"].id, patch=pb.Api(visibility="public"),
        update_mask=field_mask_pb2.FieldMask(paths=["visibility"])), metadata=OWNER)
    assert await catalog(THIRD_TENANT_DEV) == {"public", "team"}


# -- subscriptions and webhooks ------------------------------------------------------------------


@pytest.fixture
async def receiver():
    async with serving_receiver() as hook:
        yield hook


async def test_subscriptions_and_webhooks(registries, receiver):
    registry = await registries(webhook_url=receiver.url, webhook_secret=WEBHOOK_SECRET)
    stub = registry.stub
    api = await model_api(stub, "chat", "chat-model", visibility="shared", shared=("ten_b",))

    # The owner team's own subscription is approved at once.
    own = await subscribe(stub, api, OWNER_DEV)
    assert (own.state, own.decided_by, own.team_id) == ("approved", "policy", TEAM_A)
    # Another team of the tenant waits for the owners.
    pending = await subscribe(stub, api, TEAM_B_DEV, justification="for the help desk")
    assert (pending.state, pending.subscriber_tenant_id) == ("pending", "ten_a")
    await expect(subscribe(stub, api, TEAM_B_DEV), grpc.StatusCode.ALREADY_EXISTS)
    await expect(subscribe(stub, api, who(team=TEAM_D, role="viewer")),
                 grpc.StatusCode.PERMISSION_DENIED, "your roles do not allow subscribing")
    waiting = (await stub.ListSubscriptions(pb.ListSubscriptionsRequest(pending_approval=True),
                                            metadata=OWNER)).subscriptions
    assert [s.id for s in waiting] == [pending.id]
    assert [s.id for s in (await stub.ListSubscriptions(
        pb.ListSubscriptionsRequest(pending_approval=True), metadata=TEAM_B_DEV)).subscriptions
    ] == []
    mine = (await stub.ListSubscriptions(pb.ListSubscriptionsRequest(),
                                         metadata=TEAM_B_DEV)).subscriptions
    assert [(s.id, s.state) for s in mine] == [(pending.id, "pending")]

    # Webhooks: signed, one event per request and decision.
    events = await receiver.wait_for(2)
    assert [e["type"] for e in events] == ["subscription.approved", "subscription.requested"]
    assert events[1]["data"]["subscription_id"] == pending.id
    assert events[1]["data"]["justification"] == "for the help desk"
    assert events[1]["data"]["api_name"] == "chat"

    # The subscribing team cannot approve itself; the owner team's admin can.
    await expect(decide(stub, "ApproveSubscription", pending, TEAM_B_DEV),
                 grpc.StatusCode.PERMISSION_DENIED, "approve subscriptions")
    await expect(decide(stub, "ApproveSubscription", pending, TEAM_B_ADMIN),
                 grpc.StatusCode.PERMISSION_DENIED)
    await expect(decide(stub, "ApproveSubscription", pending, OTHER_TENANT_DEV),
                 grpc.StatusCode.NOT_FOUND)
    receiver.fail = 2  # the approval's webhook: 500, 500, then delivered
    approved = await decide(stub, "ApproveSubscription", pending, reason="ok for support")
    assert (approved.state, approved.decision_reason) == ("approved", "ok for support")
    assert approved.decided_by == dict(OWNER)[PRINCIPAL]
    await expect(decide(stub, "ApproveSubscription", pending), grpc.StatusCode.FAILED_PRECONDITION,
                 "the subscription is approved")
    events = await receiver.wait_for(3)
    assert events[2]["type"] == "subscription.approved"
    assert events[2]["data"]["subscription_id"] == pending.id
    assert events[2]["data"]["reason"] == "ok for support"
    retried = [a for a in receiver.attempts if a["id"] == events[2]["id"]]
    assert len(retried) == 3 and all(a == events[2] for a in retried)
    assert [e["id"] for e in receiver.events].count(events[2]["id"]) == 1
    assert receiver.bad_signatures == 0

    # Reject with a reason; a rejected request is final, a new one may follow.
    third = await subscribe(stub, api, TEAM_C_DEV)
    rejected = await decide(stub, "RejectSubscription", third, reason="not this quarter")
    assert (rejected.state, rejected.decision_reason) == ("rejected", "not this quarter")
    await expect(decide(stub, "ApproveSubscription", third), grpc.StatusCode.FAILED_PRECONDITION)
    again = await subscribe(stub, api, TEAM_C_DEV)
    assert again.state == "pending" and again.id != third.id

    # Another tenant (the API is shared with it) must say why.
    await expect(subscribe(stub, api, OTHER_TENANT_DEV), grpc.StatusCode.INVALID_ARGUMENT,
                 "justification")
    await expect(subscribe(stub, api, OTHER_TENANT_DEV, justification="too short"),
                 grpc.StatusCode.INVALID_ARGUMENT, "at least 20 characters")
    cross = await subscribe(stub, api, OTHER_TENANT_DEV, version="v1",
                            justification="billing assistant for our EU customers")
    assert (cross.state, cross.subscriber_tenant_id, cross.version) == ("pending", "ten_b", "v1")
    await expect(subscribe(stub, api, THIRD_TENANT_DEV, justification="x" * 30),
                 grpc.StatusCode.NOT_FOUND)
    waiting = (await stub.ListSubscriptions(pb.ListSubscriptionsRequest(pending_approval=True),
                                            metadata=OWNER)).subscriptions
    assert {s.id for s in waiting} == {again.id, cross.id}
    # The other tenant sees its own request, never the owner tenant's others.
    theirs = (await stub.GetSubscription(pb.GetSubscriptionRequest(subscription_id=cross.id),
                                         metadata=OTHER_TENANT_DEV)).subscription
    assert theirs.state == "pending"
    await expect(stub.GetSubscription(pb.GetSubscriptionRequest(subscription_id=pending.id),
                                      metadata=OTHER_TENANT_DEV), grpc.StatusCode.NOT_FOUND)

    # Revoke: by the owners with a reason, or by the subscribing team itself.
    revoked = await decide(stub, "RevokeSubscription", pending, reason="contract ended")
    assert (revoked.state, revoked.decision_reason) == ("revoked", "contract ended")
    await expect(decide(stub, "RevokeSubscription", cross, TEAM_B_DEV),
                 grpc.StatusCode.NOT_FOUND)  # another team's subscription
    withdrawn = await decide(stub, "RevokeSubscription", cross, OTHER_TENANT_DEV,
                             reason="no longer needed")
    assert withdrawn.state == "revoked"
    events = await receiver.wait_for(9)
    assert [e["type"] for e in events[3:]] == [
        "subscription.requested", "subscription.rejected", "subscription.requested",
        "subscription.requested", "subscription.revoked", "subscription.revoked"]
    assert events[4]["data"]["reason"] == "not this quarter"
    assert events[6]["data"]["subscriber_tenant_id"] == "ten_b"
    assert events[-1]["data"]["reason"] == "no longer needed"
    assert receiver.bad_signatures == 0
    # Revoked: the team may ask again.
    assert (await subscribe(stub, api, TEAM_B_DEV)).state == "pending"


async def test_webhook_gives_up_without_holding_the_queue(receiver):
    """An event refused every time is dropped after its last try, at once: the
    events behind it are not held up by one more backoff."""
    hook = Webhook(receiver.url, source="test", secret=WEBHOOK_SECRET, attempts=3, backoff=0.2)
    hook.start()
    try:
        receiver.fail = 3
        start = time.monotonic()
        hook.send("subscription.requested", {"n": 1})
        hook.send("subscription.requested", {"n": 2})
        events = await receiver.wait_for(1)
        elapsed = time.monotonic() - start
    finally:
        await hook.close()
    assert [e["data"] for e in receiver.attempts] == [{"n": 1}] * 3 + [{"n": 2}]
    assert [e["data"] for e in events] == [{"n": 2}]
    assert elapsed < 1.0  # 0.2 + 0.4 s of backoff, and no 0.8 s more after the last try
    assert receiver.bad_signatures == 0


# -- audit chain ------------------------------------------------------------------------------


async def test_audit_chain_detects_tampering(registry):
    stub = registry.stub
    api = await model_api(stub, "audited", "audited-model")
    await subscribe(stub, api, TEAM_B_DEV)
    await model_api(stub, "elsewhere", "elsewhere-model",
                    caller=who("ten_b", TEAM_X, "team_admin"))

    async def verify(caller=PLATFORM_ADMIN) -> pb.VerifyAuditChainResponse:
        return await stub.VerifyAuditChain(pb.VerifyAuditChainRequest(), metadata=caller)

    intact = await verify()
    assert (intact.intact, intact.events, intact.first_bad_seq, intact.problem) == (
        True, 7, 0, "")
    for caller in (TENANT_ADMIN, OWNER):
        await expect(verify(caller), grpc.StatusCode.PERMISSION_DENIED)

    # The log is tenant-scoped, newest first, chained.
    events = (await stub.ListAuditEvents(pb.ListAuditEventsRequest(),
                                         metadata=TENANT_ADMIN)).events
    assert [e.action for e in events] == [
        "subscriptions.create", "versions.publish", "versions.create", "apis.create"]
    assert [e.seq for e in events] == [4, 3, 2, 1]
    assert all(e.tenant_id == "ten_a" for e in events)
    assert all(newer.prev_hash == older.hash for newer, older in zip(events, events[1:],
                                                                       strict=False))
    assert events[0].actor == dict(TEAM_B_DEV)[PRINCIPAL]
    assert events[2].object_id == f"{api.id}/v1" and events[1].decision_id
    theirs = (await stub.ListAuditEvents(pb.ListAuditEventsRequest(),
                                         metadata=who("ten_b", "", "tenant_admin"))).events
    assert [e.seq for e in theirs] == [7, 6, 5]
    by_object = (await stub.ListAuditEvents(pb.ListAuditEventsRequest(object_id=api.id),
                                            metadata=TENANT_ADMIN)).events
    assert [e.action for e in by_object] == ["apis.create"]
    await expect(stub.ListAuditEvents(pb.ListAuditEventsRequest(), metadata=OWNER),
                 grpc.StatusCode.PERMISSION_DENIED)
    page = await stub.ListAuditEvents(pb.ListAuditEventsRequest(page_size=3),
                                      metadata=TENANT_ADMIN)
    rest = await stub.ListAuditEvents(pb.ListAuditEventsRequest(
        page_token=page.next_page_token), metadata=TENANT_ADMIN)
    assert [e.seq for e in [*page.events, *rest.events]] == [4, 3, 2, 1]

    async def sql(statement: str, **params) -> Any:
        async with registry.engine.begin() as conn:
            return await conn.execute(text(statement), params)

    original = (await sql("SELECT actor FROM registry_audit_events WHERE seq = 2")).scalar_one()
    await sql("UPDATE registry_audit_events SET actor = 'x' WHERE seq = 2")
    tampered = await verify()
    assert (tampered.intact, tampered.first_bad_seq) == (False, 2)
    assert "changed" in tampered.problem
    await sql("UPDATE registry_audit_events SET actor = :actor WHERE seq = 2", actor=original)
    assert (await verify()).intact

    # Deleting the newest event is caught by the chain head.
    await sql("DELETE FROM registry_audit_events WHERE seq = 7")
    truncated = await verify()
    assert (truncated.intact, truncated.first_bad_seq) == (False, 7)
    assert "deleted" in truncated.problem
    # And deleting one in the middle by the gap.
    await sql("DELETE FROM registry_audit_events WHERE seq = 3")
    gap = await verify()
    assert (gap.intact, gap.first_bad_seq) == (False, 4)
    assert "missing" in gap.problem


# -- the watch stream -------------------------------------------------------------------------


class Watcher:
    """Reads a WatchGovernance stream: a snapshot first, then non-empty deltas."""

    def __init__(self, stub):
        self.call = stub.WatchGovernance(pb.WatchGovernanceRequest())
        self.revision = 0

    async def read(self, within: float = 5.0) -> pb.WatchGovernanceResponse:
        message = await asyncio.wait_for(self.call.read(), within)
        assert message is not grpc.aio.EOF
        assert message.revision > self.revision  # every message moves the revision on
        self.revision = message.revision
        return message

    async def snapshot(self) -> pb.GovernanceSnapshot:
        message = await self.read()
        assert message.WhichOneof("change") == "snapshot"
        return message.snapshot

    async def delta(self) -> pb.GovernanceDelta:
        while True:
            message = await self.read()
            assert message.WhichOneof("change") == "delta"
            if message.delta.ByteSize():
                return message.delta


async def wait_until(predicate: Callable[[], bool], within: float = 3.0) -> float:
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < within, "condition not reached in time"
        await asyncio.sleep(0.01)
    return time.monotonic() - start


async def test_watch_stream_and_governance_view(registries):
    registry = await registries()
    stub = registry.stub
    before = await model_api(stub, "before", "before-model")
    # (A watcher gets the hub's state, which follows the database every 200 ms.)
    await wait_until(lambda: "before-model" in registry.service.hub.aliases)
    watcher = Watcher(stub)
    snap = await watcher.snapshot()
    assert [(a.alias, a.api_id, a.version, a.state) for a in snap.aliases] == [
        ("before-model", before.id, "v1", "published")]
    assert list(snap.grants) == [] and list(snap.prompts) == []

    view = GovernanceView(f"127.0.0.1:{registry.port}", "test", max_backoff=0.2)
    view.start()
    try:
        await asyncio.wait_for(view.ready.wait(), 5)
        assert view.binding("before-model").api_id == before.id

        # Publishing binds the alias.
        api = await model_api(stub, "watched", "watched-model")
        delta = await watcher.delta()
        assert [(a.alias, a.api_id, a.api_name, a.api_tenant_id, a.owner_team_id, a.version,
                 a.state) for a in delta.upsert_aliases] == [
            ("watched-model", api.id, "watched", "ten_a", TEAM_A, "v1", "published")]
        assert not (delta.removed_aliases or delta.upsert_grants or delta.removed_grants)
        await wait_until(lambda: view.binding("watched-model") is not None)

        # A successor, then the deprecation: the binding carries sunset and successor.
        await new_version(stub, api, "v2", "watched-model-2")
        delta = await watcher.delta()
        assert [(a.alias, a.version) for a in delta.upsert_aliases] == [("watched-model-2", "v2")]
        sunset = in_days(45)
        await stub.DeprecateVersion(pb.DeprecateVersionRequest(
            api_id=api.id, version="v1", sunset_time=sunset, successor="v2"), metadata=OWNER)
        delta = await watcher.delta()
        assert len(delta.upsert_aliases) == 1
        binding = delta.upsert_aliases[0]
        assert (binding.alias, binding.state, binding.successor) == (
            "watched-model", "deprecated", "v2")
        assert binding.sunset_time.seconds == sunset.seconds
        assert binding.HasField("deprecate_time")
        await wait_until(lambda: view.binding("watched-model").state == "deprecated")

        # A pending subscription grants nothing; its approval does.
        pending = await subscribe(stub, api, TEAM_B_DEV)
        assert not view.subscribed(TEAM_B, api.id, "v1")
        await decide(stub, "ApproveSubscription", pending)
        delta = await watcher.delta()
        assert [(g.subscription_id, g.team_id, g.api_id, g.version)
                for g in delta.upsert_grants] == [(pending.id, TEAM_B, api.id, "")]
        assert not delta.upsert_aliases and not delta.removed_grants
        await wait_until(lambda: view.subscribed(TEAM_B, api.id, "v2"))
        assert view.subscribed(TEAM_B, api.id, "v1")
        assert not view.subscribed(TEAM_C, api.id, "v1")
        # A one-version grant covers that version only.
        only_v2 = await subscribe(stub, api, OWNER_DEV, version="v2")
        delta = await watcher.delta()
        assert [(g.team_id, g.version) for g in delta.upsert_grants] == [(TEAM_A, "v2")]
        await wait_until(lambda: view.subscribed(TEAM_A, api.id, "v2"))
        assert not view.subscribed(TEAM_A, api.id, "v1")

        # Revoking removes the grant.
        await decide(stub, "RevokeSubscription", pending, reason="done")
        delta = await watcher.delta()
        assert list(delta.removed_grants) == [pending.id] and not delta.upsert_grants
        await wait_until(lambda: not view.subscribed(TEAM_B, api.id, "v1"))

        # Retiring keeps the binding, as retired (the gateway answers 410).
        await stub.RetireVersion(pb.RetireVersionRequest(
            api_id=api.id, version="v1", force=True, reason="cut over"), metadata=PLATFORM_ADMIN)
        delta = await watcher.delta()
        assert [(a.alias, a.state) for a in delta.upsert_aliases] == [("watched-model", "retired")]
        await wait_until(lambda: view.binding("watched-model").state == "retired")

        # Prompt APIs: routes for the router.
        prompt_api = (await stub.CreateApi(pb.CreateApiRequest(
            name="answers", kind=pb.API_KIND_PROMPT, description="Answers"), metadata=OWNER)).api
        await stub.CreateVersion(pb.CreateVersionRequest(
            api_id=prompt_api.id, version="v1", prompt=prompt(input_schema("question"))),
            metadata=OWNER)
        await stub.PublishVersion(pb.PublishVersionRequest(api_id=prompt_api.id, version="v1"),
                                  metadata=OWNER)
        delta = await watcher.delta()
        assert [(p.api_id, p.version, p.state, p.prompt.model) for p in delta.upsert_prompts] == [
            (prompt_api.id, "v1", "published", "support-default")]
        await wait_until(lambda: view.prompt(prompt_api.id, "v1", "ten_b") is not None)
        assert view.prompt("answers", "v1", "ten_a").api_id == prompt_api.id
        assert view.prompt("answers", "v1", "ten_b") is None  # names are per tenant

        # A new watcher starts from a snapshot of all of it.
        late = Watcher(stub)
        snap = await late.snapshot()
        assert {(a.alias, a.state) for a in snap.aliases} == {
            ("before-model", "published"), ("watched-model", "retired"),
            ("watched-model-2", "published")}
        assert [g.subscription_id for g in snap.grants] == [only_v2.id]
        assert [p.api_id for p in snap.prompts] == [prompt_api.id]
        late.call.cancel()
        watcher.call.cancel()

        # The registry restarts (same port, same database): the view keeps its state
        # meanwhile, reconnects, and follows the new server.
        port = registry.port
        await registry.stop()
        await asyncio.sleep(0.3)
        assert view.binding("watched-model-2") is not None
        assert view.subscribed(TEAM_A, api.id, "v2")
        revived = await registries(port=port)
        again = await subscribe(revived.stub, api, TEAM_B_DEV)
        await decide(revived.stub, "ApproveSubscription", again)
        # (Within its own backoff: gRPC's reconnect backoff, up to 120 s, is capped.)
        elapsed = await wait_until(lambda: view.subscribed(TEAM_B, api.id, "v2"), within=5)
        assert elapsed < 2.0
        assert view.binding("watched-model").state == "retired"
    finally:
        await view.close()


async def test_concurrent_changes_all_reach_the_watch_stream(registry):
    """Changes committing out of order still all reach watchers (the change feed's
    seqs follow commit order), and the audit chain stays one chain."""
    stub = registry.stub
    api = await model_api(stub, "busy", "busy-model")
    teams = [make_team(f"busy-{i}") for i in range(30)]
    pending = [await subscribe(stub, api, who(team=t, role="developer")) for t in teams]
    view = GovernanceView(f"127.0.0.1:{registry.port}", "test", max_backoff=0.2)
    view.start()
    try:
        await asyncio.wait_for(view.ready.wait(), 5)
        await asyncio.gather(*(decide(stub, "ApproveSubscription", s) for s in pending))
        await wait_until(lambda: all(view.subscribed(t, api.id, "v1") for t in teams))
    finally:
        await view.close()
    assert len(registry.service.hub.grants) == len(teams)
    verdict = await stub.VerifyAuditChain(pb.VerifyAuditChainRequest(), metadata=PLATFORM_ADMIN)
    assert (verdict.intact, verdict.events) == (True, 3 + 2 * len(teams))


# -- end to end: auth's Check enforces what the registry says ----------------------------------------


def _headers(reply) -> dict[str, str]:
    return {h.header.key: h.header.value for h in reply.ok_response.headers}


def _response_headers(reply) -> dict[str, str]:
    return {h.header.key: h.header.value for h in reply.ok_response.response_headers_to_add}


def _denial(reply) -> tuple[int, str, str]:
    if reply.status.code == code_pb2.OK:
        return 200, "ok", ""
    error = orjson.loads(reply.denied_response.body)["error"]
    return reply.denied_response.status.code, error["code"], error["message"]


async def test_check_enforces_governance_end_to_end(registries, tmp_path):
    registry = await registries()
    (tmp_path / "auth").mkdir()
    auth_server, _auth, auth_engine = await build_auth(AuthSettings(
        data_dir=tmp_path / "auth", grpc_port=0,
        registry_address=f"127.0.0.1:{registry.port}"))
    auth_port = await auth_server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{auth_port}")
    check = authz_grpc.AuthorizationStub(channel)
    admin = auth_grpc.AuthServiceStub(channel)
    admin_key = (tmp_path / "auth" / "admin.key").read_text().strip()
    try:
        async def account_key(team: str, role: str) -> str:
            await admin_call(check, admin, admin_key, "CreateTeam",
                             auth_pb.CreateTeamRequest(tenant="default", name=team))
            await admin_call(check, admin, admin_key, "CreateServiceAccount",
                             auth_pb.CreateServiceAccountRequest(
                                 tenant="default", team=team, name=f"{team}-bot", roles=[role]))
            return (await admin_call(check, admin, admin_key, "CreateApiKey",
                                     auth_pb.CreateApiKeyRequest(
                                         tenant="default", name=f"{team} key", roles=[role],
                                         owner=f"service-accounts/{team}-bot"))).secret

        owner_key = await account_key("owners", "team_admin")
        user_key = await account_key("users", "developer")

        async def as_(key: str):
            """Registry metadata as Envoy forwards it for `key` (from a real Check)."""
            return await identity_metadata(check, key, REGISTRY + "CreateApi")

        owner, user, root = await as_(owner_key), await as_(user_key), await as_(admin_key)
        users_team = dict(user)[TEAM_ID]

        async def call(key: str, model: str):
            return await check.Check(check_request(key, model=model))

        async def until(key: str, model: str, wanted: Callable[[Any], bool]):
            start = time.monotonic()
            while True:
                reply = await call(key, model)
                if wanted(reply):
                    return reply, time.monotonic() - start
                assert time.monotonic() - start < 3.0, _denial(reply)
                await asyncio.sleep(0.01)

        # An alias no API version binds is ungoverned.
        assert (await call(user_key, "assist-chat")).status.code == code_pb2.OK
        api = await model_api(registry.stub, "assist", "assist-chat", caller=owner)

        # Published: the user's team needs a subscription; the owner team does not.
        reply, _ = await until(user_key, "assist-chat",
                               lambda r: r.status.code != code_pb2.OK)
        status, code, message = _denial(reply)
        assert (status, code) == (403, "subscription_required")
        assert "assist" in message and api.id in message
        owned = await call(owner_key, "assist-chat")
        assert owned.status.code == code_pb2.OK
        assert _headers(owned)["x-lockgate-api-id"] == api.id

        pending = await subscribe(registry.stub, api, user)
        assert pending.state == "pending" and pending.team_id == users_team
        await asyncio.sleep(0.3)
        assert _denial(await call(user_key, "assist-chat"))[1] == "subscription_required"

        await decide(registry.stub, "ApproveSubscription", pending, owner)
        reply, elapsed = await until(user_key, "assist-chat",
                                     lambda r: r.status.code == code_pb2.OK)
        assert elapsed < 1.0
        headers = _headers(reply)
        assert (headers["x-lockgate-api-id"], headers["x-lockgate-api-version"]) == (api.id, "v1")
        assert headers["x-lockgate-team-id"] == users_team
        assert _response_headers(reply) == {}
        # Ungoverned aliases carry no API identity headers, and never a client's.
        plain = await check.Check(check_request(
            user_key, model="other", extra={"x-lockgate-api-id": "api_spoofed"}))
        assert "x-lockgate-api-id" not in _headers(plain)
        assert "x-lockgate-api-id" in plain.ok_response.headers_to_remove

        # Deprecated: still allowed, with Deprecation, Sunset and the successor link.
        await new_version(registry.stub, api, "v2", "assist-chat-2", caller=owner)
        sunset = in_days(60)
        deprecated = (await registry.stub.DeprecateVersion(pb.DeprecateVersionRequest(
            api_id=api.id, version="v1", sunset_time=sunset, successor="v2"),
            metadata=owner)).version
        reply, elapsed = await until(user_key, "assist-chat",
                                     lambda r: "deprecation" in _response_headers(r))
        assert elapsed < 1.0 and reply.status.code == code_pb2.OK
        lifecycle = _response_headers(reply)
        assert lifecycle["deprecation"] == f"@{deprecated.deprecate_time.seconds}"
        assert lifecycle["sunset"] == formatdate(sunset.seconds, usegmt=True)
        assert lifecycle["sunset"].endswith(" GMT")
        assert lifecycle["link"] == (
            f'</registry/v1/apis/{api.id}/versions/v2>; rel="successor-version"')
        assert _headers(reply)["x-lockgate-api-version"] == "v1"
        v2 = await call(user_key, "assist-chat-2")
        assert v2.status.code == code_pb2.OK and _response_headers(v2) == {}
        assert _headers(v2)["x-lockgate-api-version"] == "v2"

        # Retired (forced by a platform admin): 410, pointing at the successor.
        await registry.stub.RetireVersion(pb.RetireVersionRequest(
            api_id=api.id, version="v1", force=True, reason="model withdrawn"), metadata=root)
        reply, elapsed = await until(user_key, "assist-chat",
                                     lambda r: r.status.code != code_pb2.OK)
        assert elapsed < 1.0
        status, code, message = _denial(reply)
        assert (status, code) == (410, "version_retired")
        assert "v1" in message and "use version v2 instead" in message
        assert _denial(await call(owner_key, "assist-chat"))[0] == 410

        # Revoked: denied within a second.
        await decide(registry.stub, "RevokeSubscription", pending, owner, reason="offboarded")
        reply, elapsed = await until(user_key, "assist-chat-2",
                                     lambda r: r.status.code != code_pb2.OK)
        assert elapsed < 1.0
        assert _denial(reply)[:2] == (403, "subscription_required")
        assert (await call(owner_key, "assist-chat-2")).status.code == code_pb2.OK
    finally:
        await channel.close()
        await auth_server.stop(0)
        await auth_engine.dispose()


async def test_check_fails_closed_until_governance_loads(tmp_path):
    """Auth pointed at a registry that is not there: governed requests get 503."""
    auth_server, _auth, auth_engine = await build_auth(AuthSettings(
        data_dir=tmp_path, grpc_port=0, registry_address="127.0.0.1:1"))
    port = await auth_server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    check = authz_grpc.AuthorizationStub(channel)
    admin_key = (tmp_path / "admin.key").read_text().strip()
    try:
        reply = await check.Check(check_request(admin_key, model="anything"))
        assert _denial(reply)[:2] == (503, "governance_unavailable")
        # Requests naming no model are not governed.
        no_model = await check.Check(check_request(admin_key, path=REGISTRY + "ListApis",
                                                   model="", rest=False))
        assert no_model.status.code == code_pb2.OK
    finally:
        await channel.close()
        await auth_server.stop(0)
        await auth_engine.dispose()
