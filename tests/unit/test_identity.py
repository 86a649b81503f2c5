"""lockgate/identity.py identity_from_metadata: the caller's identity from the
headers auth set, read on every call and kept per distinct set of them."""

from __future__ import annotations

import pytest

from lockgate.errors import Unauthenticated
from lockgate.identity import (
    KEY_ID,
    PRINCIPAL,
    ROLES,
    SCOPES,
    TEAM_ID,
    TENANT_ID,
    Identity,
    identity_from_metadata,
)


def headers(tenant: str = "ten_a", **extra: str) -> list[tuple[str, str]]:
    return [("content-type", "application/json"), (TENANT_ID, tenant), (KEY_ID, "key_1"),
            (ROLES, "developer,,admin"), (PRINCIPAL, "service_account:sa_1"),
            (TEAM_ID, "team_1"), *extra.items(), ("authorization", "Bearer secret")]


def test_every_field_is_read_and_other_headers_are_ignored():
    caller = identity_from_metadata(headers(**{SCOPES: "api_1,api_2"}))
    assert caller == Identity(tenant_id="ten_a", key_id="key_1", roles=("developer", "admin"),
                              team_id="team_1", principal_kind="service_account",
                              principal_id="sa_1", scopes=("api_1", "api_2"))
    # gRPC metadata may carry bytes.
    as_bytes = [(k, v.encode()) for k, v in headers(**{SCOPES: "api_1,api_2"})]
    assert identity_from_metadata(as_bytes) == caller


def test_the_same_headers_give_the_same_identity_other_headers_another():
    first = identity_from_metadata(headers())
    assert identity_from_metadata(headers()) is first  # kept, not built again
    other = identity_from_metadata(headers("ten_b"))
    assert other.tenant_id == "ten_b" and first.tenant_id == "ten_a"
    with pytest.raises(AttributeError):
        first.tenant_id = "ten_b"  # type: ignore[misc] - shared, so it must be frozen


def test_no_tenant_is_refused_every_time():
    for _ in range(2):  # a refusal is never kept as an answer
        with pytest.raises(Unauthenticated):
            identity_from_metadata([(KEY_ID, "key_1")])
        with pytest.raises(Unauthenticated):
            identity_from_metadata(None)
