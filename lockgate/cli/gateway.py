"""Calling the gateway's gRPC APIs from the CLI: channel from a URL, bearer
metadata, and gRPC errors turned into one clear line."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar
from urllib.parse import urlsplit

import grpc

from lockgate.cli.errors import CliError

T = TypeVar("T")

_HINTS = {
    grpc.StatusCode.UNAVAILABLE: "is the stack running? see `lockgate status`",
    grpc.StatusCode.UNAUTHENTICATED: "check the admin key: --key, LOCKGATE_KEY or admin.key",
    grpc.StatusCode.PERMISSION_DENIED: "the key is not allowed to do this",
    grpc.StatusCode.DEADLINE_EXCEEDED: "the gateway did not answer in time, see --timeout",
}


def parse_target(url: str) -> tuple[str, bool]:
    """(host:port, use_tls) from `host:port`, `http://host:port[/...]` or `https://host[:port]`."""
    url = url.strip()
    if "://" not in url:
        return url.rstrip("/"), False
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CliError(f"unsupported gateway URL {url!r} (use host:port or http(s)://host:port)", 2)
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}", tls


@contextmanager
def channel(url: str) -> Iterator[grpc.Channel]:
    target, tls = parse_target(url)
    if tls:
        ch = grpc.secure_channel(target, grpc.ssl_channel_credentials())
    else:
        ch = grpc.insecure_channel(target)
    with ch:
        yield ch


def bearer(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


def describe_rpc_error(exc: grpc.RpcError) -> str:
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else None
    name = code.name if code is not None else "UNKNOWN"
    message = f"{name}: {details or 'no details'}"
    hint = _HINTS.get(code)
    return f"{message} (hint: {hint})" if hint else message


def call(fn: Callable[[], T]) -> T:
    """Run one RPC; a gRPC failure becomes a CliError with code and message."""
    try:
        return fn()
    except grpc.RpcError as exc:
        raise CliError(describe_rpc_error(exc)) from None
