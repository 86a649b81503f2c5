"""RouterAdminService: the effective routing table and deployment health, and
a config reload on demand. Platform admins only (access policy at the edge,
checked again here for callers that reach the router directly)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from lockgate.errors import PermissionDenied
from lockgate.identity import identity_from_metadata
from lockgate.router.v1 import router_service_pb2 as pb
from lockgate.router.v1 import router_service_pb2_grpc as pb_grpc
from services.router.table import Deployment, TableHolder

PLATFORM_ADMIN = "platform_admin"


def deployment_status(d: Deployment) -> pb.DeploymentStatus:
    health = d.health
    return pb.DeploymentStatus(
        name=d.deployment,
        provider=d.provider_name,
        provider_type=d.provider_type,
        model=d.config.model,
        region=d.config.region,
        weight=d.config.weight,
        priority=d.config.priority,
        breaker_state=health.breaker.state,
        error_rate=health.breaker.error_rate(),
        consecutive_failures=health.breaker.consecutive_failures,
        in_flight=health.in_flight,
        latency_ms=(health.latency.value or 0.0) * 1000,
        ttft_ms=(health.ttft.value or 0.0) * 1000,
        calls=health.calls,
        failures=health.failures,
        last_error=health.last_error,
    )


class RouterAdminServicer(pb_grpc.RouterAdminServiceServicer):
    def __init__(
        self,
        tables: TableHolder,
        config_path: Path,
        reload: Callable[[], Awaitable[bool]],
        last_error: Callable[[], str],
    ):
        self.tables = tables
        self.config_path = config_path
        self._reload = reload
        self._last_error = last_error

    @staticmethod
    def _require_platform_admin(context) -> None:
        caller = identity_from_metadata(context.invocation_metadata())
        if PLATFORM_ADMIN not in caller.roles:
            raise PermissionDenied("the routing table needs the platform_admin role")

    async def GetRoutingTable(self, request, context) -> pb.GetRoutingTableResponse:
        self._require_platform_admin(context)
        table = self.tables.current
        aliases = [
            pb.AliasRoute(
                alias=name,
                kind=cfg.kind,
                strategy=cfg.strategy,
                deployments=cfg.deployments,
                retry_attempts=cfg.retry.attempts,
                cache_ttl_seconds=cfg.cache.ttl_seconds,
                description=cfg.description,
            )
            for name, cfg in sorted(table.config.models.items())
        ]
        return pb.GetRoutingTableResponse(
            generation=table.generation,
            config_path=str(self.config_path),
            last_reload_error=self._last_error(),
            aliases=aliases,
            deployments=[deployment_status(d) for _, d in sorted(table.deployments.items())],
        )

    async def ReloadGatewayConfig(self, request, context) -> pb.ReloadGatewayConfigResponse:
        self._require_platform_admin(context)
        applied = await self._reload()
        return pb.ReloadGatewayConfigResponse(
            applied=applied,
            generation=self.tables.current.generation,
            error="" if applied else self._last_error(),
        )
