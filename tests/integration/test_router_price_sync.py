"""The router prices calls with the ledger's price book: a price a platform admin
sets in the ledger is what the next calls are metered at (real router, ledger
and simulator), the last book survives a ledger outage, and a version dated
for later takes effect on its date."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import grpc

from lockgate.identity import KEY_ID, PRINCIPAL, ROLES, TENANT_ID
from lockgate.ledger.v1 import ledger_service_pb2 as ledger_pb
from lockgate.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc
from lockgate.prices import Price
from lockgate.router.v1 import router_service_pb2 as pb
from lockgate.sim.config import SimConfig
from services.router.price_sync import PriceSync
from tests.conftest import free_port
from tests.integration.router_harness import running_router, simulators, start_ledger

GATEWAY = """
providers:
  sim: {{type: openai, base_url: "http://127.0.0.1:{sim}/v1"}}
deployments:
  listed: {{provider: sim, model: sim-small}}
  own-price: {{provider: sim, model: sim-small, price: {{input: 7, output: 9}}}}
models:
  demo: {{deployments: [listed]}}
  fixed: {{deployments: [own-price]}}
"""
TENANT = ((TENANT_ID, "ten_p"), (KEY_ID, "key_p"))
ADMIN = ((TENANT_ID, "ten_root"), (KEY_ID, "key_root"), (ROLES, "platform_admin"),
         (PRINCIPAL, "user:usr_root"))


def today() -> date:
    return datetime.now(UTC).date()


async def chat(rut, alias: str, request_id: str) -> ledger_pb.UsageEntry:
    """One call, then its usage entry once the ledger has it."""
    await rut.router.CreateChatCompletion(
        pb.CreateChatCompletionRequest(
            model=alias, messages=[pb.ChatMessage(role="user", content="price me, please")]
        ),
        metadata=(*TENANT, ("x-request-id", request_id)),
    )
    for _ in range(200):
        page = await rut.ledger.ListUsage(ledger_pb.ListUsageRequest(page_size=100),
                                          metadata=TENANT)
        for entry in page.entries:
            if entry.request_id == request_id:
                return entry
        await asyncio.sleep(0.05)
    raise AssertionError(f"no usage entry for {request_id}")


def cost_at(price: Price, entry: ledger_pb.UsageEntry) -> int:
    usage = entry.usage
    return price.cost_micro_usd(usage.input_tokens, usage.output_tokens,
                                usage.cached_input_tokens)


async def test_a_price_set_in_the_ledger_is_what_the_router_meters(tmp_path):
    async with (
        simulators({"sim": SimConfig()}) as ports,
        running_router(tmp_path, GATEWAY.format(**ports), price_refresh_seconds=0.1) as rut,
    ):
        before = await chat(rut, "demo", "before-1")
        assert (before.price_source, before.cost_micro_usd) == ("", 0)  # not in the shipped book

        await rut.ledger.SetPrice(ledger_pb.SetPriceRequest(
            provider="openai", model="sim-small", input_usd_per_mtok="1000",
            output_usd_per_mtok="2000.5", cached_input_usd_per_mtok="100",
        ), metadata=ADMIN)
        for _ in range(100):
            if rut.app.tables.current.deployments["listed"].price_source:
                break
            await asyncio.sleep(0.05)

        after = await chat(rut, "demo", "after-1")
        admin_price = Price(Decimal("1000"), Decimal("2000.5"), Decimal("100"))
        assert after.price_source == "price_book"
        assert after.usage.input_tokens > 0 and after.usage.output_tokens > 0
        assert after.cost_micro_usd == cost_at(admin_price, after) > 0
        # A deployment's own price still wins over the book.
        own = await chat(rut, "fixed", "own-1")
        assert own.price_source == "config"
        assert own.cost_micro_usd == cost_at(Price(Decimal(7), Decimal(9), Decimal(7)), own)
        # Past usage keeps its price.
        again = await rut.ledger.ListUsage(ledger_pb.ListUsageRequest(page_size=100),
                                           metadata=TENANT)
        kept = next(e for e in again.entries if e.request_id == "before-1")
        assert (kept.price_source, kept.cost_micro_usd) == ("", 0)


async def test_the_last_book_survives_a_ledger_outage_and_future_prices_start_on_their_date(
    tmp_path, caplog
):
    port = free_port()
    server, engine, _ = await start_ledger(tmp_path, port)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    ledger = ledger_grpc.LedgerServiceStub(channel)
    clock = {"today": today()}
    handed: list = []
    sync = PriceSync(ledger, handed.append, interval=0, today=lambda: clock["today"])
    try:
        tomorrow = clock["today"] + timedelta(days=1)
        await ledger.SetPrice(ledger_pb.SetPriceRequest(
            provider="anthropic", model="claude-next", input_usd_per_mtok="4",
            output_usd_per_mtok="20",
        ), metadata=ADMIN)
        await ledger.SetPrice(ledger_pb.SetPriceRequest(
            provider="anthropic", model="claude-next", effective_date=tomorrow.isoformat(),
            input_usd_per_mtok="3", output_usd_per_mtok="15",
        ), metadata=ADMIN)
        assert await sync.refresh() is True
        assert handed == [sync.book]
        assert sync.book.at("anthropic", "claude-next", clock["today"]).input == 4
        assert sync.book.at("anthropic", "claude-next", tomorrow).input == 3
        assert sync.book.at("openai", "gpt-4o") is not None  # the shipped prices stay
        assert await sync.refresh() is False and len(handed) == 1  # nothing new

        # Midnight (UTC): tomorrow's version takes effect, the table must be rebuilt.
        clock["today"] = tomorrow
        assert await sync.refresh() is True and len(handed) == 2
        clock["today"] = tomorrow + timedelta(days=1)
        assert await sync.refresh() is False  # another day, nothing takes effect

        await server.stop(0)
        book = sync.book
        with caplog.at_level(logging.WARNING, logger="lockgate.router.prices"):
            for _ in range(3):
                assert await sync.refresh() is False
        assert sync.book is book  # the last book stays in use
        warnings = [r for r in caplog.records if "cannot read the price book" in r.message]
        assert len(warnings) == 1  # once per outage, not once per attempt
    finally:
        await channel.close()
        await server.stop(0)
        await engine.dispose()
