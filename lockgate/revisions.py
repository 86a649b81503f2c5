"""Optimistic concurrency for admin objects (auth and registry alike): every
mutable row carries a `revision`, its etag; updates name the fields they change
in an update mask and may pass the etag they last read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from lockgate.errors import Conflict, InvalidRequest


def etag_of(obj: Any) -> str:
    """The opaque etag of a mutable object: its revision."""
    return f"r{obj.revision}"


def check_etag(obj: Any, etag: str) -> None:
    """Conflict (409 / ABORTED) when the caller read an older revision; "" skips the check."""
    if etag and etag != etag_of(obj):
        raise Conflict(
            "the object changed since it was read (etag mismatch): read it again, then retry",
            param="etag",
        )


def touch(obj: Any) -> None:
    """A new revision (and etag), stamped now."""
    obj.revision += 1
    obj.updated_at = datetime.now(UTC)


def require_mask(paths: list[str], allowed: tuple[str, ...]) -> list[str]:
    """The update mask's paths, validated: non-empty, known, no duplicates."""
    if not paths:
        raise InvalidRequest(f"update_mask is required; updatable fields: {list(allowed)}",
                             param="update_mask")
    unknown = sorted(set(paths) - set(allowed))
    if unknown:
        # Names come from the caller: a few, cut short, never a whole payload.
        shown = [name[:60] for name in unknown[:5]] + (["..."] if len(unknown) > 5 else [])
        raise InvalidRequest(
            f"update_mask: cannot update {shown}; updatable fields: {list(allowed)}",
            param="update_mask",
        )
    return list(dict.fromkeys(paths))
