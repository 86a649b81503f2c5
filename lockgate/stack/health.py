"""Health checks for children, as small values that can be saved in stack.json.

The supervisor polls them while starting and after restarts; `lockgate status`
rebuilds them from stack.json (`from_dict`) to probe a stack it did not start.
Any object with `async __call__(time_limit) -> bool` and `describe() -> dict` works,
which is how tests inject their own.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit


class HealthCheck(Protocol):
    async def __call__(self, time_limit: float = 1.0) -> bool: ...

    def describe(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class HttpCheck:
    """Healthy when GET <url> answers 200 (plain HTTP/1.1, no client library)."""

    url: str

    async def __call__(self, time_limit: float = 1.0) -> bool:
        try:
            return await asyncio.wait_for(self._get_status(), time_limit) == 200
        except (OSError, TimeoutError, ValueError, IndexError):
            return False

    async def _get_status(self) -> int:
        parts = urlsplit(self.url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
            status_line = await reader.readline()
            return int(status_line.split()[1])
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass

    def describe(self) -> dict[str, str]:
        return {"kind": "http", "url": self.url}


@dataclass(frozen=True)
class GrpcCheck:
    """Healthy when grpc.health.v1.Health/Check answers SERVING."""

    target: str
    service: str = ""

    async def __call__(self, time_limit: float = 1.0) -> bool:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        request = health_pb2.HealthCheckRequest(service=self.service)
        try:
            async with grpc.aio.insecure_channel(self.target) as channel:
                call = health_pb2_grpc.HealthStub(channel).Check(request, timeout=time_limit)
                reply = await asyncio.wait_for(call, time_limit + 0.5)
        except (TimeoutError, grpc.RpcError, OSError):
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    def describe(self) -> dict[str, str]:
        return {"kind": "grpc", "target": self.target, "service": self.service}


@dataclass(frozen=True)
class AllOf:
    """Healthy when every check is (a process hosting several services)."""

    checks: tuple[HealthCheck, ...]

    async def __call__(self, time_limit: float = 1.0) -> bool:
        return all(await asyncio.gather(*(check(time_limit) for check in self.checks)))

    def describe(self) -> dict[str, str]:
        return {"kind": "all", "checks": json.dumps([c.describe() for c in self.checks])}


def from_dict(data: dict[str, str]) -> HealthCheck:
    """The check `describe()` produced; ValueError for an unknown kind."""
    kind = data.get("kind")
    if kind == "http":
        return HttpCheck(data["url"])
    if kind == "grpc":
        return GrpcCheck(data["target"], data.get("service", ""))
    if kind == "all":
        return AllOf(tuple(from_dict(check) for check in json.loads(data["checks"])))
    raise ValueError(f"unknown health check kind {kind!r}")
