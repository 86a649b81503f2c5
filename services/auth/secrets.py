"""API key secrets: format, keyed hashing and constant-time verification.

A key looks like ``lg_<prefix 8>_<secret 32>`` (base62). The prefix is stored in
clear to find the row; the whole key is stored only as HMAC-SHA256 under a
server-side pepper, so a stolen database cannot be used to call the gateway.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import string
from pathlib import Path

_ALPHABET = string.ascii_letters + string.digits
KEY_PREFIX = "lg_"
PREFIX_LEN = 8
SECRET_LEN = 32
#: Anything longer is not one of our keys; refuse before hashing.
MAX_KEY_LEN = 128


def _random(n: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def new_secret() -> tuple[str, str]:
    """A new key and its public prefix."""
    prefix = _random(PREFIX_LEN)
    return f"{KEY_PREFIX}{prefix}_{_random(SECRET_LEN)}", prefix


def parse_prefix(key: str) -> str | None:
    """The lookup prefix of a well-formed key, else None (no DB lookup for junk)."""
    if len(key) != len(KEY_PREFIX) + PREFIX_LEN + 1 + SECRET_LEN or not key.startswith(KEY_PREFIX):
        return None
    prefix, sep, secret = key[len(KEY_PREFIX) :].partition("_")
    if sep != "_" or len(prefix) != PREFIX_LEN or len(secret) != SECRET_LEN:
        return None
    if not (prefix.isalnum() and secret.isalnum() and prefix.isascii() and secret.isascii()):
        return None
    return prefix


class KeyHasher:
    def __init__(self, pepper: bytes):
        if len(pepper) < 16:
            raise ValueError("the key pepper must be at least 16 bytes")
        self._pepper = pepper

    def hash(self, key: str) -> str:
        return hmac.new(self._pepper, key.encode(), hashlib.sha256).hexdigest()

    def verify(self, key: str, stored_hash: str) -> bool:
        return hmac.compare_digest(self.hash(key), stored_hash)


def load_or_create_pepper(path: Path, from_env: str | None) -> bytes:
    """The pepper from settings (for replicas sharing a database) or a 0600 file."""
    if from_env:
        return from_env.encode()
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    pepper = secrets.token_hex(32).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pepper)
    return pepper
