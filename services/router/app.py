"""Router process wiring: settings -> gateway config -> providers -> gRPC server."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from pydantic_settings import SettingsConfigDict

from lockgate.grpc_server import GrpcService
from lockgate.router.v1 import router_service_pb2 as pb
from lockgate.router.v1 import router_service_pb2_grpc as pb_grpc
from lockgate.settings import ServiceSettings
from services.router.config import load_gateway_config
from services.router.metering import UsageRecorder
from services.router.providers import build_provider
from services.router.service import Router
from services.router.servicer import RouterServicer

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RouterService"].full_name


class RouterSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LOCKGATE_ROUTER_", extra="ignore", frozen=True)

    #: Gateway config YAML; default: the embedded services/router/default_gateway.yaml.
    gateway_config: Path | None = None
    ledger_address: str = "127.0.0.1:50063"
    #: Upper bound on open connections to all providers.
    max_upstream_connections: int = 1000
    #: Bound of the usage spool (entries the ledger has not acknowledged yet);
    #: when it is full the router answers 503 instead of serving unmetered calls.
    max_usage_spool_bytes: int = 1 << 30


class RouterApp:
    """Everything the router process owns, so it can be started and closed as one."""

    def __init__(self, settings: RouterSettings):
        self.settings = settings
        self.config = load_gateway_config(settings.gateway_config)
        self.session: aiohttp.ClientSession | None = None
        self.recorder = UsageRecorder(
            settings.ledger_address,
            settings.data_dir / "spool",
            max_spool_bytes=settings.max_usage_spool_bytes,
        )
        self.server: GrpcService | None = None

    async def build_server(self) -> GrpcService:
        """Upstream connections, providers, the usage recorder and the (unstarted) server."""
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.settings.max_upstream_connections),
            auto_decompress=True,
        )
        providers = {
            name: build_provider(name, cfg, self.session)
            for name, cfg in self.config.providers.items()
        }
        router = Router(self.config, providers, self.recorder)
        await self.recorder.start()

        def register(server) -> list[str]:
            pb_grpc.add_RouterServiceServicer_to_server(RouterServicer(router), server)
            return [SERVICE_NAME]

        self.server = GrpcService("router", self.settings, register)
        return self.server

    async def start(self) -> int:
        return await (await self.build_server()).start()

    async def close(self) -> None:
        """After the gRPC server drained: flush usage, close upstream connections."""
        await self.recorder.close()
        if self.session is not None:
            await self.session.close()
