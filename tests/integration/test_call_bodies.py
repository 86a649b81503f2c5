"""Opt-in body logging end to end inside the services: a real router (with the
registry's governance view fed a snapshot), a real ledger and simulator. The
router redacts and bounds the bodies of opted-in APIs only; the ledger keeps
them in call_bodies and ListCalls shows them with the call."""

from __future__ import annotations

import asyncio

import grpc
from envoy.service.accesslog.v3 import als_pb2_grpc

from lockgate.governance_view import GovernanceView
from lockgate.identity import API_ID, API_VERSION, KEY_ID, ROLES, TEAM_ID, TENANT_ID
from lockgate.ledger.v1 import ledger_service_pb2 as ledger_pb
from lockgate.registry.v1 import registry_service_pb2 as reg_pb
from lockgate.router.v1 import router_service_pb2 as pb
from lockgate.sim.config import SimConfig
from tests.integration.router_harness import running_router, simulators
from tests.integration.test_call_log import access_entry, stream_entries

GATEWAY = """
providers:
  sim: {{type: openai, base_url: "http://127.0.0.1:{sim}/v1"}}
deployments:
  sim: {{provider: sim, model: sim-small}}
models:
  logged: {{deployments: [sim]}}
  quiet: {{deployments: [sim]}}
call_log:
  max_body_bytes: 2048
  redact:
    - {{name: email, pattern: '[a-z]+@[a-z]+\\.[a-z]+'}}
"""
SECRET = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"


def caller(api_id: str, key: str = "key_c"):
    return ((TENANT_ID, "ten_c"), (KEY_ID, key), (ROLES, "developer"), (TEAM_ID, "team_c"),
            (API_ID, api_id), (API_VERSION, "v1"))


def governance(logged: bool) -> GovernanceView:
    """The router's view of the registry, as its watch stream would fill it."""
    view = GovernanceView("unused:0", "router-test")
    view.apply(reg_pb.WatchGovernanceResponse(revision=1, snapshot=reg_pb.GovernanceSnapshot(
        aliases=[
            reg_pb.AliasBinding(alias="logged", api_id="api_logged", version="v1",
                                state="published", log_bodies=logged),
            reg_pb.AliasBinding(alias="quiet", api_id="api_quiet", version="v1",
                                state="published"),
        ])))
    return view


async def call_of(ledger, als, request_id: str) -> ledger_pb.CallRecord:
    await stream_entries(als, [access_entry(request_id, "ten_c", "key_c")])
    for _ in range(200):
        reply = await ledger.ListCalls(ledger_pb.ListCallsRequest(request_id=request_id),
                                       metadata=caller("api_logged"))
        if reply.calls and reply.calls[0].HasField("usage"):
            return reply.calls[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no call record with usage for {request_id}")


async def test_only_opted_in_apis_keep_redacted_bounded_bodies(tmp_path):
    async with (
        simulators({"sim": SimConfig()}) as ports,
        running_router(tmp_path, GATEWAY.format(**ports)) as rut,
    ):
        rut.app.router.body_log.governance = governance(logged=True)
        channel = grpc.aio.insecure_channel(rut.app.settings.ledger_address)
        als = als_pb2_grpc.AccessLogServiceStub(channel)
        try:
            text = f"write to ada@example.com with key {SECRET} " + "pad " * 2000

            def ask(model: str) -> pb.CreateChatCompletionRequest:
                return pb.CreateChatCompletionRequest(
                    model=model, messages=[pb.ChatMessage(role="user", content=text)])

            await rut.router.CreateChatCompletion(
                ask("logged"), metadata=(*caller("api_logged"), ("x-request-id", "body-1")))
            chunks = [c async for c in rut.router.StreamChatCompletion(
                pb.StreamChatCompletionRequest(model="logged", messages=[
                    pb.ChatMessage(role="user", content="stream me")]),
                metadata=(*caller("api_logged"), ("x-request-id", "body-2")))]
            assert chunks
            await rut.router.CreateChatCompletion(
                ask("quiet"), metadata=(*caller("api_quiet"), ("x-request-id", "quiet-1")))
            # A caller governed under another API than the alias's binding: not opted in.
            await rut.router.CreateChatCompletion(
                ask("logged"), metadata=(*caller("api_other"), ("x-request-id", "other-1")))

            logged = await call_of(rut.ledger, als, "body-1")
            assert "[REDACTED:email]" in logged.request_body
            assert "[REDACTED:openai_key]" in logged.request_body
            assert SECRET not in logged.request_body and "ada@example.com" not in logged.request_body
            assert len(logged.request_body.encode()) <= 2048  # cut to max_body_bytes
            assert logged.request_body.startswith('{"model":"logged"')
            assert '"choices"' in logged.response_body

            streamed = await call_of(rut.ledger, als, "body-2")
            assert '"stream me"' in streamed.request_body
            assert streamed.response_body and not streamed.response_body.startswith("{")

            for quiet in ("quiet-1", "other-1"):
                record = await call_of(rut.ledger, als, quiet)
                assert (record.request_body, record.response_body) == ("", "")
        finally:
            await channel.close()


async def test_without_a_registry_nothing_is_kept(tmp_path):
    async with (
        simulators({"sim": SimConfig()}) as ports,
        running_router(tmp_path, GATEWAY.format(**ports)) as rut,
    ):
        assert rut.app.router.body_log.governance is None
        channel = grpc.aio.insecure_channel(rut.app.settings.ledger_address)
        try:
            await rut.router.CreateChatCompletion(
                pb.CreateChatCompletionRequest(model="logged", messages=[
                    pb.ChatMessage(role="user", content="hello")]),
                metadata=(*caller("api_logged"), ("x-request-id", "noreg-1")))
            record = await call_of(rut.ledger, als_pb2_grpc.AccessLogServiceStub(channel),
                                   "noreg-1")
            assert (record.request_body, record.response_body) == ("", "")
        finally:
            await channel.close()
