"""Ledger process wiring: settings -> migrations -> service -> gRPC server."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import SettingsConfigDict

from lockgate.db import open_database
from lockgate.grpc_server import GrpcService
from lockgate.ledger.v1 import ledger_service_pb2 as pb
from lockgate.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from lockgate.settings import ServiceSettings
from services.ledger.service import LedgerService
from services.ledger.servicer import LedgerServicer

MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["LedgerService"].full_name


class LedgerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LOCKGATE_LEDGER_", extra="ignore", frozen=True)


async def build(settings: LedgerSettings) -> tuple[GrpcService, LedgerService, object]:
    """Migrate the schema and assemble the server; returns (server, service, engine)."""
    url = settings.db_url("ledger")
    engine, sessions = await open_database(url, MIGRATIONS, "alembic_version_ledger")
    service = LedgerService(sessions)

    def register(server) -> list[str]:
        pb_grpc.add_LedgerServiceServicer_to_server(LedgerServicer(service), server)
        return [SERVICE_NAME]

    return GrpcService("ledger", settings, register), service, engine
