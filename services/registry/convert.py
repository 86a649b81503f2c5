"""Registry proto <-> domain conversion."""

from __future__ import annotations

from lockgate.registry.v1 import registry_service_pb2 as pb
from lockgate.timestamps import to_timestamp
from services.registry.models import Api

KIND_TO_PROTO = {"model": pb.API_KIND_MODEL, "prompt": pb.API_KIND_PROMPT}
KIND_FROM_PROTO = {v: k for k, v in KIND_TO_PROTO.items()}


def kind_from_proto(kind: int) -> str:
    """Domain kind, or "" for UNSPECIFIED/unknown values (the service rejects it)."""
    return KIND_FROM_PROTO.get(kind, "")


def api_to_proto(api: Api) -> pb.Api:
    return pb.Api(
        id=api.id,
        tenant_id=api.tenant_id,
        name=api.name,
        kind=KIND_TO_PROTO[api.kind],
        description=api.description,
        model_aliases=api.model_aliases,
        create_time=to_timestamp(api.created_at),
    )
