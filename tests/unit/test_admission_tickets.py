"""The router's book of admission tickets: sized by each caller's own traffic,
used only within what they were granted for and before they expire, and every
unused one handed back."""

from __future__ import annotations

from lockgate.ledger.v1 import ledger_service_pb2 as ledger_pb
from services.router.admission_tickets import MAX_WANTED, MIN_WANTED, TicketBook

SCOPES = ("ten_a", "", "key_a", "", "demo", True)
OTHER = ("ten_b", "", "key_b", "", "demo", True)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def grant(ids, *, ttl_ms=1000, request_remaining=500) -> ledger_pb.AdmitResponse:
    return ledger_pb.AdmitResponse(
        admitted=True, ticket_ids=ids, ticket_ttl_ms=ttl_ms, ticket_window_start_ms=60_000,
        request_limit=1000, request_remaining=request_remaining, request_reset_ms=30_000,
        token_limit=50_000, token_remaining=40_000, token_reset_ms=30_000)


def book_with(ids, clock=None, **reply) -> TicketBook:
    book = TicketBook(clock or Clock())
    book.wanted(SCOPES)
    book.add(SCOPES, grant(ids, **reply), max_cost_micro_usd=2000, max_tokens=200)
    return book


def test_quiet_callers_ask_for_none_and_busy_ones_for_their_last_second():
    clock = Clock()
    book = TicketBook(clock)
    assert [book.wanted(SCOPES) for _ in range(MIN_WANTED)][-2:] == [0, MIN_WANTED]
    for _ in range(2 * MAX_WANTED):
        book.wanted(SCOPES)
    assert book.wanted(SCOPES) == MAX_WANTED
    clock.now += 1.0  # a new second: sized by the one before
    assert book.wanted(SCOPES) == MAX_WANTED
    clock.now += 5.0  # after a pause, back to nothing
    assert book.wanted(SCOPES) == 0
    assert book.wanted(OTHER) == 0  # per caller


def test_a_ticket_is_used_once_and_only_for_calls_within_its_caps():
    book = book_with(["adm_1", "adm_2"])
    assert book.take(SCOPES, 2001, 10) is None  # dearer than the grant was asked for
    assert book.take(SCOPES, 10, 201) is None  # larger
    assert book.take(OTHER, 10, 10) is None  # another caller's
    first, _ = book.take(SCOPES, 2000, 200)
    second, _ = book.take(SCOPES, 1, 1)
    assert {first, second} == {"adm_1", "adm_2"}
    assert book.take(SCOPES, 1, 1) is None
    assert book.unused(SCOPES) == 0


def test_each_call_on_a_ticket_is_told_what_is_left():
    book = book_with(["adm_1", "adm_2"], request_remaining=500)
    _, headers = book.take(SCOPES, 1, 1)
    shown = dict(headers)
    assert shown["x-ratelimit-limit-requests"] == "1000"
    assert shown["x-ratelimit-remaining-requests"] == "499"
    assert shown["x-ratelimit-remaining-tokens"] == "40000"
    _, headers = book.take(SCOPES, 1, 1)
    assert dict(headers)["x-ratelimit-remaining-requests"] == "498"


def test_expired_tickets_are_not_used_and_are_handed_back_once():
    clock = Clock()
    book = book_with(["adm_1", "adm_2", "adm_3"], clock)
    book.take(SCOPES, 1, 1)
    clock.now += 1.01
    assert book.take(SCOPES, 1, 1) is None
    returned = book.expired()
    assert [sorted(g.ids) for g in returned] == [["adm_1", "adm_2"]]
    assert returned[0].scopes == SCOPES and returned[0].window_start_ms == 60_000
    assert book.expired() == []


def test_idle_callers_are_forgotten_and_a_stop_hands_back_everything():
    clock = Clock()
    book = book_with(["adm_1"], clock)
    book.wanted(OTHER)
    clock.now += 2.5
    book.expired()  # hands back adm_1 (expired), forgets both callers
    assert book.wanted(OTHER) == 0 and book.unused(SCOPES) == 0
    book.add(OTHER, grant(["adm_9"]), max_cost_micro_usd=1, max_tokens=1)
    assert [g.ids for g in book.drain()] == [["adm_9"]]
    assert book.drain() == []


def test_tickets_for_a_caller_already_forgotten_go_back():
    book = TicketBook(Clock())
    book.add(SCOPES, grant(["adm_1"]), max_cost_micro_usd=1, max_tokens=1)
    assert [g.ids for g in book.expired()] == [["adm_1"]]


def test_one_grant_asked_for_at_a_time():
    book = TicketBook(Clock())
    book.wanted(SCOPES)
    assert book.start_asking(SCOPES)
    assert not book.start_asking(SCOPES)
    book.add(SCOPES, grant([]), max_cost_micro_usd=1, max_tokens=1)
    assert book.start_asking(SCOPES)
    book.stop_asking(SCOPES)
    assert book.start_asking(SCOPES)


def test_callers_beyond_the_bound_are_not_tracked():
    book = TicketBook(Clock(), max_pools=1)
    for _ in range(10):
        book.wanted(SCOPES)
    assert book.wanted(OTHER) == 0 and not book.start_asking(OTHER)
