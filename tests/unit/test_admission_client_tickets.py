"""AdmissionClient with admission tickets, against a scripted ledger transport (the
real ledger's side is tests/integration/test_admission_tickets_*.py): tickets
are refilled in the background before they run out, a caller that goes away
does not lose a grant, and every unused ticket is handed back."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

import pytest

from lockgate.identity import Identity
from lockgate.ledger.v1 import ledger_service_pb2 as ledger_pb
from services.router.admission import AdmissionClient, AdmissionUnavailable
from services.router.admission_tickets import MIN_WANTED

BODY = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
_ids = itertools.count()


@dataclass
class Call:
    request_id: str
    caller: Identity = field(default_factory=lambda: Identity(tenant_id="ten_a", key_id="key_a"))
    alias: str = "demo"
    kind: str = "chat"
    counts_requests: bool = True
    deadline: float | None = None
    admission_id: str = ""


class Ledger:
    """Answers Admit like a ledger with room to spare; `hold` makes it wait."""

    def __init__(self, grant: int = 8):
        self.grant = grant
        self.asked: list[ledger_pb.AdmitRequest] = []
        self.returned: list[ledger_pb.ReturnTicketsRequest] = []
        self.hold: asyncio.Event | None = None
        self.away = False

    async def __call__(self, request, within):
        self.asked.append(request)
        if self.hold is not None:
            await self.hold.wait()
        if self.away:
            raise AdmissionUnavailable("connection refused")
        ids = [f"adm_{next(_ids):024x}" for _ in range(min(request.tickets, self.grant))]
        return ledger_pb.AdmitResponse(admitted=True, ticket_ids=ids, ticket_ttl_ms=1000,
                                       ticket_window_start_ms=60_000, request_limit=1000,
                                       request_remaining=900, request_reset_ms=30_000)

    async def return_tickets(self, request, within):
        self.returned.append(request)


SCOPES = ("ten_a", "", "key_a", "", "demo", True)


async def call(client: AdmissionClient, n: int) -> Call:
    made = Call(f"req-{n}")
    await client.admit(made, [], BODY)
    await asyncio.sleep(0)  # as the call's own I/O would: background refills run
    return made


async def test_busy_callers_go_ahead_on_tickets_refilled_in_the_background():
    ledger = Ledger(grant=8)
    client = AdmissionClient(ledger)
    calls = [await call(client, n) for n in range(40)]
    await asyncio.sleep(0)  # let the last refill land
    on_tickets = [c for c in calls if c.admission_id]
    assert len(on_tickets) >= 30
    assert len({c.admission_id for c in on_tickets}) == len(on_tickets)  # each used once
    refills = [r for r in ledger.asked if not r.request_id]
    assert refills and all(r.tickets >= MIN_WANTED for r in refills)
    # Every call was admitted one way or the other, and nothing asked twice at once.
    assert len(ledger.asked) - len(refills) + len(on_tickets) == 40
    await client.close()


async def test_a_caller_that_goes_away_does_not_lose_the_grant_it_asked_for():
    ledger = Ledger(grant=8)
    client = AdmissionClient(ledger)
    for n in range(MIN_WANTED - 1):
        await call(client, n)
    ledger.hold = asyncio.Event()
    asking = asyncio.create_task(call(client, 99))
    await asyncio.sleep(0.01)
    assert ledger.asked[-1].tickets > 0
    asking.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asking
    asked = ledger.asked[-1].tickets
    ledger.hold.set()
    await asyncio.sleep(0.01)
    assert client.tickets.unused(SCOPES) == asked
    await client.close()
    assert sum(len(r.ticket_ids) for r in ledger.returned) == asked


async def test_unused_tickets_are_handed_back_when_they_expire_and_at_close():
    ledger = Ledger(grant=8)
    client = AdmissionClient(ledger)
    for n in range(MIN_WANTED + 1):
        await call(client, n)
    await asyncio.sleep(0.01)
    unused = client.tickets.unused(SCOPES)
    assert unused > 0
    client.tickets.clock = lambda: 10**9  # long after they expired
    await client.return_expired()
    for back in ledger.returned:  # one ReturnTickets per grant
        assert (back.tenant_id, back.key_id, back.alias, back.count_requests) == (
            "ten_a", "key_a", "demo", 1)
        assert back.window_start_ms == 60_000
    assert sum(len(back.ticket_ids) for back in ledger.returned) == unused
    returns = len(ledger.returned)
    await client.close()
    assert len(ledger.returned) == returns  # nothing left to hand back


async def test_a_ledger_away_for_a_refill_leaves_calls_to_ask_for_themselves():
    ledger = Ledger(grant=MIN_WANTED)
    client = AdmissionClient(ledger, failure_mode="closed")
    for n in range(3 * MIN_WANTED):
        await call(client, n)
    ledger.away = True
    for n in range(100 * MIN_WANTED):
        try:
            await call(client, 100 + n)
        except Exception as exc:  # noqa: BLE001 - the failure mode, once tickets ran out
            assert "unavailable" in str(exc)
            break
    else:
        raise AssertionError("the failure mode never applied")
    await client.close()


async def test_tickets_off_every_call_asks():
    ledger = Ledger()
    client = AdmissionClient(ledger, tickets=False)
    calls = [await call(client, n) for n in range(20)]
    assert not any(c.admission_id for c in calls)
    assert len(ledger.asked) == 20 and not any(r.tickets for r in ledger.asked)
    await client.close()
