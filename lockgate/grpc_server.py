"""grpc.aio server bootstrap shared by every service: health, reflection,
request-id / error / metrics interceptors, Prometheus endpoint, graceful stop.

A service provides a `register(server)` callback that adds its servicers and
returns their full service names; everything else is here.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from lockgate.errors import LockgateError, as_lockgate_error
from lockgate.logs import request_id_var
from lockgate.metrics import GRPC_LATENCY, GRPC_REQUESTS, start_metrics_server
from lockgate.settings import ServiceSettings

log = logging.getLogger("lockgate.grpc")

REQUEST_ID_HEADER = "x-request-id"
ERROR_CODE_TRAILER = "x-lockgate-error-code"
#: Bounded request messages: 8 MiB unless a service asks otherwise.
DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024


def metadata_value(metadata: Any, key: str) -> str | None:
    """First value of a (lower-case) metadata key, or None."""
    for item in metadata or ():
        if item[0] == key:
            value = item[1]
            return value.decode() if isinstance(value, bytes) else value
    return None


class _CallGuard:
    """Per-call bookkeeping: request id in the log context, metrics, error mapping."""

    __slots__ = ("service", "method", "request_id", "start", "code", "token")

    def __init__(self, service: str, method: str, request_id: str):
        self.service, self.method, self.request_id = service, method, request_id
        self.code = grpc.StatusCode.OK

    def __enter__(self) -> _CallGuard:
        self.start = time.perf_counter()
        self.token = request_id_var.set(self.request_id)
        return self

    def __exit__(self, *exc: object) -> None:
        GRPC_LATENCY.labels(self.service, self.method).observe(time.perf_counter() - self.start)
        GRPC_REQUESTS.labels(self.service, self.method, self.code.name).inc()
        request_id_var.reset(self.token)

    async def fail(self, exc: BaseException, context: grpc.aio.ServicerContext) -> None:
        """Abort the call with the mapped status; unknown errors become INTERNAL."""
        if not isinstance(exc, LockgateError):
            log.error("unhandled error in %s", self.method, exc_info=exc)
        error = as_lockgate_error(exc, self.request_id)
        self.code = error.status.grpc
        trailers = ((ERROR_CODE_TRAILER, error.code),) if error.code else ()
        await context.abort(self.code, error.message, trailing_metadata=trailers)


class LockgateInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every application handler (health and reflection are left alone)."""

    def __init__(self, service: str):
        self.service = service

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        method = details.method
        if handler is None or method.startswith("/grpc."):
            return handler
        request_id = metadata_value(details.invocation_metadata, REQUEST_ID_HEADER) or str(
            uuid.uuid4()
        )
        short = method.rsplit("/", 1)[-1]
        service = self.service

        if handler.unary_unary and inspect.iscoroutinefunction(handler.unary_unary):
            behavior = handler.unary_unary

            async def unary_unary(request, context):
                with _CallGuard(service, short, request_id) as guard:
                    try:
                        return await behavior(request, context)
                    except (grpc.aio.AbortError, asyncio.CancelledError):
                        guard.code = context.code() or grpc.StatusCode.CANCELLED
                        raise
                    except Exception as exc:  # noqa: BLE001 - the error boundary
                        await guard.fail(exc, context)

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream and inspect.isasyncgenfunction(handler.unary_stream):
            behavior = handler.unary_stream

            async def unary_stream(request, context):
                with _CallGuard(service, short, request_id) as guard:
                    try:
                        async for item in behavior(request, context):
                            yield item
                    except (grpc.aio.AbortError, asyncio.CancelledError):
                        guard.code = context.code() or grpc.StatusCode.CANCELLED
                        raise
                    except Exception as exc:  # noqa: BLE001 - the error boundary
                        await guard.fail(exc, context)

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, handler.request_deserializer, handler.response_serializer
            )
        return handler


class GrpcService:
    """A running grpc.aio server with health, reflection and metrics."""

    def __init__(
        self,
        name: str,
        settings: ServiceSettings,
        register: Callable[[grpc.aio.Server], Iterable[str]],
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ):
        self.name = name
        self.settings = settings
        self.server = grpc.aio.server(
            interceptors=[LockgateInterceptor(name)],
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", max_message_bytes),
                ("grpc.so_reuseport", 0),
            ],
        )
        self.health = health_aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.service_names = list(register(self.server))
        reflection.enable_server_reflection(
            [*self.service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
             reflection.SERVICE_NAME],
            self.server,
        )
        self.port: int | None = None
        self.metrics_port: int | None = None
        #: Whether this service's /metrics also shows what its process's services
        #: share (lockgate.metrics.ServiceMetrics): the first service of a process.
        self.process_metrics = True
        #: Things that run beside the server (watchers): `start()` once it
        #: serves, `await close()` once it stopped.
        self.background: list = []

    async def start(self) -> int:
        self.port = self.server.add_insecure_port(f"{self.settings.host}:{self.settings.grpc_port}")
        await self.server.start()
        self.metrics_port = start_metrics_server(
            self.settings.host, self.settings.metrics_port, self.name, self.process_metrics
        )
        for service in ["", *self.service_names]:
            await self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        for task in self.background:
            task.start()
        log.info(
            "serving",
            extra={"server": self.name, "grpc_port": self.port, "metrics_port": self.metrics_port},
        )
        return self.port

    async def stop(self, grace: float | None = None) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(self.settings.grace_seconds if grace is None else grace)
        for task in self.background:
            await task.close()


def run(main: Callable[[], Awaitable[None]]) -> None:
    """Run a service's async main on uvloop."""
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:  # pragma: no cover - uvloop is a pinned dependency
        asyncio.run(main())
