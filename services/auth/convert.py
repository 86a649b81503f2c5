"""Auth proto <-> domain conversion."""

from __future__ import annotations

from lockgate.auth.v1 import auth_service_pb2 as pb
from lockgate.timestamps import to_timestamp
from services.auth.models import ApiKey, Tenant


def tenant_to_proto(tenant: Tenant) -> pb.Tenant:
    return pb.Tenant(id=tenant.id, name=tenant.name, create_time=to_timestamp(tenant.created_at))


def key_to_proto(key: ApiKey) -> pb.ApiKey:
    return pb.ApiKey(
        id=key.id,
        tenant_id=key.tenant_id,
        name=key.name,
        prefix=f"lg_{key.prefix}",
        roles=key.roles,
        models=key.models,
        status=key.status,
        create_time=to_timestamp(key.created_at),
    )
