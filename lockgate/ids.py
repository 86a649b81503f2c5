"""Object ids: a type prefix and 16 random bytes, URL-safe ("key_3f…")."""

from __future__ import annotations

import secrets


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"
