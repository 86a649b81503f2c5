"""The price book admin API (ListPrices, SetPrice, DeletePrice) over gRPC, on
SQLite and PostgreSQL, and its table's migration."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from lockgate.identity import KEY_ID, PRINCIPAL, ROLES, TENANT_ID
from lockgate.ledger.v1 import ledger_service_pb2 as pb
from lockgate.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from lockgate.prices import shipped_price_book
from services.ledger.app import LedgerSettings, build

ADMIN = ((TENANT_ID, "ten_root"), (KEY_ID, "key_admin"), (ROLES, "platform_admin"),
         (PRINCIPAL, "user:usr_admin"))
TENANT_ADMIN = ((TENANT_ID, "ten_a"), (KEY_ID, "key_ta"), (ROLES, "tenant_admin,developer"))


@pytest.fixture
async def ledger(database_url, tmp_path):
    settings = LedgerSettings(database_url=database_url, data_dir=tmp_path, grpc_port=0)
    server, _service, engine = await build(settings)
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield pb_grpc.LedgerServiceStub(channel)
    await channel.close()
    await server.stop(0)
    await engine.dispose()


def today():
    return datetime.now(UTC).date()


def day(offset: int) -> str:
    return (today() + timedelta(days=offset)).isoformat()


def set_request(model: str = "gpt-4o", **fields) -> pb.SetPriceRequest:
    values = {"provider": "openai", "model": model, "input_usd_per_mtok": "2.00",
              "output_usd_per_mtok": "8.000"}
    values.update(fields)
    return pb.SetPriceRequest(**values)


async def expect_error(call, code: grpc.StatusCode, text: str = "") -> str:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == code, err.value.details()
    assert text in err.value.details()
    return err.value.details()


async def test_list_has_the_shipped_book_newest_first_and_filters(ledger):
    everything = (await ledger.ListPrices(pb.ListPricesRequest())).prices
    shipped = list(shipped_price_book().versions())
    assert len(everything) == len(shipped)
    assert {p.source for p in everything} == {"shipped"}
    assert all(p.price_id == "" and not p.HasField("create_time") for p in everything)
    keys = [(p.provider, p.model) for p in everything]
    assert keys == sorted(keys)
    o3 = (await ledger.ListPrices(pb.ListPricesRequest(provider="openai", model="o3"))).prices
    assert [p.effective_date for p in o3] == sorted((p.effective_date for p in o3), reverse=True)
    assert (o3[0].input_usd_per_mtok, o3[0].output_usd_per_mtok,
            o3[0].cached_input_usd_per_mtok) == ("2", "8", "0.5")
    mistral = (await ledger.ListPrices(pb.ListPricesRequest(provider="mistral"))).prices
    assert mistral and {p.provider for p in mistral} == {"mistral"}
    # No cached-input price in the file: the input price.
    large = next(p for p in mistral if p.model == "mistral-large-latest")
    assert large.cached_input_usd_per_mtok == large.input_usd_per_mtok
    await expect_error(ledger.ListPrices(pb.ListPricesRequest(provider="acme")),
                       grpc.StatusCode.INVALID_ARGUMENT, "unknown provider type")


async def test_set_adds_an_admin_version_listed_before_older_ones(ledger):
    before = datetime.now(UTC).date().isoformat()
    reply = await ledger.SetPrice(set_request(), metadata=ADMIN)
    price = reply.price
    assert price.price_id.startswith("pr_")
    assert price.effective_date in (before, today().isoformat())  # default: today (UTC)
    assert (price.input_usd_per_mtok, price.output_usd_per_mtok,
            price.cached_input_usd_per_mtok) == ("2", "8", "2")  # cached: the input price
    assert (price.source, price.created_by) == ("admin", "user:usr_admin")
    assert price.create_time.seconds > 0
    later = await ledger.SetPrice(
        set_request(effective_date=day(30), input_usd_per_mtok="1.250001",
                    output_usd_per_mtok="0", cached_input_usd_per_mtok="0.000001"),
        metadata=ADMIN,
    )
    listed = (await ledger.ListPrices(pb.ListPricesRequest(model="gpt-4o"))).prices
    assert [(p.source, p.effective_date) for p in listed][:2] == [
        ("admin", day(30)), ("admin", price.effective_date)
    ]
    assert listed[0] == later.price
    assert (listed[0].input_usd_per_mtok, listed[0].output_usd_per_mtok,
            listed[0].cached_input_usd_per_mtok) == ("1.250001", "0", "0.000001")
    assert [p.source for p in listed[2:]] == ["shipped"] * len(listed[2:])


async def test_setting_the_same_model_and_date_replaces_the_admin_version(ledger):
    first = (await ledger.SetPrice(set_request(effective_date=day(3)), metadata=ADMIN)).price
    second = (await ledger.SetPrice(
        set_request(effective_date=day(3), input_usd_per_mtok="3", output_usd_per_mtok="9"),
        metadata=ADMIN,
    )).price
    assert second.price_id == first.price_id
    admin = [p for p in (await ledger.ListPrices(pb.ListPricesRequest(model="gpt-4o"))).prices
             if p.source == "admin"]
    assert [(p.price_id, p.input_usd_per_mtok, p.output_usd_per_mtok) for p in admin] == [
        (first.price_id, "3", "9")
    ]


async def test_concurrent_sets_of_one_slot_leave_one_version(ledger):
    replies = await asyncio.gather(*(
        ledger.SetPrice(set_request(model="racy", effective_date=day(2),
                                    input_usd_per_mtok=str(i)), metadata=ADMIN)
        for i in range(1, 9)
    ))
    listed = (await ledger.ListPrices(pb.ListPricesRequest(model="racy"))).prices
    assert len(listed) == 1
    assert listed[0].price_id in {r.price.price_id for r in replies}


@pytest.mark.parametrize("fields, param", [
    ({"provider": ""}, "provider is required"),
    ({"provider": "bedrock"}, "unknown provider type 'bedrock'"),
    ({"model": ""}, "model is required"),
    ({"model": "gpt 4o"}, "model must not contain spaces"),
    ({"model": "m" * 257}, "longer than 256"),
    ({"effective_date": "2026-13-01"}, "is not a date"),
    ({"effective_date": "20300101"}, "is not a date"),
    ({"input_usd_per_mtok": ""}, "input_usd_per_mtok is required"),
    ({"output_usd_per_mtok": ""}, "output_usd_per_mtok is required"),
    ({"input_usd_per_mtok": "-1"}, "is negative"),
    ({"input_usd_per_mtok": "NaN"}, "not a decimal number"),
    ({"input_usd_per_mtok": "Infinity"}, "not a decimal number"),
    ({"output_usd_per_mtok": "1e3"}, "not a decimal number"),
    ({"output_usd_per_mtok": "10000.5"}, "above the bound"),
    ({"cached_input_usd_per_mtok": "0.0000001"}, "more than 6 decimal places"),
])
async def test_bad_prices_are_invalid_argument(ledger, fields, param):
    await expect_error(ledger.SetPrice(set_request(**fields), metadata=ADMIN),
                       grpc.StatusCode.INVALID_ARGUMENT, param)


async def test_the_past_is_never_rewritten(ledger):
    details = await expect_error(
        ledger.SetPrice(set_request(effective_date=day(-1)), metadata=ADMIN),
        grpc.StatusCode.INVALID_ARGUMENT, "is in the past",
    )
    assert "past usage keeps its price" in details
    in_force = (await ledger.SetPrice(set_request(), metadata=ADMIN)).price
    await expect_error(
        ledger.DeletePrice(pb.DeletePriceRequest(price_id=in_force.price_id), metadata=ADMIN),
        grpc.StatusCode.FAILED_PRECONDITION, "is in force since",
    )
    future = (await ledger.SetPrice(set_request(effective_date=day(7)), metadata=ADMIN)).price
    await ledger.DeletePrice(pb.DeletePriceRequest(price_id=future.price_id), metadata=ADMIN)
    left = [p.price_id for p in (await ledger.ListPrices(pb.ListPricesRequest())).prices
            if p.source == "admin"]
    assert left == [in_force.price_id]
    await expect_error(
        ledger.DeletePrice(pb.DeletePriceRequest(price_id=future.price_id), metadata=ADMIN),
        grpc.StatusCode.NOT_FOUND,
    )
    await expect_error(ledger.DeletePrice(pb.DeletePriceRequest(), metadata=ADMIN),
                       grpc.StatusCode.INVALID_ARGUMENT, "price_id is required")


async def test_only_platform_admins_change_prices(ledger):
    await expect_error(ledger.SetPrice(set_request(), metadata=TENANT_ADMIN),
                       grpc.StatusCode.PERMISSION_DENIED, "platform_admin")
    await expect_error(ledger.SetPrice(set_request()), grpc.StatusCode.UNAUTHENTICATED)
    future = (await ledger.SetPrice(set_request(effective_date=day(5)), metadata=ADMIN)).price
    await expect_error(
        ledger.DeletePrice(pb.DeletePriceRequest(price_id=future.price_id),
                           metadata=TENANT_ADMIN),
        grpc.StatusCode.PERMISSION_DENIED, "platform_admin",
    )
    # Reading needs no role (nor an identity: the router reads it directly).
    assert (await ledger.ListPrices(pb.ListPricesRequest(model="gpt-4o"),
                                    metadata=TENANT_ADMIN)).prices[0] == future
