"""Identity headers: set by auth on allowed requests (Envoy forwards them to
upstreams as gRPC metadata); any client-sent copy is stripped at the edge.
"""

from __future__ import annotations

from dataclasses import dataclass

from lockgate.errors import Unauthenticated

PREFIX = "x-lockgate-"
TENANT_ID = "x-lockgate-tenant-id"
KEY_ID = "x-lockgate-key-id"
ROLES = "x-lockgate-roles"


@dataclass(frozen=True, slots=True)
class Identity:
    tenant_id: str
    key_id: str
    roles: tuple[str, ...] = ()


def identity_from_metadata(metadata) -> Identity:
    """The caller's identity from invocation metadata; UNAUTHENTICATED without it."""
    values: dict[str, str] = {}
    for key, value in metadata or ():
        if key.startswith(PREFIX):
            values[key] = value.decode() if isinstance(value, bytes) else value
    tenant_id = values.get(TENANT_ID)
    if not tenant_id:
        raise Unauthenticated("no caller identity: call through the gateway with an API key")
    roles = tuple(r for r in values.get(ROLES, "").split(",") if r)
    return Identity(tenant_id=tenant_id, key_id=values.get(KEY_ID, ""), roles=roles)
