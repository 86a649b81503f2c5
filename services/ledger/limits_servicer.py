"""LedgerService RPCs SetRateLimit, ListRateLimits, DeleteRateLimit: convert, call the service, convert."""

from __future__ import annotations

from lockgate.identity import identity_from_metadata
from lockgate.ledger.v1 import ledger_service_pb2 as pb
from lockgate.timestamps import to_timestamp
from services.ledger.limits import RateLimitService
from services.ledger.models import RateLimit


def rate_limit_to_proto(row: RateLimit) -> pb.RateLimit:
    return pb.RateLimit(
        rate_limit_id=row.rate_limit_id,
        scope=row.scope,
        scope_id=row.scope_id,
        requests_per_minute=row.requests_per_minute,
        tokens_per_minute=row.tokens_per_minute,
        create_time=to_timestamp(row.created_at),
        update_time=to_timestamp(row.updated_at),
    )


class RateLimitRpcs:
    """Mixin of LedgerServicer; reads its service from `self.limits`."""

    limits: RateLimitService

    async def SetRateLimit(self, request: pb.SetRateLimitRequest, context
                           ) -> pb.SetRateLimitResponse:
        caller = identity_from_metadata(context.invocation_metadata())
        row = await self.limits.set_limit(
            caller, request.scope, request.scope_id, request.requests_per_minute,
            request.tokens_per_minute,
        )
        return pb.SetRateLimitResponse(rate_limit=rate_limit_to_proto(row))

    async def ListRateLimits(self, request: pb.ListRateLimitsRequest, context
                             ) -> pb.ListRateLimitsResponse:
        caller = identity_from_metadata(context.invocation_metadata())
        rows = await self.limits.list_limits(caller, request.scope, request.scope_id)
        return pb.ListRateLimitsResponse(rate_limits=[rate_limit_to_proto(r) for r in rows])

    async def DeleteRateLimit(self, request: pb.DeleteRateLimitRequest, context
                              ) -> pb.DeleteRateLimitResponse:
        caller = identity_from_metadata(context.invocation_metadata())
        await self.limits.delete_limit(caller, request.rate_limit_id)
        return pb.DeleteRateLimitResponse()
