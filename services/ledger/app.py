"""Ledger process wiring: settings -> migrations -> service -> gRPC server."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from envoy.service.ratelimit.v3 import rls_pb2_grpc as rls_grpc
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from lockgate.db import open_database
from lockgate.grpc_server import GrpcService
from lockgate.ledger.v1 import ledger_service_pb2 as pb
from lockgate.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from lockgate.settings import ServiceSettings
from lockgate.webhook import Webhook
from services.ledger import als
from services.ledger.admission import Gate
from services.ledger.admit_http import admit_server
from services.ledger.budget_alerts import ThresholdAlerts
from services.ledger.budget_counters import MemoryCounters, RedisCounters
from services.ledger.budgets import BudgetBook
from services.ledger.call_log import CallLogService
from services.ledger.call_log_retention import CallLogRetention
from services.ledger.call_log_writer import CallLogWriter
from services.ledger.edge_ratelimit import SERVICE_NAME as RATE_LIMIT_SERVICE_NAME
from services.ledger.edge_ratelimit import EdgeRateLimiter
from services.ledger.limits import LimitRefresher, RateLimitService
from services.ledger.prices import PriceService
from services.ledger.rate_counters import build_counters
from services.ledger.service import LedgerService
from services.ledger.servicer import LedgerServicer

MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["LedgerService"].full_name


class LedgerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LOCKGATE_LEDGER_", extra="ignore", frozen=True)

    #: Redis for counters shared by ledger replicas (budgets, rate limits); empty:
    #: counters live in this process (one ledger replica).
    redis_url: str = ""
    #: Receives budget threshold events (50/80/100 %) as JSON POSTs; empty: none sent.
    budget_webhook_url: str = ""
    #: Signs budget webhook bodies (x-lockgate-signature: sha256=HMAC) when set.
    budget_webhook_secret: str = ""
    #: Seconds between re-reads of the budgets (changes made through other replicas).
    budget_refresh_seconds: float = 5.0
    #: Seconds between reconciliations of budget spend with the recorded usage.
    budget_reconcile_seconds: float = 30.0
    #: Seconds between re-reads of the rate limits (changes made through other replicas).
    rate_limit_refresh_seconds: float = 5.0
    #: Days call records and logged bodies are kept (0: kept forever).
    call_log_retention_days: int = Field(default=30, ge=0)
    #: Seconds between retention runs (each deletes in chunks).
    call_log_prune_interval_seconds: float = Field(default=3600.0, gt=0)
    #: Port of Admit over HTTP/1.1 (services/ledger/admit_http.py), which the router
    #: asks on its hot path (0: any free port, -1: none, only the gRPC Admit).
    admit_port: int = -1
    #: Call records waiting to be written; when full, Envoy's access log stream is
    #: not read until there is room (Envoy buffers, then drops).
    call_log_queue_size: int = Field(default=10_000, ge=1)


async def build(settings: LedgerSettings) -> tuple[GrpcService, LedgerService, object]:
    """Migrate the schema and assemble the server; returns (server, service, engine)."""
    url = settings.db_url("ledger")
    engine, sessions = await open_database(url, MIGRATIONS, "alembic_version_ledger")
    webhook = (Webhook(settings.budget_webhook_url, source="ledger",
                       secret=settings.budget_webhook_secret)
               if settings.budget_webhook_url else None)
    budgets = BudgetBook(
        sessions,
        RedisCounters(settings.redis_url) if settings.redis_url else MemoryCounters(),
        ThresholdAlerts(sessions, webhook),
        refresh_seconds=settings.budget_refresh_seconds,
        reconcile_seconds=settings.budget_reconcile_seconds,
    )
    await budgets.load()
    limits = RateLimitService(sessions, build_counters(settings.redis_url))
    await limits.load()
    gate = Gate(budgets, limits)
    service = LedgerService(sessions, listeners=[budgets, limits])

    # Envoy's access log -> the call log (services/ledger/als.py).
    call_log = CallLogWriter(sessions, max_queue=settings.call_log_queue_size)

    def register(server) -> list[str]:
        servicer = LedgerServicer(service, budgets=budgets, gate=gate,
                                  prices=PriceService(sessions), limits=limits,
                                  calls=CallLogService(sessions))
        pb_grpc.add_LedgerServiceServicer_to_server(servicer, server)
        # Envoy's global rate limit service (the requests-per-minute limits).
        rls_grpc.add_RateLimitServiceServicer_to_server(EdgeRateLimiter(limits), server)
        return [SERVICE_NAME, RATE_LIMIT_SERVICE_NAME, *als.add_to_server(call_log, server)]

    server = GrpcService("ledger", settings, register)
    if settings.admit_port >= 0:
        admit_http = admit_server(gate, settings.host, settings.admit_port)
        await admit_http.listen()
        server.background.append(admit_http)
    server.background.extend(task for task in (webhook, budgets) if task is not None)
    server.background.append(LimitRefresher(limits, settings.rate_limit_refresh_seconds))
    server.background.append(call_log)  # closed after the server stopped: flushes the queue
    if settings.call_log_retention_days:
        server.background.append(CallLogRetention(
            sessions, timedelta(days=settings.call_log_retention_days),
            interval=settings.call_log_prune_interval_seconds,
        ))
    return server, service, engine
