"""Router process wiring: settings -> gateway config -> providers -> gRPC server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic_settings import SettingsConfigDict

from lockgate.decision_log import DecisionLog
from lockgate.governance_view import GovernanceView
from lockgate.grpc_server import GrpcService
from lockgate.lean_http import LeanHttpClient, LeanHttpServer
from lockgate.policy_source import build_policy
from lockgate.prices import PriceBook
from lockgate.router.v1 import router_service_pb2 as pb
from lockgate.router.v1 import router_service_pb2_grpc as pb_grpc
from lockgate.settings import PolicySettings
from lockgate.upstream_client import UpstreamClient
from services.router import tokens
from services.router.admin import RouterAdminServicer
from services.router.admission import AdmissionClient, GrpcAdmit, HttpAdmit
from services.router.cache import build_cache
from services.router.call_bodies import BodyLog
from services.router.config import DEFAULT_CONFIG, GatewayConfig, load_gateway_config
from services.router.edge import Edge
from services.router.health import HealthBoard
from services.router.http_edge import edge_server
from services.router.metering import UsageRecorder
from services.router.price_sync import PriceSync
from services.router.prompt_api import PromptApis
from services.router.reload import GENERATION, ConfigWatcher
from services.router.routing_policy import RoutingPolicy
from services.router.service import Router
from services.router.servicer import RouterServicer
from services.router.spool import fsync_interval
from services.router.table import TableHolder, build_table

if TYPE_CHECKING:  # auth's modules are imported only where auth is hosted too
    from services.auth.check import Checker

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RouterService"].full_name
ADMIN_SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RouterAdminService"].full_name


class RouterSettings(PolicySettings):
    model_config = SettingsConfigDict(env_prefix="LOCKGATE_ROUTER_", extra="ignore", frozen=True)

    #: Gateway config YAML; default: the embedded services/router/default_gateway.yaml.
    gateway_config: Path | None = None
    ledger_address: str = "127.0.0.1:50063"
    #: Port of the provider-compatible endpoints over HTTP/1.1, which Envoy forwards
    #: the hot REST calls to (services/router/http_edge.py; 0: any free port, -1: none).
    http_port: int = -1
    #: Largest request body that listener reads (Envoy's own limit comes first).
    http_max_body_bytes: int = 8 * 1024 * 1024
    #: That listener runs auth's access check on each call itself (auth must be
    #: hosted in the same process: `python -m services router auth`), and Envoy
    #: must not (services/router/access.py). `lockgate up` sets it with the layout.
    check_access: bool = False
    #: host:port of the ledger's HTTP/1.1 Admit (its LOCKGATE_LEDGER_ADMIT_PORT);
    #: empty: admission checks go over gRPC to ledger_address.
    ledger_admit_address: str = ""
    #: Provider calls in flight at once, unary and streamed, over all providers
    #: (a stream holds its connection to its end).
    max_upstream_connections: int = 2000
    #: Bound of the usage spool (entries the ledger has not acknowledged yet);
    #: when it is full the router answers 503 instead of serving unmetered calls.
    max_usage_spool_bytes: int = 1 << 30
    #: How often spooled usage entries are flushed to disk, in ms: a power loss can
    #: take the entries of the last interval (0: every entry; negative: never,
    #: which still survives a crash of the router process). See spool.py.
    spool_fsync_interval_ms: int = 100
    #: Seconds between reads of the ledger's price book (admin-set prices); 0: never
    #: (the shipped list prices only).
    price_refresh_seconds: float = 30.0
    #: Seconds between checks of the gateway config file for changes (0: never).
    config_reload_interval: float = 1.0
    #: When the ledger cannot answer an admission check (budgets, token limits):
    #: "open" lets the call through unchecked, "closed" answers 503.
    admission_failure_mode: Literal["open", "closed"] = "open"
    #: How long an admission check may take before the failure mode applies.
    admission_timeout_seconds: float = 1.0
    #: Ask the ledger for admission tickets for busy callers, so that most of their
    #: calls go ahead without a round trip (services/router/admission_tickets.py);
    #: false: every call asks for itself.
    admission_tickets: bool = True
    #: Output tokens a budget reservation assumes when a request sets no max_tokens.
    default_max_output_tokens: int = 4096
    #: The registry, whose watch stream carries the prompt APIs the router invokes
    #: (empty: no prompt APIs).
    registry_address: str = ""


class AccessCheckUnavailable(Exception):
    """check_access is set but no access checker was given (auth is not co-hosted)."""


class RouterApp:
    """Everything the router process owns, so it can be started and closed as one."""

    def __init__(self, settings: RouterSettings):
        self.settings = settings
        self.config_path = settings.gateway_config or DEFAULT_CONFIG
        self.config = load_gateway_config(self.config_path)
        self.policy = build_policy(settings)
        #: Every provider call, unary or streamed (lockgate/upstream_client.py).
        self.upstream: UpstreamClient | None = None
        self.tables: TableHolder | None = None
        self.health = HealthBoard(
            self.config.routing.circuit_breaker, self.config.routing.latency_ewma_alpha
        )
        self.watcher: ConfigWatcher | None = None
        self.router: Router | None = None
        self._closing: set[asyncio.Task] = set()  # old caches being closed after a reload
        self.recorder = UsageRecorder(
            settings.ledger_address,
            settings.data_dir / "spool",
            max_spool_bytes=settings.max_usage_spool_bytes,
            fsync_interval=fsync_interval(settings.spool_fsync_interval_ms),
        )
        # Admin-set prices from the ledger: a new book swaps in a table priced with it.
        self.price_sync = PriceSync(
            self.recorder.stub, self.apply_prices, interval=settings.price_refresh_seconds
        )
        self.server: GrpcService | None = None
        self.admit_client: LeanHttpClient | None = None
        self.http_edge: LeanHttpServer | None = None

    async def build_server(self, access_checker: Checker | None = None) -> GrpcService:
        """Upstream connections, providers, the usage recorder and the (unstarted)
        server. `access_checker`: auth's, when auth is hosted in this process (used
        only when check_access is set, and then required)."""
        access = None
        if self.settings.check_access:
            if access_checker is None:
                raise AccessCheckUnavailable(
                    "LOCKGATE_ROUTER_CHECK_ACCESS is set, but auth is not hosted in this"
                    " process: run `python -m services router auth`, or unset it")
            from services.router.access import InProcessAccess

            access = InProcessAccess(access_checker)
        self.upstream = UpstreamClient(max_connections=self.settings.max_upstream_connections)
        self.tables = TableHolder(
            build_table(self.config, 1, self.health, self.price_sync.book, upstream=self.upstream)
        )
        GENERATION.set(1)
        self.decisions = (
            DecisionLog(self.settings.data_dir / "decisions-router.jsonl", "router")
            if self.settings.decision_log else None
        )
        self.router = router = Router(
            self.tables, self.recorder, RoutingPolicy(self.policy, decision_log=self.decisions),
            build_cache(self.config.routing.cache),
            AdmissionClient(
                self._admit_transport(),
                failure_mode=self.settings.admission_failure_mode,
                timeout_seconds=self.settings.admission_timeout_seconds,
                default_max_output_tokens=self.settings.default_max_output_tokens,
                tickets=self.settings.admission_tickets,
            ),
        )
        # The tokenizer takes ~0.5 s to load: not on the first request that needs it.
        await asyncio.to_thread(tokens.encoding)
        await self.recorder.start()
        self.watcher = ConfigWatcher(
            self.config_path, self.apply_config, self.settings.config_reload_interval
        )
        admin = RouterAdminServicer(
            self.tables, self.config_path, self.watcher.reload, lambda: self.watcher.last_error
        )

        governance = (GovernanceView(self.settings.registry_address, "router")
                      if self.settings.registry_address else None)
        prompts = PromptApis(governance)
        # Bodies of calls to APIs that opted in (the registry says which), redacted.
        router.body_log = BodyLog(governance, self.config.call_log)

        def register(server) -> list[str]:
            pb_grpc.add_RouterServiceServicer_to_server(RouterServicer(router, prompts), server)
            pb_grpc.add_RouterAdminServiceServicer_to_server(admin, server)
            return [SERVICE_NAME, ADMIN_SERVICE_NAME]

        self.server = GrpcService("router", self.settings, register)
        if self.settings.http_port >= 0:
            self.http_edge = edge_server(Edge(router), self.settings.host,
                                         self.settings.http_port,
                                         self.settings.http_max_body_bytes, access)
            await self.http_edge.listen()
            self.server.background.append(self.http_edge)
        # Hot reload of the gateway config and of the routing policy.
        self.server.background += [self.watcher, self.policy]
        self.server.background.append(self.price_sync)  # admin-set prices
        # Hands back unused admission tickets; closed before the admit client.
        self.server.background.append(router.admission)
        if governance is not None:
            self.server.background.append(governance)  # prompt APIs from the registry
        if self.decisions is not None:
            self.server.background.append(self.decisions)
        return self.server

    async def start(self, access_checker: Checker | None = None) -> int:
        return await (await self.build_server(access_checker)).start()

    def apply_config(self, config: GatewayConfig) -> None:
        """Swap in a new routing table (in-flight calls keep the old one)."""
        assert self.tables is not None and self.upstream is not None
        current = self.tables.current
        self.tables.current = build_table(
            config, current.generation + 1, self.health, self.price_sync.book,
            previous=current, upstream=self.upstream,
        )
        if config.routing.cache != self.config.routing.cache and self.router is not None:
            old, self.router.cache = self.router.cache, build_cache(config.routing.cache)
            if old is not None:
                task = asyncio.get_running_loop().create_task(old.close())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
        if self.router is not None and self.router.body_log is not None:
            self.router.body_log.configure(config.call_log)
        self.config = config
        GENERATION.set(self.tables.current.generation)

    def apply_prices(self, book: PriceBook) -> None:
        """Swap in a table priced with `book` (in-flight calls keep the old one)."""
        if self.tables is None or self.upstream is None:
            return  # not serving yet: the first table is built with the sync's book
        current = self.tables.current
        self.tables.current = build_table(
            self.config, current.generation + 1, self.health, book,
            previous=current, upstream=self.upstream,
        )
        GENERATION.set(self.tables.current.generation)

    def _admit_transport(self) -> GrpcAdmit | HttpAdmit:
        address = self.settings.ledger_admit_address
        if not address:
            return GrpcAdmit(self.recorder.channel)
        host, _, port = address.rpartition(":")
        self.admit_client = LeanHttpClient(host or "127.0.0.1", int(port))
        return HttpAdmit(self.admit_client)

    async def close(self) -> None:
        """After the gRPC server drained: flush usage, close upstream connections."""
        await self.recorder.close()
        if self.router is not None and self.router.cache is not None:
            await self.router.cache.close()
        if self.upstream is not None:
            self.upstream.close()
        if self.admit_client is not None:
            self.admit_client.close()
