"""The router asks the ledger before calling a provider: budget refusals are
429s that name the budget, a settled call frees its reservation, nothing is
asked again for callers without budgets, and the failure mode applies when
the ledger is away (real router, ledger and simulator)."""

from __future__ import annotations

import asyncio

import grpc
import orjson
import pytest
from google.api import httpbody_pb2

from lockgate.identity import KEY_ID, ROLES, SUBSCRIPTION_ID, TEAM_ID, TENANT_ID
from lockgate.ledger.v1 import ledger_service_pb2 as ledger_pb
from lockgate.router.v1 import router_service_pb2 as pb
from lockgate.sim.config import SimConfig
from services.router.admission import ADMISSIONS, estimate
from services.router.app import RouterApp, RouterSettings
from tests.conftest import free_port
from tests.integration.router_harness import running_router, simulators

GATEWAY = """
providers:
  sim: {{type: openai, base_url: "http://127.0.0.1:{sim}/v1"}}
deployments:
  cheap: {{provider: sim, model: sim-small, price: {{input: 1000, output: 2000}}}}
  dear: {{provider: sim, model: sim-small, price: {{input: 3000, output: 9000}}}}
models:
  demo: {{deployments: [cheap, dear]}}
"""
CALLER = ((TENANT_ID, "ten_r"), (KEY_ID, "key_r"), (TEAM_ID, "team_r"),
          (SUBSCRIPTION_ID, "sub_r"))
ADMIN = ((TENANT_ID, "ten_r"), (KEY_ID, "key_admin"), (ROLES, "tenant_admin"))


async def chat(router, request_id: str, max_tokens: int | None = 10, metadata=CALLER):
    body = {"model": "demo", "messages": [{"role": "user", "content": "hello"}]}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    call = router.OpenAIChatCompletions(
        pb.OpenAIChatCompletionsRequest(http_body=httpbody_pb2.HttpBody(
            content_type="application/json", data=orjson.dumps(body))),
        metadata=(*metadata, ("x-request-id", request_id)),
    )
    data = b"".join([part.data async for part in call])
    headers = dict(await call.initial_metadata())
    return int(headers.get("x-lockgate-http-status", "200")), headers, orjson.loads(data)


def test_estimate_counts_the_prompt_and_the_output_maximum():
    body = {"messages": [{"role": "user", "content": "hello there"}], "max_tokens": 50, "n": 2}
    est = estimate(body, "chat", 4096)
    assert est.input_tokens > 3 and est.max_output_tokens == 100
    assert est.requested_output_tokens == 100
    unset = estimate({"messages": []}, "chat", 4096)
    assert (unset.max_output_tokens, unset.requested_output_tokens) == (4096, 0)
    assert estimate({"input": ["a b c"]}, "embeddings", 4096).max_output_tokens == 0


TRANSPORTS = pytest.mark.parametrize("admit_over", ["http", "grpc"])


@TRANSPORTS
async def test_budget_refusal_names_the_budget_and_settling_frees_it(tmp_path, admit_over):
    async with (
        simulators({"sim": SimConfig(reply_words=50)}) as ports,
        running_router(tmp_path, GATEWAY.format(**ports), admit_over=admit_over) as rut,
    ):
        # The most a 10-token reply can cost on the dearer deployment (failover
        # may reach it): the prompt at $3/M... plus 10 x $9000/M = $0.09 + input.
        budget = (await rut.ledger.SetBudget(ledger_pb.SetBudgetRequest(
            scope="subscription", scope_id="sub_r", amount_micro_usd=150_000, period="day",
            hard=True), metadata=ADMIN)).budget
        status, _, _ = await chat(rut.router, "a1")
        assert status == 200
        # the reservation (~$0.12) holds until the usage entry settles it
        for _ in range(100):
            listed = (await rut.ledger.ListBudgets(ledger_pb.ListBudgetsRequest(),
                                                   metadata=ADMIN)).budgets[0]
            if listed.spent_micro_usd and not listed.reserved_micro_usd:
                break
            await asyncio.sleep(0.05)
        # cheap deployment, 10 output tokens at $2000/M: a fraction of the reservation
        assert 0 < listed.spent_micro_usd < 100_000
        # a call that could cost more than what is left is refused, naming the budget
        status, headers, body = await chat(rut.router, "a2", max_tokens=1000)
        assert status == 429
        assert body["error"]["code"] == "budget_exceeded"
        assert body["error"]["type"] == "rate_limit_error"
        assert budget.budget_id in body["error"]["message"]
        assert "subscription sub_r" in body["error"]["message"]
        assert int(headers["retry-after"]) > 0
        # a small call still fits
        status, _, _ = await chat(rut.router, "a3", max_tokens=5)
        assert status == 200


async def test_callers_without_budgets_are_not_asked_again_for_a_while(tmp_path):
    async with (
        simulators({"sim": SimConfig()}) as ports,
        running_router(tmp_path, GATEWAY.format(**ports)) as rut,
    ):
        skipped = ADMISSIONS.labels("skipped")._value.get()
        admitted = ADMISSIONS.labels("admitted")._value.get()
        for i in range(5):
            assert (await chat(rut.router, f"u{i}"))[0] == 200
        assert ADMISSIONS.labels("admitted")._value.get() - admitted == 1
        assert ADMISSIONS.labels("skipped")._value.get() - skipped == 4


@TRANSPORTS
@pytest.mark.parametrize(("mode", "expected"), [("open", 200), ("closed", 503)])
async def test_ledger_away_follows_the_failure_mode(tmp_path, mode, expected, admit_over):
    async with simulators({"sim": SimConfig()}) as ports:
        config = tmp_path / "gateway.yaml"
        config.write_text(GATEWAY.format(**ports))
        nobody = f"127.0.0.1:{free_port()}"  # nothing listens there
        app = RouterApp(RouterSettings(
            data_dir=tmp_path, grpc_port=0, gateway_config=config, ledger_address=nobody,
            ledger_admit_address=nobody if admit_over == "http" else "",
            admission_failure_mode=mode, admission_timeout_seconds=0.3,
        ))
        port = await app.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                from lockgate.router.v1 import router_service_pb2_grpc as pb_grpc

                status, _, body = await chat(pb_grpc.RouterServiceStub(channel), "f1")
                assert status == expected, body
                if expected == 503:
                    assert "budget and rate limit checks are unavailable" in (
                        body["error"]["message"])
        finally:
            await app.server.stop(0)
            await app.close()


@TRANSPORTS
async def test_token_limit_headers_and_refusal(tmp_path, admit_over):
    async with (
        simulators({"sim": SimConfig(reply_words=50)}) as ports,
        running_router(tmp_path, GATEWAY.format(**ports), admit_over=admit_over) as rut,
    ):
        await rut.ledger.SetRateLimit(ledger_pb.SetRateLimitRequest(
            scope="key", scope_id="key_r", tokens_per_minute=100), metadata=ADMIN)
        seen = []
        refusal = None
        for i in range(20):
            status, headers, body = await chat(rut.router, f"t{i}", max_tokens=10)
            if status == 429:
                refusal = (headers, body)
                break
            assert status == 200
            seen.append(headers)
            await asyncio.sleep(0.3)  # the usage entry settles the tokens (spool flush)
        assert refusal is not None, "the token limit never applied"
        assert 2 <= len(seen) <= 8
        assert seen[0]["x-ratelimit-limit-tokens"] == "100"
        remaining = [int(h["x-ratelimit-remaining-tokens"]) for h in seen]
        assert remaining == sorted(remaining, reverse=True) and remaining[0] < 100
        assert seen[0]["x-ratelimit-reset-tokens"].endswith("s")
        headers, body = refusal
        assert body["error"]["code"] == "token_rate_limited"
        assert body["error"]["message"].startswith("Rate limit reached for key key_r on tokens per minute: limit 100")
        assert 1 <= int(headers["retry-after"]) <= 60
        assert headers["x-ratelimit-limit-tokens"] == "100"
