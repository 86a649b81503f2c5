"""LedgerService RPCs ListCalls: convert, call the service, convert."""

from __future__ import annotations

from lockgate.identity import identity_from_metadata
from lockgate.ledger.v1 import ledger_service_pb2 as pb
from lockgate.timestamps import to_timestamp
from services.ledger.call_log import CallLogService, CallView
from services.ledger.convert import entry_to_proto


def call_to_proto(view: CallView) -> pb.CallRecord:
    r = view.record
    message = pb.CallRecord(
        request_id=r.request_id, start_time=to_timestamp(r.start_time),
        http_method=r.http_method, path=r.path, response_code=r.response_code,
        response_flags=r.response_flags, duration_ms=r.duration_ms,
        request_bytes=r.request_bytes, response_bytes=r.response_bytes,
        upstream_cluster=r.upstream_cluster, upstream_host=r.upstream_host,
        tenant_id=r.tenant_id, key_id=r.key_id,
    )
    if view.usage is not None:
        message.usage.CopyFrom(entry_to_proto(view.usage))
    if view.bodies is not None:
        message.request_body = view.bodies.request_body
        message.response_body = view.bodies.response_body
    return message


class CallLogRpcs:
    """Mixin of LedgerServicer; reads `self.calls` (a CallLogService)."""

    calls: CallLogService

    async def ListCalls(self, request: pb.ListCallsRequest, context) -> pb.ListCallsResponse:
        caller = identity_from_metadata(context.invocation_metadata())
        views, token = await self.calls.list_calls(
            caller, request.page_size, request.page_token, request.request_id
        )
        return pb.ListCallsResponse(
            calls=[call_to_proto(v) for v in views], next_page_token=token
        )
