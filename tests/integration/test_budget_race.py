"""The budget race: many concurrent calls through two router processes against
one small hard budget never spend more than it (docs/ledger.md, Guarantees).

Real processes: two `python -m services.router` sharing one ledger (in this
process, on SQLite and PostgreSQL) and one simulator with 50 ms of latency,
so that dozens of calls are in flight at once on both routers.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import grpc
import orjson
from google.api import httpbody_pb2

from lockgate.identity import KEY_ID, PRINCIPAL, ROLES, TEAM_ID, TENANT_ID
from lockgate.ledger.v1 import ledger_service_pb2 as ledger_pb
from lockgate.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc
from lockgate.router.v1 import router_service_pb2 as pb
from lockgate.router.v1 import router_service_pb2_grpc as pb_grpc
from lockgate.sim.config import SimConfig
from services.ledger.app import LedgerSettings
from services.ledger.app import build as build_ledger
from tests.conftest import free_port
from tests.integration.router_harness import simulators
from tests.integration.service_process import ServiceProcess

GATEWAY = """
providers:
  sim:
    type: openai
    base_url: http://127.0.0.1:{sim_port}/v1
deployments:
  sim-small:
    provider: sim
    model: sim-small
    price: {{input: 1000, output: 2000}}
models:
  demo:
    deployments: [sim-small]
"""
CALLER = ((TENANT_ID, "ten_race"), (KEY_ID, "key_race"), (TEAM_ID, "team_race"),
          (ROLES, "developer"), (PRINCIPAL, "service_account:sa_race"))
ADMIN = ((TENANT_ID, "ten_race"), (KEY_ID, "key_admin"), (ROLES, "tenant_admin"))
CALLS = 120
BUDGET_MICRO_USD = 2_000_000  # $2; one call reserves and costs about $0.09


@asynccontextmanager
async def router_process(tmp_path: Path, name: str, gateway: Path, ledger_port: int):
    router = ServiceProcess(
        "router", free_port(), tmp_path / f"{name}.log", data_dir=str(tmp_path / name),
        gateway_config=str(gateway), ledger_address=f"127.0.0.1:{ledger_port}",
        decision_log="false",
    )
    await router.start()
    try:
        async with grpc.aio.insecure_channel(router.address) as channel:
            yield pb_grpc.RouterServiceStub(channel)
    finally:
        await router.stop()


async def chat(router: pb_grpc.RouterServiceStub, i: int) -> tuple[int, dict]:
    body = orjson.dumps({"model": "demo", "max_tokens": 40,
                         "messages": [{"role": "user", "content": f"race {i}"}]})
    call = router.OpenAIChatCompletions(
        pb.OpenAIChatCompletionsRequest(http_body=httpbody_pb2.HttpBody(
            content_type="application/json", data=body)),
        metadata=(*CALLER, ("x-request-id", f"race-{i}")),
    )
    data = b""
    async for part in call:
        data += part.data
    status = dict(await call.initial_metadata()).get("x-lockgate-http-status", "200")
    return int(status), orjson.loads(data)


async def test_two_routers_never_overspend_a_hard_budget(database_url, tmp_path):
    async with AsyncExitStack() as stack:
        settings = LedgerSettings(database_url=database_url, data_dir=tmp_path / "ledger",
                                  grpc_port=0)
        server, _service, engine = await build_ledger(settings)
        ledger_port = await server.start()
        stack.push_async_callback(engine.dispose)
        stack.push_async_callback(server.stop, 0)
        ledger = ledger_grpc.LedgerServiceStub(
            await stack.enter_async_context(grpc.aio.insecure_channel(f"127.0.0.1:{ledger_port}")))
        ports = await stack.enter_async_context(
            simulators({"sim": SimConfig(latency_ms=50, reply_words=200)}))
        gateway = tmp_path / "gateway.yaml"
        gateway.write_text(GATEWAY.format(sim_port=ports["sim"]))
        budget = (await ledger.SetBudget(ledger_pb.SetBudgetRequest(
            scope="key", scope_id="key_race", amount_micro_usd=BUDGET_MICRO_USD, period="day",
            hard=True), metadata=ADMIN)).budget
        routers = [
            await stack.enter_async_context(router_process(tmp_path, name, gateway, ledger_port))
            for name in ("router-a", "router-b")
        ]

        results = await asyncio.gather(*(chat(routers[i % 2], i) for i in range(CALLS)))

        statuses = [status for status, _ in results]
        refused = [body for status, body in results if status == 429]
        assert set(statuses) <= {200, 429}, statuses
        assert refused, "the budget should have run out"
        assert all(b["error"]["code"] == "budget_exceeded" for b in refused)
        assert budget.budget_id in refused[0]["error"]["message"]
        ok = statuses.count(200)
        assert ok >= 10  # the budget was used, not refused wholesale
        # every call reaches the ledger (the routers' spools), then the spend is final
        deadline = time.monotonic() + 20
        while True:
            listed = (await ledger.ListBudgets(ledger_pb.ListBudgetsRequest(),
                                               metadata=ADMIN)).budgets[0]
            entries = await ledger.QueryUsage(ledger_pb.QueryUsageRequest(), metadata=ADMIN)
            recorded = entries.rows[0].requests if entries.rows else 0
            if recorded == CALLS and listed.reserved_micro_usd == 0:
                break
            assert time.monotonic() < deadline, (recorded, listed)
            await asyncio.sleep(0.2)
        cost = entries.rows[0].cost_micro_usd
        # the documented bound: no overspend when every call sets max_tokens
        assert listed.spent_micro_usd == cost
        print(f"budget race: {ok} of {CALLS} admitted, spent {cost} of {BUDGET_MICRO_USD} micro-USD")
        assert 0 < cost <= BUDGET_MICRO_USD
