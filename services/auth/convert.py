"""Auth proto <-> domain conversion."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from lockgate.auth.v1 import auth_service_pb2 as pb
from services.auth.models import ApiKey, Tenant


def _timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value if value.tzinfo else value.replace(tzinfo=UTC))
    return stamp


def tenant_to_proto(tenant: Tenant) -> pb.Tenant:
    return pb.Tenant(id=tenant.id, name=tenant.name, create_time=_timestamp(tenant.created_at))


def key_to_proto(key: ApiKey) -> pb.ApiKey:
    return pb.ApiKey(
        id=key.id,
        tenant_id=key.tenant_id,
        name=key.name,
        prefix=f"lg_{key.prefix}",
        roles=key.roles,
        models=key.models,
        status=key.status,
        create_time=_timestamp(key.created_at),
    )
