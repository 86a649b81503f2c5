"""Registry proto <-> domain conversion."""

from __future__ import annotations

from datetime import UTC

from google.protobuf.timestamp_pb2 import Timestamp

from lockgate.registry.v1 import registry_service_pb2 as pb
from services.registry.models import Api

KIND_TO_PROTO = {"model": pb.API_KIND_MODEL, "prompt": pb.API_KIND_PROMPT}
KIND_FROM_PROTO = {v: k for k, v in KIND_TO_PROTO.items()}


def kind_from_proto(kind: int) -> str:
    """Domain kind, or "" for UNSPECIFIED/unknown values (the service rejects it)."""
    return KIND_FROM_PROTO.get(kind, "")


def api_to_proto(api: Api) -> pb.Api:
    created = Timestamp()
    # SQLite hands back naive datetimes; they were written as UTC.
    stamp = api.created_at if api.created_at.tzinfo else api.created_at.replace(tzinfo=UTC)
    created.FromDatetime(stamp)
    return pb.Api(
        id=api.id,
        tenant_id=api.tenant_id,
        name=api.name,
        kind=KIND_TO_PROTO[api.kind],
        description=api.description,
        model_aliases=api.model_aliases,
        create_time=created,
    )
