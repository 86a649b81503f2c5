"""Registry over gRPC (in-process, port 0) on SQLite and PostgreSQL."""

from __future__ import annotations

import grpc
import pytest

from lockgate.identity import KEY_ID, TENANT_ID
from lockgate.registry.v1 import registry_service_pb2 as pb
from lockgate.registry.v1 import registry_service_pb2_grpc as pb_grpc
from services.registry.app import RegistrySettings, build


@pytest.fixture
async def registry(database_url, tmp_path):
    settings = RegistrySettings(database_url=database_url, data_dir=tmp_path, grpc_port=0)
    server, _service, engine = await build(settings)
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield pb_grpc.RegistryServiceStub(channel)
    await channel.close()
    await server.stop(0)
    await engine.dispose()


def tenant(name: str):
    return ((TENANT_ID, name), (KEY_ID, "key_x"))


async def create(stub, name: str, who: str = "ten_a"):
    return (await stub.CreateApi(
        pb.CreateApiRequest(name=name, kind=pb.API_KIND_MODEL, model_aliases=["demo"]),
        metadata=tenant(who),
    )).api


async def test_create_get_list_paginated(registry):
    created = [await create(registry, f"api-{i}") for i in range(5)]
    got = await registry.GetApi(pb.GetApiRequest(api_id=created[2].id), metadata=tenant("ten_a"))
    assert got.api.name == "api-2" and got.api.kind == pb.API_KIND_MODEL
    assert list(got.api.model_aliases) == ["demo"] and got.api.create_time.seconds > 0
    names, token = [], ""
    while True:
        page = await registry.ListApis(pb.ListApisRequest(page_size=2, page_token=token),
                                       metadata=tenant("ten_a"))
        names += [a.name for a in page.apis]
        token = page.next_page_token
        if not token:
            break
    assert names == [f"api-{i}" for i in range(5)]


async def test_tenants_never_see_each_other(registry):
    theirs = await create(registry, "secret-api", who="ten_b")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.GetApi(pb.GetApiRequest(api_id=theirs.id), metadata=tenant("ten_a"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await registry.GetApi(pb.GetApiRequest(api_id="api_nope"), metadata=tenant("ten_a"))
    assert missing.value.details().replace("api_nope", "X") == err.value.details().replace(
        theirs.id, "X"
    )
    listed = await registry.ListApis(pb.ListApisRequest(), metadata=tenant("ten_a"))
    assert list(listed.apis) == []
    await create(registry, "secret-api", who="ten_a")  # names are per tenant


@pytest.mark.parametrize(
    "request_",
    [
        pb.CreateApiRequest(name="Bad Name", kind=pb.API_KIND_MODEL),
        pb.CreateApiRequest(name="ok-name", kind=pb.API_KIND_UNSPECIFIED),
        pb.CreateApiRequest(name="ok-name", kind=pb.API_KIND_MODEL, description="x" * 2001),
        pb.CreateApiRequest(name="ok-name", kind=pb.API_KIND_MODEL, model_aliases=[""]),
    ],
)
async def test_invalid_input_is_invalid_argument(registry, request_):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.CreateApi(request_, metadata=tenant("ten_a"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_duplicates_and_missing_identity(registry):
    await create(registry, "dup")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await create(registry, "dup")
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.ListApis(pb.ListApisRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
