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
TENANT_NAME = "x-lockgate-tenant-name"
#: The key's model scope, comma-separated; absent or empty: every model.
MODELS = "x-lockgate-models"


@dataclass(frozen=True, slots=True)
class Identity:
    tenant_id: str
    key_id: str
    roles: tuple[str, ...] = ()
    tenant_name: str = ""
    #: The key's model scope; () = every model.
    models: tuple[str, ...] = ()


def identity_from_metadata(metadata) -> Identity:
    """The caller's identity from invocation metadata; UNAUTHENTICATED without it."""
    values: dict[str, str] = {}
    for key, value in metadata or ():
        if key.startswith(PREFIX):
            values[key] = value.decode() if isinstance(value, bytes) else value
    tenant_id = values.get(TENANT_ID)
    if not tenant_id:
        raise Unauthenticated("no caller identity: call through the gateway with an API key")
    return Identity(
        tenant_id=tenant_id,
        key_id=values.get(KEY_ID, ""),
        roles=_items(values.get(ROLES, "")),
        tenant_name=values.get(TENANT_NAME, ""),
        models=_items(values.get(MODELS, "")),
    )


def _items(value: str) -> tuple[str, ...]:
    return tuple(item for item in value.split(",") if item)
