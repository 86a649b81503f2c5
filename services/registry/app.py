"""Registry process wiring: settings -> migrations -> service -> gRPC server."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import grpc
from pydantic_settings import SettingsConfigDict

from lockgate.db import open_database
from lockgate.decision_log import DecisionLog
from lockgate.grpc_server import GrpcService
from lockgate.policy_source import build_policy
from lockgate.registry.v1 import registry_service_pb2 as pb
from lockgate.registry.v1 import registry_service_pb2_grpc as pb_grpc
from lockgate.settings import PolicySettings
from lockgate.webhook import Webhook
from services.registry.service import RegistryService
from services.registry.servicer import RegistryServicer

MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RegistryService"].full_name


class RegistrySettings(PolicySettings):
    model_config = SettingsConfigDict(env_prefix="LOCKGATE_REGISTRY_", extra="ignore", frozen=True)

    #: Where subscription requests and decisions are POSTed (empty: nowhere).
    webhook_url: str = ""
    #: Signs webhook bodies (x-lockgate-signature: sha256=HMAC) when set.
    webhook_secret: str = ""
    #: The ledger, asked when a version was last called (retirement gate); empty: unknown,
    #: so only forced retirements pass.
    ledger_address: str = ""
    #: Seconds between polls of the change feed behind the watch stream.
    watch_interval_seconds: float = 0.2


class LedgerLastCall:
    """When subscribers last called an API version, from the ledger's usage entries."""

    def __init__(self, address: str, timeout: float = 2.0):
        self.channel = grpc.aio.insecure_channel(address)
        self.timeout = timeout

    async def __call__(self, api_id: str, version: str) -> datetime | None:
        from lockgate.ledger.v1 import ledger_service_pb2 as ledger_pb
        from lockgate.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc

        reply = await ledger_grpc.LedgerServiceStub(self.channel).GetLastCall(
            ledger_pb.GetLastCallRequest(api_id=api_id, api_version=version),
            timeout=self.timeout,
        )
        if not reply.HasField("last_call_time"):
            return None
        return reply.last_call_time.ToDatetime(tzinfo=UTC)

    def start(self) -> None:
        pass

    async def close(self) -> None:
        await self.channel.close()


async def build(settings: RegistrySettings) -> tuple[GrpcService, RegistryService, object]:
    """Migrate the schema and assemble the server; returns (server, service, engine)."""
    url = settings.db_url("registry")
    engine, sessions = await open_database(url, MIGRATIONS, "alembic_version_registry")
    policy = build_policy(settings)
    decisions = (DecisionLog(settings.data_dir / "decisions-registry.jsonl", "registry")
                 if settings.decision_log else None)
    webhook = (Webhook(settings.webhook_url, source="registry", secret=settings.webhook_secret)
               if settings.webhook_url else None)
    last_call = LedgerLastCall(settings.ledger_address) if settings.ledger_address else None
    service = RegistryService(sessions, policy, decision_log=decisions, last_call=last_call,
                              webhook=webhook, watch_interval=settings.watch_interval_seconds)

    def register(server) -> list[str]:
        pb_grpc.add_RegistryServiceServicer_to_server(RegistryServicer(service), server)
        return [SERVICE_NAME]

    server = GrpcService("registry", settings, register)
    server.background.extend(
        task for task in (policy, decisions, webhook, last_call, service.hub) if task is not None
    )
    return server, service, engine
