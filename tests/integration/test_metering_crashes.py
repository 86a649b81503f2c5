"""kill -9 during load: usage metering loses nothing and counts nothing twice.

Real processes: the ledger (`python -m services.ledger`) on SQLite and on
PostgreSQL (a fresh database per test), and the router (`python -m
services.router`) in front of the provider simulator. SIGKILL gives neither a
chance to clean up. Afterwards the usage table must hold every metered call
exactly once.
"""

from __future__ import annotations

import asyncio
import time

import grpc
from sqlalchemy import text

from lockgate.common.v1 import common_pb2
from lockgate.db import make_engine
from lockgate.identity import KEY_ID, TENANT_ID
from lockgate.ledger.v1 import ledger_service_pb2 as ledger_pb
from lockgate.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc
from lockgate.router.v1 import router_service_pb2 as pb
from lockgate.router.v1 import router_service_pb2_grpc as pb_grpc
from lockgate.sim.config import SimConfig
from services.router.metering import LEDGER_CHANNEL_OPTIONS, UsageRecorder
from tests.conftest import free_port
from tests.integration.router_harness import simulators
from tests.integration.service_process import ServiceProcess

FAST_RECONNECT = (
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 200),
)


class Deadline:
    def __init__(self, seconds: float, what: str):
        self.at = time.monotonic() + seconds
        self.what = what

    def check(self) -> None:
        assert time.monotonic() < self.at, f"timed out: {self.what}"


async def recorded(database_url: str) -> list[str]:
    """Every request id in the ledger's usage table, duplicates included."""
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT request_id FROM usage_entries"))
            return [r[0] for r in rows]
    finally:
        await engine.dispose()


def ledger_process(database_url: str, tmp_path) -> ServiceProcess:
    return ServiceProcess("ledger", free_port(), tmp_path / "ledger.log",
                          data_dir=str(tmp_path), database_url=database_url)


# -- the ledger killed while it writes batches ------------------------------------------------


class InFlight(grpc.aio.UnaryUnaryClientInterceptor):
    """Watches the recorder's RecordUsage calls: how many are in flight, since when,
    how long they take, and how many entries the ledger acknowledged."""

    def __init__(self):
        self.in_flight = 0
        self.sent_at = 0.0
        self.acknowledged = 0
        self.durations: list[float] = []

    async def intercept_unary_unary(self, continuation, details, request):
        self.in_flight += 1
        self.sent_at = time.monotonic()
        call = await continuation(details, request)
        try:
            await call
            self.acknowledged += len(request.entries)
            self.durations.append(time.monotonic() - self.sent_at)
        except grpc.aio.AioRpcError:
            pass  # the recorder sees the same error when it awaits the call
        finally:
            self.in_flight -= 1
        return call

    async def mid_write(self, at_least: int, deadline: Deadline, late: bool = False) -> None:
        """Until `at_least` entries were acknowledged and a batch is being written:
        in flight for 2 ms (before its commit), or with `late` for most of a
        typical call (its commit may be done and the answer not yet sent)."""
        while True:
            age = time.monotonic() - self.sent_at
            if late and self.durations:
                wanted = 0.9 * sorted(self.durations)[len(self.durations) // 2]
            else:
                wanted = 0.002
            if self.acknowledged >= at_least and self.in_flight and age > wanted:
                return
            deadline.check()
            await asyncio.sleep(0.0005)


def usage(i: int) -> ledger_pb.UsageEntry:
    return ledger_pb.UsageEntry(
        request_id=f"req-{i:06d}", tenant_id="ten_crash", key_id="key_crash", alias="demo",
        provider="openai", provider_model="sim-small", status="ok", latency_ms=3,
        usage=common_pb2.TokenUsage(input_tokens=10, output_tokens=20),
    )


async def test_ledger_killed_mid_write_then_restarted_loses_and_duplicates_nothing(
    database_url, tmp_path
):
    # Faster than one ledger writes (batches back to back), and long enough (3 s)
    # that the load is still going at the first kill on a slow, busy machine
    # (30,000 entries once finished before it in a full-suite run).
    total, per_second = 60_000, 20_000
    ledger = ledger_process(database_url, tmp_path)
    await ledger.start()
    recorder = UsageRecorder(ledger.address, tmp_path / "spool", flush_interval=0.01)
    # The same recorder, on a channel that lets the test see its calls.
    watch = InFlight()
    await recorder.channel.close()
    recorder.channel = grpc.aio.insecure_channel(
        ledger.address, options=LEDGER_CHANNEL_OPTIONS, interceptors=[watch]
    )
    recorder.stub = ledger_grpc.LedgerServiceStub(recorder.channel)
    await recorder.start()
    fed = 0

    async def feed() -> None:
        nonlocal fed
        start = time.monotonic()
        while fed < total:
            for _ in range(200):
                recorder.record(usage(fed))
                fed += 1
            await asyncio.sleep(max(0.0, start + fed / per_second - time.monotonic()))

    feeding = asyncio.create_task(feed())
    try:
        deadline = Deadline(40, "load, kills and recovery")
        await watch.mid_write(5_000, deadline)
        ledger.kill()
        assert fed < total, "the load had finished before the kill"
        committed_at_kill = len(await recorded(database_url))
        assert committed_at_kill >= watch.acknowledged >= 5_000
        await asyncio.sleep(0.3)  # calls go on while the ledger is down: they are spooled
        await ledger.start()

        # Again while it catches up on the backlog, later in a batch's write.
        await watch.mid_write(watch.acknowledged + 1_000, deadline, late=True)
        ledger.kill()
        await ledger.start()

        await feeding
        while recorder.spool.pending_bytes:  # every spooled entry acknowledged
            deadline.check()
            await asyncio.sleep(0.05)
    finally:
        feeding.cancel()
        await recorder.close()
        await ledger.stop()

    ids = await recorded(database_url)
    assert len(ids) == len(set(ids)) == total  # nothing twice, nothing lost
    assert set(ids) == {usage(i).request_id for i in range(total)}


# -- the router killed mid-load (and the ledger too) ------------------------------------------


GATEWAY = """
providers:
  sim: {{type: openai, base_url: "http://127.0.0.1:{sim}/v1"}}
deployments:
  sim: {{provider: sim, model: sim-small}}
models:
  demo: {{deployments: [sim]}}
"""
TENANT = ((TENANT_ID, "ten_crash"), (KEY_ID, "key_crash"))


class Load:
    """Workers calling the router with unique request ids: every id tried, and the
    ids of the calls the router answered (those must be metered)."""

    def __init__(self, address: str, workers: int = 12):
        self.channel = grpc.aio.insecure_channel(address, options=FAST_RECONNECT)
        self.stub = pb_grpc.RouterServiceStub(self.channel)
        self.tried: set[str] = set()
        self.answered: set[str] = set()
        self.failed = 0
        self._stop = False
        self._tasks = [asyncio.create_task(self._work(w)) for w in range(workers)]

    async def _work(self, worker: int) -> None:
        request = pb.CreateChatCompletionRequest(
            model="demo", messages=[pb.ChatMessage(role="user", content="meter me")]
        )
        i = 0
        while not self._stop:
            request_id = f"w{worker}-{i}"
            i += 1
            self.tried.add(request_id)
            try:
                await self.stub.CreateChatCompletion(
                    request, metadata=(*TENANT, ("x-request-id", request_id)), timeout=5
                )
            except grpc.aio.AioRpcError:
                self.failed += 1
                await asyncio.sleep(0.02)
            else:
                self.answered.add(request_id)

    async def until_answered(self, count: int, deadline: Deadline) -> None:
        target = len(self.answered) + count
        while len(self.answered) < target:
            deadline.check()
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        self._stop = True
        await asyncio.gather(*self._tasks)
        await self.channel.close()


async def test_router_killed_mid_load_replays_its_spool_after_restart(database_url, tmp_path):
    ledger = ledger_process(database_url, tmp_path)
    await ledger.start()
    config = tmp_path / "gateway.yaml"
    router_dir = tmp_path / "router"
    router_dir.mkdir()
    async with simulators({"sim": SimConfig()}) as ports:
        config.write_text(GATEWAY.format(**ports))
        router = ServiceProcess(
            "router", free_port(), tmp_path / "router.log", data_dir=str(router_dir),
            ledger_address=ledger.address, gateway_config=str(config), registry_address="",
            decision_log="false", config_reload_interval="0", policy_reload_interval="0",
            price_refresh_seconds="0",
        )
        await router.start()
        load = Load(router.address)
        try:
            deadline = Deadline(40, "load, kills and recovery")
            await load.until_answered(150, deadline)
            router.kill()  # mid-load, with calls in flight and entries not yet sent
            await router.start()  # same data directory: its spool is read again
            await load.until_answered(150, deadline)

            # The ledger down: every answered call now exists only in the router's spool...
            ledger.kill()
            down_since = set(load.answered)
            await load.until_answered(150, deadline)
            only_spooled = (load.answered - down_since) - set(await recorded(database_url))
            assert len(only_spooled) >= 150
            # ...when the router dies too. Both come back; the spool is replayed.
            router.kill()
            await ledger.start()
            await router.start()
            await load.until_answered(150, deadline)
            await load.stop()

            while not load.answered <= set(await recorded(database_url)):
                deadline.check()
                await asyncio.sleep(0.1)
        finally:
            if not load._stop:
                await load.stop()
            await router.stop()
            await ledger.stop()

    ids = await recorded(database_url)
    assert len(ids) == len(set(ids))  # nothing twice
    assert load.answered <= set(ids)  # every answered call metered, the spooled ones included
    assert set(ids) <= load.tried  # and nothing else (a call cut by the kill may be metered)
    assert only_spooled <= set(ids)
