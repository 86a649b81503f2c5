"""The router meters the caller's team, principal and governed API version, and
the ledger's GetLastCall sees the call (real router, ledger and simulator)."""

from __future__ import annotations

import asyncio

from lockgate.identity import API_ID, API_VERSION, KEY_ID, PRINCIPAL, TEAM_ID, TENANT_ID
from lockgate.ledger.v1 import ledger_service_pb2 as ledger_pb
from lockgate.router.v1 import router_service_pb2 as pb
from lockgate.sim.config import SimConfig
from tests.integration.router_harness import running_router, simulators

GATEWAY = """
providers:
  good: {{type: openai, base_url: "http://127.0.0.1:{good}/v1"}}
deployments:
  good: {{provider: good, model: sim-small}}
models:
  demo: {{deployments: [good]}}
"""
TENANT = ((TENANT_ID, "ten_m"), (KEY_ID, "key_m"))
GOVERNED = (
    *TENANT,
    (TEAM_ID, "team_m"),
    (PRINCIPAL, "service_account:sa_m"),
    (API_ID, "api_m"),
    (API_VERSION, "v2"),
)


async def entry_of(ledger, request_id: str) -> ledger_pb.UsageEntry:
    for _ in range(100):
        page = await ledger.ListUsage(ledger_pb.ListUsageRequest(page_size=100), metadata=TENANT)
        for entry in page.entries:
            if entry.request_id == request_id:
                return entry
        await asyncio.sleep(0.05)
    raise AssertionError(f"no usage entry for {request_id}")


async def test_router_meters_team_principal_and_api_version(tmp_path):
    async with (
        simulators({"good": SimConfig()}) as ports,
        running_router(tmp_path, GATEWAY.format(**ports)) as rut,
    ):
        request = pb.CreateChatCompletionRequest(
            model="demo", messages=[pb.ChatMessage(role="user", content="hi")]
        )
        await rut.router.CreateChatCompletion(
            request, metadata=(*GOVERNED, ("x-request-id", "gov-1"))
        )
        await rut.router.CreateChatCompletion(
            request, metadata=(*TENANT, ("x-request-id", "plain-1"))
        )
        governed = await entry_of(rut.ledger, "gov-1")
        assert (governed.team_id, governed.principal, governed.api_id, governed.api_version) == (
            "team_m", "service_account:sa_m", "api_m", "v2"
        )
        plain = await entry_of(rut.ledger, "plain-1")
        assert (plain.team_id, plain.principal, plain.api_id, plain.api_version) == (
            "", "", "", ""
        )
        last = await rut.ledger.GetLastCall(
            ledger_pb.GetLastCallRequest(api_id="api_m", api_version="v2")
        )
        assert last.last_call_time == governed.create_time
        never = await rut.ledger.GetLastCall(
            ledger_pb.GetLastCallRequest(api_id="api_m", api_version="v1")
        )
        assert not never.HasField("last_call_time")


def test_get_last_call_is_denied_at_the_edge():
    """Internal (registry -> ledger): the access policy refuses it even to an admin."""
    from lockgate.policy import PolicyEngine

    principal = {
        "key_id": "key_1", "tenant_id": "ten_1", "tenant_name": "default",
        "roles": ["admin", "developer"], "models": [], "status": "active",
    }
    decision = PolicyEngine().evaluate("lockgate/access/decision", {
        "principal": principal,
        "request": {"method": "/lockgate.ledger.v1.LedgerService/GetLastCall",
                    "http_method": "POST", "path": "", "model": ""},
        "credential": {"present": True},
    })
    assert (decision["allow"], decision["status"], decision["code"]) == (
        False, 403, "internal_method"
    )
