"""Opaque page tokens: callers pass back what they were given, nothing else."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import TypeVar

import orjson

from lockgate.errors import InvalidRequest

T = TypeVar("T")

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 50


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidRequest("page_size must not be negative", param="page_size")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(token: str) -> int | None:
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        version, value = raw.split(":", 1)
        if version != "v1":
            raise ValueError(version)
        return int(value)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("invalid page_token", param="page_token") from None


def page_of(rows: list[T], size: int, position: Callable[[T], int]) -> tuple[list[T], str]:
    """Rows fetched with a limit of size + 1 -> (the page, the token of the next one)."""
    if len(rows) > size:
        rows = rows[:size]
        return rows, encode_cursor(position(rows[-1]))
    return rows, ""


def encode_position(*values: str) -> str:
    """A page token for keyset pagination on text columns (sort value, id)."""
    raw = orjson.dumps(["v2", *values])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_position(token: str, size: int) -> tuple[str, ...] | None:
    """The (sort value, id) a token stands for; InvalidRequest when it is not ours."""
    if not token:
        return None
    try:
        raw = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if (
            not isinstance(raw, list) or len(raw) != size + 1 or raw[0] != "v2"
            or not all(isinstance(v, str) for v in raw[1:])
        ):
            raise ValueError(raw)
        return tuple(raw[1:])
    except (ValueError, orjson.JSONDecodeError, UnicodeDecodeError):
        raise InvalidRequest("invalid page_token", param="page_token") from None
