"""The registry's `log_bodies` flag of an API: set at create or update (owners
only, through the update mask), audited, and carried to watchers in alias
bindings and prompt routes."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import field_mask_pb2

from lockgate.registry.v1 import registry_service_pb2 as pb
from tests.integration import test_governance as governance
from tests.integration.test_governance import (
    OTHER_TENANT_DEV,
    OWNER,
    OWNER_DEV,
    TENANT_ADMIN,
    Watcher,
    input_schema,
    model_api,
    prompt,
    rpc_error,
    wait_until,
)

registries = governance.registries  # the fixture: registries on the test's database


@pytest.fixture
async def registry(registries):
    return await registries()


def log_bodies_patch(api: pb.Api, value: bool, etag: str = "") -> pb.UpdateApiRequest:
    return pb.UpdateApiRequest(api_id=api.id, patch=pb.Api(log_bodies=value),
                               update_mask=field_mask_pb2.FieldMask(paths=["log_bodies"]),
                               etag=etag)


async def test_log_bodies_is_set_by_owners_and_reaches_the_watch_stream(registry):
    stub = registry.stub
    api = await model_api(stub, "logged", "logged-model")
    assert api.log_bodies is False
    await wait_until(lambda: "logged-model" in registry.service.hub.aliases)
    watcher = Watcher(stub)
    snap = await watcher.snapshot()
    assert [(a.alias, a.log_bodies) for a in snap.aliases] == [("logged-model", False)]

    # A developer of the owner team and another tenant may not turn it on.
    refused = await rpc_error(stub.UpdateApi(log_bodies_patch(api, True), metadata=OWNER_DEV))
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    hidden = await rpc_error(stub.UpdateApi(log_bodies_patch(api, True),
                                            metadata=OTHER_TENANT_DEV))
    assert hidden.code() == grpc.StatusCode.NOT_FOUND

    updated = (await stub.UpdateApi(log_bodies_patch(api, True, api.etag), metadata=OWNER)).api
    assert updated.log_bodies is True and updated.etag != api.etag
    assert updated.description == api.description  # only the masked field changed
    delta = await watcher.delta()
    assert [(a.alias, a.log_bodies) for a in delta.upsert_aliases] == [("logged-model", True)]

    # Tenant admins may turn it off; the stream follows.
    off = (await stub.UpdateApi(log_bodies_patch(api, False), metadata=TENANT_ADMIN)).api
    assert off.log_bodies is False
    delta = await watcher.delta()
    assert [(a.alias, a.log_bodies) for a in delta.upsert_aliases] == [("logged-model", False)]

    audit = await stub.ListAuditEvents(pb.ListAuditEventsRequest(object_id=api.id),
                                       metadata=TENANT_ADMIN)
    assert [e.action for e in audit.events].count("apis.update") == 2


async def test_log_bodies_at_create_and_on_prompt_routes(registry):
    stub = registry.stub
    api = (await stub.CreateApi(pb.CreateApiRequest(
        name="answers", kind=pb.API_KIND_PROMPT, description="Answers", log_bodies=True),
        metadata=OWNER)).api
    assert api.log_bodies is True
    got = (await stub.GetApi(pb.GetApiRequest(api_id=api.id), metadata=OWNER)).api
    assert got.log_bodies is True
    await stub.CreateVersion(pb.CreateVersionRequest(api_id=api.id, version="v1",
                                                     prompt=prompt(input_schema("question"))),
                             metadata=OWNER)
    await stub.PublishVersion(pb.PublishVersionRequest(api_id=api.id, version="v1"),
                              metadata=OWNER)
    await wait_until(lambda: f"{api.id}/v1" in registry.service.hub.prompts)
    snap = await Watcher(stub).snapshot()
    assert [(p.api_id, p.log_bodies) for p in snap.prompts] == [(api.id, True)]
