"""Registry process wiring: settings -> migrations -> service -> gRPC server."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import SettingsConfigDict

from lockgate.db import open_database
from lockgate.grpc_server import GrpcService
from lockgate.registry.v1 import registry_service_pb2 as pb
from lockgate.registry.v1 import registry_service_pb2_grpc as pb_grpc
from lockgate.settings import ServiceSettings
from services.registry.service import RegistryService
from services.registry.servicer import RegistryServicer

MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RegistryService"].full_name


class RegistrySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LOCKGATE_REGISTRY_", extra="ignore", frozen=True)


async def build(settings: RegistrySettings) -> tuple[GrpcService, RegistryService, object]:
    """Migrate the schema and assemble the server; returns (server, service, engine)."""
    url = settings.db_url("registry")
    engine, sessions = await open_database(url, MIGRATIONS, "alembic_version_registry")
    service = RegistryService(sessions)

    def register(server) -> list[str]:
        pb_grpc.add_RegistryServiceServicer_to_server(RegistryServicer(service), server)
        return [SERVICE_NAME]

    return GrpcService("registry", settings, register), service, engine
