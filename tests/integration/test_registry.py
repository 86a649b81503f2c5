"""Registry over gRPC (in-process server on port 0) on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

from lockgate.db import _alembic_config, make_engine
from lockgate.identity import KEY_ID, PRINCIPAL, ROLES, TEAM_ID, TENANT_ID
from lockgate.registry.v1 import registry_service_pb2 as pb
from lockgate.registry.v1 import registry_service_pb2_grpc as pb_grpc
from services.registry.app import MIGRATIONS, RegistrySettings, build

VERSION_TABLE = "alembic_version_registry"
REGISTRY_TABLES = ("apis", "api_versions", "subscriptions", "registry_audit_events",
                   "registry_audit_head", "registry_changes")


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


def team_id(tenant_name: str) -> str:
    """A well-formed team id (team_ + 24 hex digits) for a tenant's team."""
    return "team_" + tenant_name.encode().hex().ljust(24, "0")[:24]


def tenant(name: str):
    """A team admin of team_<tenant> in tenant <name>, as auth's Check would forward it."""
    return ((TENANT_ID, name), (KEY_ID, "key_x"), (TEAM_ID, team_id(name)),
            (ROLES, "team_admin"), (PRINCIPAL, f"user:usr_{name}"))


async def create(stub, name: str, who: str = "ten_a"):
    return (
        await stub.CreateApi(
            pb.CreateApiRequest(name=name, kind=pb.API_KIND_MODEL, model_aliases=["demo"]),
            metadata=tenant(who),
        )
    ).api


async def rpc_error(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value


async def test_create_get_list_paginated(registry):
    created = [await create(registry, f"api-{i}") for i in range(5)]
    assert all(a.id.startswith("api_") and a.tenant_id == "ten_a" for a in created)
    assert len({a.id for a in created}) == 5
    got = await registry.GetApi(pb.GetApiRequest(api_id=created[2].id), metadata=tenant("ten_a"))
    assert got.api == created[2]
    assert got.api.name == "api-2" and got.api.kind == pb.API_KIND_MODEL
    # The aliases went to a draft v1; the API lists its live versions' aliases only.
    assert list(got.api.model_aliases) == [] and got.api.create_time.seconds > 0
    versions = await registry.ListVersions(pb.ListVersionsRequest(api_id=created[2].id),
                                           metadata=tenant("ten_a"))
    assert [(v.version, v.state, list(v.model_aliases)) for v in versions.versions] == [
        ("v1", "draft", ["demo"])]
    names, token, pages = [], "", 0
    while True:
        page = await registry.ListApis(
            pb.ListApisRequest(page_size=2, page_token=token), metadata=tenant("ten_a")
        )
        names += [a.name for a in page.apis]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert names == [f"api-{i}" for i in range(5)]
    assert pages == 3
    everything = await registry.ListApis(pb.ListApisRequest(), metadata=tenant("ten_a"))
    assert list(everything.apis) == created and everything.next_page_token == ""


async def test_prompt_api_round_trips(registry):
    made = (
        await registry.CreateApi(
            pb.CreateApiRequest(
                name="summarize",
                kind=pb.API_KIND_PROMPT,
                description="Summaries — ünïcode",
            ),
            metadata=tenant("ten_a"),
        )
    ).api
    got = (await registry.GetApi(pb.GetApiRequest(api_id=made.id), metadata=tenant("ten_a"))).api
    assert got.kind == pb.API_KIND_PROMPT
    assert got.description == "Summaries — ünïcode"
    model = (await registry.CreateApi(
        pb.CreateApiRequest(name="chat", kind=pb.API_KIND_MODEL, model_aliases=["a", "b", "a"]),
        metadata=tenant("ten_a"))).api
    draft = (await registry.GetVersion(pb.GetVersionRequest(api_id=model.id, version="v1"),
                                       metadata=tenant("ten_a"))).version
    assert list(draft.model_aliases) == ["a", "b"]  # repeats dropped, order kept
    refused = await rpc_error(registry.CreateApi(
        pb.CreateApiRequest(name="odd", kind=pb.API_KIND_PROMPT, model_aliases=["a"]),
        metadata=tenant("ten_a")))
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_tenants_never_see_each_other(registry):
    theirs = await create(registry, "secret-api", who="ten_b")
    other = await rpc_error(
        registry.GetApi(pb.GetApiRequest(api_id=theirs.id), metadata=tenant("ten_a"))
    )
    missing = await rpc_error(
        registry.GetApi(pb.GetApiRequest(api_id="api_nope"), metadata=tenant("ten_a"))
    )
    assert other.code() == missing.code() == grpc.StatusCode.NOT_FOUND
    # Byte-identical answers: nothing tells an existing foreign id from a made-up one.
    assert other.details() == missing.details()
    assert theirs.id not in other.details()
    listed = await registry.ListApis(pb.ListApisRequest(), metadata=tenant("ten_a"))
    assert list(listed.apis) == []
    # A page token minted for tenant B's listing shows tenant A nothing of B's.
    for i in range(2):
        await create(registry, f"b-{i}", who="ten_b")
    b_page = await registry.ListApis(pb.ListApisRequest(page_size=1), metadata=tenant("ten_b"))
    assert b_page.next_page_token
    via_token = await registry.ListApis(
        pb.ListApisRequest(page_token=b_page.next_page_token), metadata=tenant("ten_a")
    )
    assert list(via_token.apis) == []
    mine = await create(registry, "secret-api", who="ten_a")  # names are per tenant
    assert mine.id != theirs.id
    still = await registry.GetApi(pb.GetApiRequest(api_id=theirs.id), metadata=tenant("ten_b"))
    assert still.api.tenant_id == "ten_b"


@pytest.mark.parametrize(
    ("request_", "param"),
    [
        (pb.CreateApiRequest(name="Bad Name", kind=pb.API_KIND_MODEL), "name"),
        (pb.CreateApiRequest(name="", kind=pb.API_KIND_MODEL), "name"),
        (pb.CreateApiRequest(name="a", kind=pb.API_KIND_MODEL), "name"),
        (pb.CreateApiRequest(name="9lives", kind=pb.API_KIND_MODEL), "name"),
        (pb.CreateApiRequest(name="ok-name\n", kind=pb.API_KIND_MODEL), "name"),
        (pb.CreateApiRequest(name="a" * 64, kind=pb.API_KIND_MODEL), "name"),
        (pb.CreateApiRequest(name="ok-name", kind=pb.API_KIND_UNSPECIFIED), "kind"),
        (pb.CreateApiRequest(name="ok-name", kind=42), "kind"),
        (
            pb.CreateApiRequest(name="ok-name", kind=pb.API_KIND_MODEL, description="x" * 2001),
            "description",
        ),
        (
            pb.CreateApiRequest(name="ok-name", kind=pb.API_KIND_MODEL, model_aliases=[""]),
            "model_aliases",
        ),
        (
            pb.CreateApiRequest(
                name="ok-name", kind=pb.API_KIND_MODEL, model_aliases=[f"m{i}" for i in range(101)]
            ),
            "model_aliases",
        ),
    ],
)
async def test_invalid_input_is_invalid_argument(registry, request_, param):
    err = await rpc_error(registry.CreateApi(request_, metadata=tenant("ten_a")))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert param.split("_")[0] in err.details()  # the message names the field


async def test_limits_are_inclusive(registry):
    made = (
        await registry.CreateApi(
            pb.CreateApiRequest(
                name="a" + "b" * 62,
                kind=pb.API_KIND_MODEL,
                description="x" * 2000,
                model_aliases=[f"m{i}" for i in range(100)],
            ),
            metadata=tenant("ten_a"),
        )
    ).api
    assert len(made.name) == 63
    draft = (await registry.GetVersion(pb.GetVersionRequest(api_id=made.id, version="v1"),
                                       metadata=tenant("ten_a"))).version
    assert len(draft.model_aliases) == 100


async def test_bad_paging_and_get_are_invalid_argument(registry):
    for call in (
        registry.ListApis(pb.ListApisRequest(page_token="%%%"), metadata=tenant("ten_a")),
        registry.ListApis(pb.ListApisRequest(page_size=-1), metadata=tenant("ten_a")),
        registry.GetApi(pb.GetApiRequest(api_id=""), metadata=tenant("ten_a")),
    ):
        assert (await rpc_error(call)).code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_duplicates_and_missing_identity(registry):
    first = await create(registry, "dup")
    err = await rpc_error(create(registry, "dup"))
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    listed = await registry.ListApis(pb.ListApisRequest(), metadata=tenant("ten_a"))
    assert list(listed.apis) == [first]  # the failed create left nothing behind
    await create(registry, "after-dup")  # and the service still takes writes
    for call in (
        registry.ListApis(pb.ListApisRequest()),
        registry.GetApi(pb.GetApiRequest(api_id=first.id)),
        registry.CreateApi(pb.CreateApiRequest(name="nobody", kind=pb.API_KIND_MODEL)),
        registry.ListApis(pb.ListApisRequest(), metadata=((KEY_ID, "key_x"),)),
    ):
        assert (await rpc_error(call)).code() == grpc.StatusCode.UNAUTHENTICATED


async def test_concurrent_duplicate_creates_yield_one_api(registry):
    results = await asyncio.gather(
        *(create(registry, "racy") for _ in range(5)), return_exceptions=True
    )
    made = [r for r in results if isinstance(r, pb.Api)]
    refused = [r for r in results if not isinstance(r, pb.Api)]
    assert len(made) == 1, results
    assert all(
        isinstance(r, grpc.aio.AioRpcError) and r.code() == grpc.StatusCode.ALREADY_EXISTS
        for r in refused
    ), refused


async def test_migrations_match_models_and_downgrade(database_url):
    cfg = _alembic_config(database_url, MIGRATIONS, VERSION_TABLE)
    await asyncio.to_thread(command.upgrade, cfg, "head")
    engine = make_engine(database_url)
    try:

        def diff(sync_conn):
            context = MigrationContext.configure(sync_conn, opts={"version_table": VERSION_TABLE})
            return [
                d
                for d in compare_metadata(context, SQLModel.metadata)
                if "alembic_version" not in str(d)
                and any(t in str(d) for t in REGISTRY_TABLES)
            ]

        async with engine.connect() as conn:
            assert await conn.run_sync(diff) == []
        await asyncio.to_thread(command.downgrade, cfg, "base")
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
        assert not set(REGISTRY_TABLES) & set(tables)
        await asyncio.to_thread(command.upgrade, cfg, "head")  # and back up again
    finally:
        await engine.dispose()
