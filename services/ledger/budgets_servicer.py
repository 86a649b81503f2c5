"""LedgerService RPCs SetBudget, ListBudgets, DeleteBudget, Admit and
ReturnTickets: convert, call the service, convert."""

from __future__ import annotations

from lockgate.identity import identity_from_metadata
from lockgate.ledger.v1 import ledger_service_pb2 as pb
from lockgate.timestamps import to_timestamp
from services.ledger.admission import Gate
from services.ledger.budgets import BudgetBook, BudgetView
from services.ledger.scopes import CallScopes


def budget_to_proto(view: BudgetView) -> pb.Budget:
    b = view.budget
    out = pb.Budget(
        budget_id=b.budget_id, scope=b.scope, scope_id=b.scope_id,
        amount_micro_usd=b.amount_micro_usd, period=b.period, timezone=b.timezone, hard=b.hard,
        spent_micro_usd=view.level.spent, reserved_micro_usd=view.level.reserved,
        create_time=to_timestamp(b.created_at), update_time=to_timestamp(b.updated_at),
    )
    if view.period.start is not None:
        out.period_start.CopyFrom(to_timestamp(view.period.start))
        out.period_end.CopyFrom(to_timestamp(view.period.end))
    return out


class BudgetRpcs:
    """Mixin of LedgerServicer; reads `self.budgets` (BudgetBook) and `self.gate` (Gate)."""

    budgets: BudgetBook
    gate: Gate

    async def SetBudget(self, request: pb.SetBudgetRequest, context) -> pb.SetBudgetResponse:
        caller = identity_from_metadata(context.invocation_metadata())
        view = await self.budgets.set(
            caller, scope=request.scope, scope_id=request.scope_id,
            amount_micro_usd=request.amount_micro_usd, period=request.period,
            timezone=request.timezone, hard=request.hard,
        )
        return pb.SetBudgetResponse(budget=budget_to_proto(view))

    async def ListBudgets(self, request: pb.ListBudgetsRequest, context) -> pb.ListBudgetsResponse:
        caller = identity_from_metadata(context.invocation_metadata())
        views = await self.budgets.list(caller, request.scope, request.scope_id)
        return pb.ListBudgetsResponse(budgets=[budget_to_proto(v) for v in views])

    async def DeleteBudget(self, request: pb.DeleteBudgetRequest, context
                           ) -> pb.DeleteBudgetResponse:
        caller = identity_from_metadata(context.invocation_metadata())
        await self.budgets.delete(caller, request.budget_id)
        return pb.DeleteBudgetResponse()

    async def Admit(self, request: pb.AdmitRequest, context) -> pb.AdmitResponse:
        return await admit(self.gate, request)

    async def ReturnTickets(self, request: pb.ReturnTicketsRequest, context
                            ) -> pb.ReturnTicketsResponse:
        return await return_tickets(self.gate, request)


def _scopes(request: pb.AdmitRequest | pb.ReturnTicketsRequest) -> CallScopes:
    # Internal (router -> ledger; denied at the edge): the scopes come in the request.
    return CallScopes(
        tenant_id=request.tenant_id, team_id=request.team_id, key_id=request.key_id,
        subscription_id=request.subscription_id, alias=request.alias,
    )


async def admit(gate: Gate, request: pb.AdmitRequest) -> pb.AdmitResponse:
    """Admit over either transport (gRPC, or services/ledger/admit_http.py)."""
    result = await gate.admit(
        request.request_id, _scopes(request), max_cost_micro_usd=request.max_cost_micro_usd,
        estimated_tokens=request.estimated_tokens,
        ttl_seconds=request.reservation_ttl_seconds, count_requests=request.count_requests,
        cache_hit=request.cache_hit, tickets=request.tickets,
        ticket_max_cost_micro_usd=request.ticket_max_cost_micro_usd,
        ticket_tokens=request.ticket_tokens,
    )
    tickets = result.tickets
    return pb.AdmitResponse(
        admitted=result.admitted, code=result.code, message=result.message,
        retry_after_seconds=result.retry_after_seconds, token_limit=result.token_limit,
        token_remaining=result.token_remaining, token_reset_ms=result.token_reset_ms,
        unrestricted_ttl_ms=result.unrestricted_ttl_ms, request_limit=result.request_limit,
        request_remaining=result.request_remaining, request_reset_ms=result.request_reset_ms,
        ticket_ids=tickets.ids, ticket_ttl_ms=tickets.ttl_ms,
        ticket_window_start_ms=tickets.window_start_ms,
    )


async def return_tickets(gate: Gate, request: pb.ReturnTicketsRequest
                         ) -> pb.ReturnTicketsResponse:
    """ReturnTickets over either transport."""
    await gate.return_tickets(_scopes(request), list(request.ticket_ids),
                              count_requests=request.count_requests,
                              window_start_ms=request.window_start_ms)
    return pb.ReturnTicketsResponse()
