"""A real router (in-process gRPC on port 0) with a real ledger and real
simulators, for the router's integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from lockgate.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc
from lockgate.router.v1 import router_service_pb2_grpc as pb_grpc
from lockgate.sim.config import SimConfig
from lockgate.sim.server import serve as serve_sim
from services.ledger.app import LedgerSettings
from services.ledger.app import build as build_ledger
from services.router.app import RouterApp, RouterSettings


async def start_ledger(tmp_path: Path, port: int = 0):
    """A ledger on `port` (0: any), with its HTTP Admit on a free port too."""
    settings = LedgerSettings(data_dir=tmp_path, grpc_port=port, admit_port=0)
    server, _service, engine = await build_ledger(settings)
    bound = await server.start()
    return server, engine, bound


def admit_port(ledger) -> int:
    """The port of a ledger's HTTP Admit (see start_ledger)."""
    return next(task.port for task in ledger.background if hasattr(task, "listen"))


@asynccontextmanager
async def simulators(configs: dict[str, SimConfig]) -> AsyncIterator[dict[str, int]]:
    """Simulators by name, yielding their ports."""
    runners, ports = [], {}
    try:
        for name, config in configs.items():
            runner, ports[name] = await serve_sim("127.0.0.1", 0, config)
            runners.append(runner)
        yield ports
    finally:
        for runner in runners:
            await runner.cleanup()


@dataclass
class RouterUnderTest:
    app: RouterApp
    router: pb_grpc.RouterServiceStub
    admin: pb_grpc.RouterAdminServiceStub
    ledger: ledger_grpc.LedgerServiceStub
    config_path: Path


@asynccontextmanager
async def running_router(
    tmp_path: Path, gateway_yaml: str, admit_over: str = "http", access_checker=None,
    **settings
) -> AsyncIterator[RouterUnderTest]:
    """A router on `gateway_yaml` (written to tmp_path/gateway.yaml) metering
    into a fresh ledger, asking it Admit over `admit_over` ("http", as `lockgate
    up` runs it, or "grpc"); `access_checker`: auth's, for check_access;
    `settings` go to RouterSettings."""
    config = tmp_path / "gateway.yaml"
    config.write_text(gateway_yaml)
    ledger, engine, ledger_port = await start_ledger(tmp_path)
    admit_address = f"127.0.0.1:{admit_port(ledger)}" if admit_over == "http" else ""
    app = RouterApp(RouterSettings(
        data_dir=tmp_path, grpc_port=0, gateway_config=config,
        ledger_address=f"127.0.0.1:{ledger_port}", ledger_admit_address=admit_address,
        **settings,
    ))
    port = await app.start(access_checker)
    router_channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    ledger_channel = grpc.aio.insecure_channel(f"127.0.0.1:{ledger_port}")
    try:
        yield RouterUnderTest(
            app=app,
            router=pb_grpc.RouterServiceStub(router_channel),
            admin=pb_grpc.RouterAdminServiceStub(router_channel),
            ledger=ledger_grpc.LedgerServiceStub(ledger_channel),
            config_path=config,
        )
    finally:
        await router_channel.close()
        await ledger_channel.close()
        await app.server.stop(0)
        await app.close()
        await ledger.stop(0)
        await engine.dispose()
