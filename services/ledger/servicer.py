"""LedgerService gRPC transport: convert, call the service, convert."""

from __future__ import annotations

from lockgate.identity import identity_from_metadata
from lockgate.ledger.v1 import ledger_service_pb2 as pb
from lockgate.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from services.ledger.convert import entry_from_proto, entry_to_proto
from services.ledger.service import LedgerService


class LedgerServicer(pb_grpc.LedgerServiceServicer):
    def __init__(self, service: LedgerService):
        self.service = service

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
