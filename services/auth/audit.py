"""The audit trail of admin mutations, written in the same transaction as the
change it describes (no change without its event, no event without its change).

An event names the actor, the action, the object, and sha256 digests of the
object's canonical JSON before and after — enough to prove what changed
without copying the data (or a key's hash) into the trail.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlmodel import SQLModel

from lockgate.identity import Identity
from lockgate.ids import new_id
from services.auth.models import AuditEvent, Change

#: Never part of a digest: a secret's hash is not the audit trail's business.
_EXCLUDED = {"secret_hash"}


def digest(obj: SQLModel | dict[str, Any] | None) -> str:
    if obj is None:
        return ""
    data = obj if isinstance(obj, dict) else obj.model_dump()
    canonical = {k: v for k, v in data.items() if k not in _EXCLUDED}
    raw = orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(raw).hexdigest()


def audit_event(
    caller: Identity | None,
    action: str,
    tenant_id: str,
    object_type: str,
    object_id: str,
    before: str,
    after: str,
    decision_id: str,
) -> AuditEvent:
    return AuditEvent(
        id=new_id("aud"),
        tenant_id=tenant_id,
        actor_key_id=caller.key_id if caller else "",
        actor_principal=caller.principal if caller else "system",
        action=action,
        object_type=object_type,
        object_id=object_id,
        before_digest=before,
        after_digest=after,
        decision_id=decision_id,
        created_at=datetime.now(UTC),
    )


def change(subject_kind: str, subject_id: str) -> Change:
    """A change-feed row: replicas drop the cached principals of this key or owner."""
    return Change(subject_kind=subject_kind, subject_id=subject_id, created_at=datetime.now(UTC))
