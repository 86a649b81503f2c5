"""Ledger proto <-> domain conversion."""

from __future__ import annotations

from lockgate.common.v1 import common_pb2
from lockgate.ledger.v1 import ledger_service_pb2 as pb
from lockgate.timestamps import from_timestamp, to_timestamp
from services.ledger.analytics import UsageRow
from services.ledger.models import UsageEntry


def entry_from_proto(msg: pb.UsageEntry) -> dict:
    """One usage entry as LedgerService.record takes it (once per governed call:
    the token counts read off one TokenUsage)."""
    created = from_timestamp(msg.create_time) if msg.HasField("create_time") else None
    usage = msg.usage
    return {
        "request_id": msg.request_id,
        "tenant_id": msg.tenant_id,
        "key_id": msg.key_id,
        "alias": msg.alias,
        "deployment": msg.deployment,
        "provider": msg.provider,
        "provider_model": msg.provider_model,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cached_input_tokens": usage.cached_input_tokens,
        "estimated": usage.estimated,
        "latency_ms": msg.latency_ms,
        "ttft_ms": msg.ttft_ms,
        "status": msg.status or "ok",
        "error_type": msg.error_type,
        "streamed": msg.streamed,
        "cache_hit": msg.cache_hit,
        "operation": msg.operation or "chat",
        "attempts": msg.attempts,
        "cost_micro_usd": msg.cost_micro_usd,
        "price_source": msg.price_source,
        "team_id": msg.team_id,
        "principal": msg.principal,
        "api_id": msg.api_id,
        "api_version": msg.api_version,
        "subscription_id": msg.subscription_id,
        "created_at": created,
        # Taken out by LedgerService.record() into call_bodies.
        "request_body": msg.request_body,
        "response_body": msg.response_body,
        # Taken out by LedgerService.record() for its listeners (not stored).
        "admission_id": msg.admission_id,
    }


def entry_to_proto(row: UsageEntry) -> pb.UsageEntry:
    return pb.UsageEntry(
        request_id=row.request_id,
        tenant_id=row.tenant_id,
        key_id=row.key_id,
        alias=row.alias,
        deployment=row.deployment,
        provider=row.provider,
        provider_model=row.provider_model,
        usage=common_pb2.TokenUsage(
            input_tokens=row.input_tokens,
            output_tokens=row.output_tokens,
            total_tokens=row.input_tokens + row.output_tokens,
            cached_input_tokens=row.cached_input_tokens,
            estimated=row.estimated,
        ),
        latency_ms=row.latency_ms,
        ttft_ms=row.ttft_ms,
        status=row.status,
        error_type=row.error_type,
        streamed=row.streamed,
        cache_hit=row.cache_hit,
        operation=row.operation,
        attempts=row.attempts,
        cost_micro_usd=row.cost_micro_usd,
        price_source=row.price_source,
        team_id=row.team_id,
        principal=row.principal,
        api_id=row.api_id,
        api_version=row.api_version,
        subscription_id=row.subscription_id,
        create_time=to_timestamp(row.created_at),
    )


def usage_row_to_proto(row: UsageRow) -> pb.UsageRow:
    msg = pb.UsageRow(
        group=row.group,
        requests=row.requests,
        errors=row.errors,
        error_rate=row.error_rate,
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        total_tokens=row.total_tokens,
        cached_input_tokens=row.cached_input_tokens,
        estimated_requests=row.estimated_requests,
        cache_hits=row.cache_hits,
        latency_p50_ms=row.latency_ms.get(0.5, 0.0),
        latency_p95_ms=row.latency_ms.get(0.95, 0.0),
        latency_p99_ms=row.latency_ms.get(0.99, 0.0),
        ttft_p50_ms=row.ttft_p50_ms,
        cost_micro_usd=row.cost_micro_usd,
        unpriced_requests=row.unpriced_requests,
    )
    if row.bucket_start is not None:
        msg.bucket_start.CopyFrom(to_timestamp(row.bucket_start))
    return msg
