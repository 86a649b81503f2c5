"""Registry proto <-> domain conversion (prompt specs: lockgate/prompts/proto.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.message import Message

from lockgate.prompts.proto import prompt_to_proto
from lockgate.registry.v1 import registry_service_pb2 as pb
from lockgate.revisions import etag_of
from lockgate.timestamps import to_timestamp
from services.registry.models import Api, ApiVersion, AuditEvent, Subscription

KIND_TO_PROTO = {"model": pb.API_KIND_MODEL, "prompt": pb.API_KIND_PROMPT}
KIND_FROM_PROTO = {v: k for k, v in KIND_TO_PROTO.items()}


def kind_from_proto(kind: int) -> str:
    """Domain kind, or "" for UNSPECIFIED/unknown values (the service rejects it)."""
    return KIND_FROM_PROTO.get(kind, "")


def _ts(value: datetime | None):
    return to_timestamp(value) if value is not None else None


def timestamp(message: Message, field: str) -> datetime | None:
    if not message.HasField(field):
        return None
    return getattr(message, field).ToDatetime(tzinfo=UTC)


def api_to_proto(api: Api) -> pb.Api:
    return pb.Api(
        id=api.id, tenant_id=api.tenant_id, name=api.name, kind=KIND_TO_PROTO[api.kind],
        description=api.description, model_aliases=api.model_aliases,
        create_time=to_timestamp(api.created_at), owner_team_id=api.owner_team_id,
        visibility=api.visibility, shared_tenant_ids=api.shared_tenant_ids or [],
        update_time=_ts(api.updated_at), etag=etag_of(api), log_bodies=api.log_bodies,
    )


def version_to_proto(row: ApiVersion) -> pb.ApiVersion:
    return pb.ApiVersion(
        api_id=row.api_id, version=row.version, state=row.state, description=row.description,
        model_aliases=row.model_aliases, prompt=prompt_to_proto(row.prompt),
        sunset_time=_ts(row.sunset_at), successor=row.successor,
        create_time=to_timestamp(row.created_at), publish_time=_ts(row.published_at),
        deprecate_time=_ts(row.deprecated_at), retire_time=_ts(row.retired_at),
        update_time=_ts(row.updated_at), etag=etag_of(row),
    )


def subscription_to_proto(row: Subscription, api_name: str = "") -> pb.Subscription:
    return pb.Subscription(
        id=row.id, api_id=row.api_id, api_name=api_name, version=row.version,
        subscriber_tenant_id=row.subscriber_tenant_id, team_id=row.team_id, state=row.state,
        justification=row.justification, decision_reason=row.decision_reason,
        decided_by=row.decided_by, create_time=to_timestamp(row.created_at),
        update_time=_ts(row.updated_at), etag=etag_of(row),
    )


def audit_to_proto(event: AuditEvent) -> pb.AuditEvent:
    return pb.AuditEvent(
        seq=event.seq or 0, id=event.id, tenant_id=event.tenant_id, actor=event.actor,
        action=event.action, object_type=event.object_type, object_id=event.object_id,
        before_digest=event.before_digest, after_digest=event.after_digest,
        decision_id=event.decision_id, create_time=to_timestamp(event.created_at),
        prev_hash=event.prev_hash, hash=event.hash,
    )
