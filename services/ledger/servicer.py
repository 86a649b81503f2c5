"""LedgerService gRPC transport: convert, call the service, convert.

The service has one mixin per area, each in its own module (prices, budgets
and admission, rate limits, call log); this module holds usage and composes them.
"""

from __future__ import annotations

from datetime import UTC

from lockgate.identity import identity_from_metadata
from lockgate.ledger.v1 import ledger_service_pb2 as pb
from lockgate.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from lockgate.timestamps import to_timestamp
from services.ledger.budgets_servicer import BudgetRpcs
from services.ledger.calls_servicer import CallLogRpcs
from services.ledger.convert import entry_from_proto, entry_to_proto, usage_row_to_proto
from services.ledger.limits_servicer import RateLimitRpcs
from services.ledger.prices_servicer import PriceRpcs
from services.ledger.service import LedgerService


class LedgerServicer(
    PriceRpcs, BudgetRpcs, RateLimitRpcs, CallLogRpcs, pb_grpc.LedgerServiceServicer
):
    def __init__(self, service: LedgerService, **areas):
        """`areas`: the services of the mixins, by the attribute name each mixin reads
        (see PriceRpcs, BudgetRpcs, RateLimitRpcs, CallLogRpcs)."""
        self.service = service
        for name, area in areas.items():
            setattr(self, name, area)

    async def RecordUsage(self, request: pb.RecordUsageRequest, context) -> pb.RecordUsageResponse:
        result = await self.service.record([entry_from_proto(e) for e in request.entries])
        return pb.RecordUsageResponse(inserted=result.inserted, duplicates=result.duplicates)

    async def ListUsage(self, request: pb.ListUsageRequest, context) -> pb.ListUsageResponse:
        caller = identity_from_metadata(context.invocation_metadata())
        rows, token = await self.service.list_usage(
            caller.tenant_id, request.page_size, request.page_token
        )
        return pb.ListUsageResponse(
            entries=[entry_to_proto(r) for r in rows], next_page_token=token
        )

    async def QueryUsage(self, request: pb.QueryUsageRequest, context) -> pb.QueryUsageResponse:
        caller = identity_from_metadata(context.invocation_metadata())
        rows, start, end = await self.service.query_usage(
            caller.tenant_id,
            bucket=request.bucket,
            group_by=list(request.group_by),
            start=(
                request.start_time.ToDatetime(tzinfo=UTC)
                if request.HasField("start_time") else None
            ),
            end=request.end_time.ToDatetime(tzinfo=UTC) if request.HasField("end_time") else None,
            order_by=request.order_by,
            limit=request.limit,
        )
        return pb.QueryUsageResponse(
            rows=[usage_row_to_proto(r) for r in rows],
            start_time=to_timestamp(start),
            end_time=to_timestamp(end),
        )

    async def GetLastCall(self, request: pb.GetLastCallRequest, context) -> pb.GetLastCallResponse:
        # Internal (registry -> ledger; denied at the edge): no caller identity needed,
        # and the answer spans every tenant that called the version.
        last = await self.service.last_call(request.api_id, request.api_version)
        response = pb.GetLastCallResponse()
        if last is not None:
            response.last_call_time.CopyFrom(to_timestamp(last))
        return response
