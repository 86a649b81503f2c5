"""Identity headers: set by auth on allowed requests (Envoy forwards them to
upstreams as gRPC metadata); any client-sent copy is stripped at the edge.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from lockgate.errors import Unauthenticated

PREFIX = "x-lockgate-"
TENANT_ID = "x-lockgate-tenant-id"
KEY_ID = "x-lockgate-key-id"
ROLES = "x-lockgate-roles"
TENANT_NAME = "x-lockgate-tenant-name"
#: The key's model scope, comma-separated; absent or empty: every model.
MODELS = "x-lockgate-models"
#: The team the credential acts in ("" for tenant-wide keys).
TEAM_ID = "x-lockgate-team-id"
#: Who holds the credential: "user:usr_…" or "service_account:sa_…".
PRINCIPAL = "x-lockgate-principal"
#: The APIs the credential may call, comma-separated; absent or empty: every API.
SCOPES = "x-lockgate-scopes"
#: The governed API (registry id) and version a call goes to; absent: ungoverned.
API_ID = "x-lockgate-api-id"
API_VERSION = "x-lockgate-api-version"
#: The approved subscription the call goes through; absent: none (owner team, admins,
#: ungoverned models).
SUBSCRIPTION_ID = "x-lockgate-subscription-id"
#: The model alias the request names; absent: none (the edge rate limiter keys on it).
MODEL = "x-lockgate-model"


@dataclass(frozen=True, slots=True)
class Identity:
    tenant_id: str
    key_id: str
    roles: tuple[str, ...] = ()
    tenant_name: str = ""
    #: The key's model scope; () = every model.
    models: tuple[str, ...] = ()
    team_id: str = ""
    #: "user" or "service_account" ("" for internal callers).
    principal_kind: str = ""
    principal_id: str = ""
    #: The APIs the credential may call; () = every API.
    scopes: tuple[str, ...] = ()
    #: The governed API and version this call goes to ("" when ungoverned).
    api_id: str = ""
    api_version: str = ""
    subscription_id: str = ""
    #: The model alias the request body names ("" when none or not an inference call).
    model: str = ""

    @property
    def principal(self) -> str:
        """The x-lockgate-principal value: user:usr_… or service_account:sa_…."""
        return f"{self.principal_kind}:{self.principal_id}" if self.principal_id else ""


def identity_from_metadata(metadata) -> Identity:
    """The caller's identity from invocation metadata; UNAUTHENTICATED without it."""
    return _identity_of(tuple((key, value) for key, value in metadata or ()
                              if key.startswith(PREFIX)))


@functools.lru_cache(maxsize=4096)
def _identity_of(pairs: tuple[tuple[str, str | bytes], ...]) -> Identity:
    """The Identity of exactly these identity headers. Read on every call, and a
    caller's calls carry the same ones: kept (bounded, least recently used out)
    rather than parsed and built anew each time (5.2 -> 1.9 µs per call). Safe
    to share: an Identity is frozen. A refusal is raised, never kept."""
    values: dict[str, str] = {}
    for key, value in pairs:
        values[key] = value.decode() if isinstance(value, bytes) else value
    tenant_id = values.get(TENANT_ID)
    if not tenant_id:
        raise Unauthenticated("no caller identity: call through the gateway with an API key")
    kind, _, principal_id = values.get(PRINCIPAL, "").partition(":")
    return Identity(
        tenant_id=tenant_id,
        key_id=values.get(KEY_ID, ""),
        roles=_items(values.get(ROLES, "")),
        tenant_name=values.get(TENANT_NAME, ""),
        models=_items(values.get(MODELS, "")),
        team_id=values.get(TEAM_ID, ""),
        principal_kind=kind,
        principal_id=principal_id,
        scopes=_items(values.get(SCOPES, "")),
        api_id=values.get(API_ID, ""),
        api_version=values.get(API_VERSION, ""),
        subscription_id=values.get(SUBSCRIPTION_ID, ""),
        model=values.get(MODEL, ""),
    )


def _items(value: str) -> tuple[str, ...]:
    return tuple(item for item in value.split(",") if item)
