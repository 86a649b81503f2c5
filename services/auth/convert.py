"""Auth proto <-> domain conversion, and update masks read off the patches."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message

from lockgate.auth.v1 import auth_service_pb2 as pb
from lockgate.errors import InvalidRequest
from lockgate.revisions import etag_of
from lockgate.timestamps import to_timestamp
from services.auth.keys import key_status
from services.auth.models import ApiKey, AuditEvent, ServiceAccount, Team, Tenant
from services.auth.tenancy import UserView


def _ts(value: datetime | None):
    return to_timestamp(value) if value is not None else None


def tenant_to_proto(tenant: Tenant) -> pb.Tenant:
    return pb.Tenant(
        id=tenant.id, name=tenant.name, display_name=tenant.display_name,
        create_time=to_timestamp(tenant.created_at), update_time=_ts(tenant.updated_at),
        etag=etag_of(tenant),
    )


def team_to_proto(team: Team) -> pb.Team:
    return pb.Team(
        id=team.id, tenant_id=team.tenant_id, name=team.name, display_name=team.display_name,
        create_time=to_timestamp(team.created_at), update_time=_ts(team.updated_at),
        etag=etag_of(team),
    )


def user_to_proto(view: UserView) -> pb.User:
    user = view.user
    return pb.User(
        id=user.id, tenant_id=user.tenant_id, email=user.email, display_name=user.display_name,
        roles=user.roles, status=user.status,
        memberships=[pb.TeamMembership(team=team_id, roles=roles)
                     for team_id, roles in sorted(view.memberships.items())],
        create_time=to_timestamp(user.created_at), update_time=_ts(user.updated_at),
        etag=etag_of(user),
    )


def service_account_to_proto(account: ServiceAccount) -> pb.ServiceAccount:
    return pb.ServiceAccount(
        id=account.id, tenant_id=account.tenant_id, team_id=account.team_id, name=account.name,
        display_name=account.display_name, roles=account.roles, status=account.status,
        create_time=to_timestamp(account.created_at), update_time=_ts(account.updated_at),
        etag=etag_of(account),
    )


def key_to_proto(key: ApiKey) -> pb.ApiKey:
    return pb.ApiKey(
        id=key.id,
        tenant_id=key.tenant_id,
        name=key.name,
        prefix=f"lg_{key.prefix}",
        roles=key.roles,
        models=key.models,
        status=key_status(key),
        create_time=to_timestamp(key.created_at),
        team_id=key.team_id,
        owner_kind=key.owner_kind,
        owner_id=key.owner_id,
        scopes=key.scopes or [],
        expire_time=_ts(key.expires_at),
        last_used_time=_ts(key.last_used_at),
        revoke_time=_ts(key.revoked_at),
        replaced_by=key.replaced_by,
        update_time=_ts(key.updated_at),
        etag=etag_of(key),
    )


def audit_event_to_proto(event: AuditEvent) -> pb.AuditEvent:
    return pb.AuditEvent(
        id=event.id, tenant_id=event.tenant_id, actor_key_id=event.actor_key_id,
        actor_principal=event.actor_principal, action=event.action,
        object_type=event.object_type, object_id=event.object_id,
        before_digest=event.before_digest, after_digest=event.after_digest,
        decision_id=event.decision_id, create_time=to_timestamp(event.created_at),
    )


def memberships_from_proto(items) -> list[tuple[str, list[str]]]:
    return [(m.team, list(m.roles)) for m in items]


def patch_changes(patch: Message, mask_paths, readers: dict[str, Any]) -> dict[str, Any]:
    """{field: new value} for the masked fields of a patch (unknown paths are
    passed through so the use case can name them in its error)."""
    changes: dict[str, Any] = {}
    for path in mask_paths:
        reader = readers.get(path)
        changes[path] = reader(patch) if reader is not None else None
    return changes


def expire_time(message: Message) -> datetime | None:
    """A request's or patch's expire_time; None when unset (never expires)."""
    if not message.HasField("expire_time"):
        return None
    try:
        return message.expire_time.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):  # outside 0001-9999, or bad nanos
        raise InvalidRequest("expire_time is not a valid time", param="expire_time") from None


TENANT_READERS = {"display_name": lambda p: p.display_name}
TEAM_READERS = {"display_name": lambda p: p.display_name}
USER_READERS = {
    "display_name": lambda p: p.display_name,
    "roles": lambda p: list(p.roles),
    "memberships": lambda p: memberships_from_proto(p.memberships),
    "status": lambda p: p.status,
}
SERVICE_ACCOUNT_READERS = {
    "display_name": lambda p: p.display_name,
    "roles": lambda p: list(p.roles),
    "status": lambda p: p.status,
}
KEY_READERS = {
    "name": lambda p: p.name,
    "roles": lambda p: list(p.roles),
    "models": lambda p: list(p.models),
    "scopes": lambda p: list(p.scopes),
    "expire_time": expire_time,
}
