"""Admission tickets, the ledger's side (real ledger in process, both transports):
a grant counts requests and reserves cost for each ticket, stays within a small
share of what is left, and what is handed back is released and uncounted; a
usage entry that names its ticket settles the ticket's reservation."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from lockgate import ledger_admit_http as admit_http
from lockgate.identity import KEY_ID, ROLES, TENANT_ID
from lockgate.lean_http import LeanHttpClient
from lockgate.ledger.v1 import ledger_service_pb2 as pb
from services.ledger.admission import MAX_TICKETS, TICKET_ID, TICKET_TTL_MS
from services.ledger.limits import REQUESTS_COUNTED
from services.ledger.rate_counters import WINDOW_MS
from tests.integration.test_budgets import REDIS_URL
from tests.integration.test_budgets import start_ledger as start_replica

ADMIN = ((TENANT_ID, "ten_t"), (KEY_ID, "key_admin"), (ROLES, "tenant_admin"))
SCOPES = {"tenant_id": "ten_t", "key_id": "key_t", "alias": "demo"}


async def govern(stub, *, usd: int = 100, rpm: int = 10_000, tpm: int = 1_000_000) -> None:
    await stub.SetBudget(pb.SetBudgetRequest(scope="tenant", amount_micro_usd=usd * 1_000_000,
                                             period="day", hard=True), metadata=ADMIN)
    await stub.SetRateLimit(pb.SetRateLimitRequest(scope="key", scope_id="key_t",
                                                   requests_per_minute=rpm,
                                                   tokens_per_minute=tpm), metadata=ADMIN)


async def reserved(stub) -> int:
    budgets = (await stub.ListBudgets(pb.ListBudgetsRequest(), metadata=ADMIN)).budgets
    return budgets[0].reserved_micro_usd


def admit(request_id: str, tickets: int = 0, **fields) -> pb.AdmitRequest:
    return pb.AdmitRequest(
        request_id=request_id, **SCOPES, max_cost_micro_usd=1000, estimated_tokens=100,
        reservation_ttl_seconds=60, count_requests=1, tickets=tickets,
        ticket_max_cost_micro_usd=2000, ticket_tokens=200, **fields)


def give_back(reply: pb.AdmitResponse, ids=None) -> pb.ReturnTicketsRequest:
    return pb.ReturnTicketsRequest(
        **SCOPES, count_requests=1, ticket_ids=reply.ticket_ids if ids is None else ids,
        window_start_ms=reply.ticket_window_start_ms)


async def over_http(client: LeanHttpClient, path: str, request, reply_type):
    reply = await client.post(path, request.SerializeToString(), admit_http.CONTENT_TYPE,
                              within=5)
    assert reply.status == 200, reply.body
    return reply_type.FromString(reply.body)


@pytest.mark.parametrize("transport", ["grpc", "http"])
async def test_a_grant_counts_and_reserves_each_ticket_and_a_return_undoes_it(admit_ledger, transport):
    stub, client = admit_ledger
    await govern(stub)

    async def ask(request):
        if transport == "grpc":
            return await stub.Admit(request)
        return await over_http(client, admit_http.PATH, request, pb.AdmitResponse)

    async def hand_back(request):
        if transport == "grpc":
            return await stub.ReturnTickets(request)
        return await over_http(client, admit_http.RETURN_TICKETS_PATH, request,
                               pb.ReturnTicketsResponse)

    reply = await ask(admit("r1", tickets=10))
    assert reply.admitted and len(reply.ticket_ids) == 10
    assert all(TICKET_ID.fullmatch(t) for t in reply.ticket_ids)
    assert 0 < reply.ticket_ttl_ms <= TICKET_TTL_MS
    assert reply.ticket_window_start_ms % WINDOW_MS == 0
    # The call's own request was counted before the tickets' (its headers say so).
    assert (reply.request_limit, reply.request_remaining) == (10_000, 9_999)
    assert await reserved(stub) == 1000 + 10 * 2000
    # The next exact answer sees the 10 tickets' requests as counted.
    assert (await ask(admit("r2"))).request_remaining == 9_999 - 10 - 1

    await hand_back(give_back(reply))
    assert await reserved(stub) == 1000 + 1000  # r1 and r2, not yet settled
    assert (await ask(admit("r3"))).request_remaining == 10_000 - 3  # r1, r2 and r3


async def test_a_grant_takes_only_a_small_share_of_what_is_left(admit_ledger):
    stub, _ = admit_ledger
    await govern(stub, rpm=81)
    reply = await stub.Admit(admit("r1", tickets=50))
    # 80 requests left after the call: an eighth of them.
    assert len(reply.ticket_ids) == 10
    # Close to the limit every call asks for itself: 18 - 11 counted - r2 leaves 6.
    await govern(stub, rpm=18)
    assert len((await stub.Admit(admit("r2", tickets=50))).ticket_ids) == 0
    # Never more than MAX_TICKETS at once.
    await govern(stub, rpm=10_000)
    assert len((await stub.Admit(admit("r3", tickets=500))).ticket_ids) == MAX_TICKETS


async def test_a_budget_bounds_a_grant_as_a_limit_does(admit_ledger):
    stub, _ = admit_ledger
    # After the call's own $0.001, three eighths of tickets of $0.002 are left.
    await stub.SetBudget(pb.SetBudgetRequest(scope="tenant", amount_micro_usd=1000 + 3 * 16_000,
                                             period="day", hard=True), metadata=ADMIN)
    reply = await stub.Admit(admit("r1", tickets=50))
    assert reply.admitted and len(reply.ticket_ids) == 3
    assert await reserved(stub) == 1000 + 3 * 2000


async def test_tickets_alone_report_what_was_left_before_them(admit_ledger):
    stub, _ = admit_ledger
    await govern(stub, rpm=10_000, tpm=1_000_000)
    reply = await stub.Admit(admit("", tickets=8))
    assert reply.admitted and len(reply.ticket_ids) == 8
    assert (reply.request_limit, reply.request_remaining) == (10_000, 10_000)
    assert (reply.token_limit, reply.token_remaining) == (1_000_000, 1_000_000)
    assert 0 < reply.request_reset_ms <= WINDOW_MS
    assert await reserved(stub) == 8 * 2000


async def test_nothing_to_admit_ahead_when_nothing_applies(admit_ledger):
    stub, _ = admit_ledger
    reply = await stub.Admit(admit("", tickets=8))
    assert reply.admitted and not reply.ticket_ids and reply.unrestricted_ttl_ms > 0


async def test_a_usage_entry_settles_the_ticket_it_names(admit_ledger):
    stub, _ = admit_ledger
    await govern(stub)
    reply = await stub.Admit(admit("", tickets=2))
    used, unused = reply.ticket_ids
    now = Timestamp()
    now.GetCurrentTime()
    await stub.RecordUsage(pb.RecordUsageRequest(entries=[pb.UsageEntry(
        request_id="call-1", tenant_id="ten_t", key_id="key_t", alias="demo",
        cost_micro_usd=700, admission_id=used, create_time=now)]))
    for _ in range(50):
        budgets = (await stub.ListBudgets(pb.ListBudgetsRequest(), metadata=ADMIN)).budgets
        if budgets[0].spent_micro_usd == 700:
            break
        await asyncio.sleep(0.02)
    assert (budgets[0].spent_micro_usd, budgets[0].reserved_micro_usd) == (700, 2000)
    await stub.ReturnTickets(give_back(reply, [unused]))
    assert await reserved(stub) == 0


async def test_bad_returns_are_refused_clearly(admit_ledger):
    stub, client = admit_ledger
    await govern(stub)
    cases = [
        pb.ReturnTicketsRequest(**SCOPES, ticket_ids=["r1"]),  # a call's own reservation
        pb.ReturnTicketsRequest(**SCOPES, ticket_ids=["adm_" + "0" * 24] * 1001),
        pb.ReturnTicketsRequest(ticket_ids=["adm_" + "0" * 24]),  # no tenant
    ]
    for request in cases:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.ReturnTickets(request)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        reply = await client.post(admit_http.RETURN_TICKETS_PATH, request.SerializeToString(),
                                  admit_http.CONTENT_TYPE, within=5)
        assert reply.status == 400 and reply.body
    reply = await client.post(admit_http.RETURN_TICKETS_PATH, b"\xff\xff",
                              admit_http.CONTENT_TYPE, within=5)
    assert (reply.status, reply.body) == (400, b"the body is not a ReturnTicketsRequest")


async def test_returns_from_an_ended_window_uncount_nothing(admit_ledger):
    stub, _ = admit_ledger
    await govern(stub, rpm=10_000)
    reply = await stub.Admit(admit("", tickets=4))
    stale = pb.ReturnTicketsRequest(**SCOPES, count_requests=1, ticket_ids=reply.ticket_ids,
                                    window_start_ms=reply.ticket_window_start_ms - WINDOW_MS)
    late = REQUESTS_COUNTED.labels("window_ended")._value.get()
    await stub.ReturnTickets(stale)
    assert REQUESTS_COUNTED.labels("window_ended")._value.get() - late == 4
    # The reservations are released; the requests stay counted in this window.
    assert await reserved(stub) == 0
    assert (await stub.Admit(admit("r1"))).request_remaining == 10_000 - 4 - 1


async def test_tickets_granted_by_one_replica_go_back_through_another(database_url, tmp_path):
    """Two ledger replicas sharing Redis: the counters and reservations are one."""
    tenant = f"ten_{uuid.uuid4().hex[:10]}"
    admin = ((TENANT_ID, tenant), (KEY_ID, "key_admin"), (ROLES, "tenant_admin"))
    scopes = {**SCOPES, "tenant_id": tenant}
    first, stop_first = await start_replica(database_url, tmp_path / "a", redis_url=REDIS_URL)
    second, stop_second = await start_replica(database_url, tmp_path / "b", redis_url=REDIS_URL)
    try:
        await first.SetBudget(pb.SetBudgetRequest(scope="tenant", amount_micro_usd=10**8,
                                                  period="day", hard=True), metadata=admin)
        await first.SetRateLimit(pb.SetRateLimitRequest(
            scope="key", scope_id="key_t", requests_per_minute=10_000), metadata=admin)
        for _ in range(100):  # the second replica learns both from the database
            probe = await second.Admit(pb.AdmitRequest(request_id=f"probe-{tenant}", **scopes,
                                                       count_requests=1))
            if probe.request_limit and not probe.unrestricted_ttl_ms:
                break
            await asyncio.sleep(0.1)
        reply = await first.Admit(pb.AdmitRequest(
            request_id=f"r1-{tenant}", **scopes, max_cost_micro_usd=1000, count_requests=1,
            tickets=10,
            ticket_max_cost_micro_usd=2000))
        assert len(reply.ticket_ids) == 10
        await second.ReturnTickets(pb.ReturnTicketsRequest(
            **scopes, count_requests=1, ticket_ids=reply.ticket_ids,
            window_start_ms=reply.ticket_window_start_ms))
        # (Request ids are unique per run: Redis remembers reservations by id.)
        after = await second.Admit(pb.AdmitRequest(request_id=f"r2-{tenant}", **scopes,
                                                   count_requests=1, max_cost_micro_usd=1000))
        # probe, r1 and r2 counted; the ten tickets taken back
        assert after.request_remaining == probe.request_remaining - 2
        budget = (await first.ListBudgets(pb.ListBudgetsRequest(), metadata=admin)).budgets[0]
        assert budget.reserved_micro_usd == 2 * 1000
    finally:
        await stop_first()
        await stop_second()
