"""One process hosting one or more services: `python -m services router auth`.

Each Python service costs ≈ 100 MB of resident memory in imports (gRPC,
SQLAlchemy, pydantic, regopy, protobuf descriptors) before it serves a call.
Services hosted together share those imports: they keep their own settings
(LOCKGATE_<NAME>_*), gRPC server, ports, database and background tasks, and
differ from separate processes only in sharing one event loop and one crash.
Each one's /metrics port shows its own metrics (lockgate/metrics.py). `lockgate
up` hosts the four services in two processes by default
(lockgate/stack/children.py; docs/operators.md, "Process layout").

`python -m services.<name>` runs one service through the same code.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from lockgate.grpc_server import GrpcService, run
from lockgate.logs import setup_logging
from lockgate.settings import ServiceSettings

log = logging.getLogger("lockgate.host")

#: Service name -> its settings class, in services/<name>/app.py.
SETTINGS_CLASSES = {
    "auth": "AuthSettings",
    "ledger": "LedgerSettings",
    "registry": "RegistrySettings",
    "router": "RouterSettings",
}
_LEVELS = ("debug", "info", "warning", "error", "critical")


class HostError(Exception):
    """A service cannot start as configured; the message says why (exit code 2)."""


@dataclass
class Hosted:
    name: str
    server: GrpcService
    #: Runs once the server has stopped (dispose the database, flush usage …).
    on_stop: Callable[[], Awaitable[None]]
    #: Auth's access check, which a router hosted alongside runs itself
    #: (services/router/access.py).
    access_checker: object | None = None


def load_settings(names: Sequence[str]) -> dict[str, ServiceSettings]:
    """Each service's settings, from its LOCKGATE_<NAME>_* variables."""
    unknown = [n for n in names if n not in SETTINGS_CLASSES]
    if unknown or not names or len(set(names)) != len(names):
        raise HostError(
            f"expected distinct service names out of {', '.join(SETTINGS_CLASSES)};"
            f" got {' '.join(names) or 'none'}"
        )
    loaded = {}
    for name in names:
        module = importlib.import_module(f"services.{name}.app")
        try:
            settings = getattr(module, SETTINGS_CLASSES[name])()
        except ValidationError as exc:
            raise HostError(_settings_problems(name, exc)) from None
        loaded[name] = settings
    return loaded


async def open_service(name: str, settings: ServiceSettings) -> Hosted:
    """Build service `name` but the router (migrations included), not yet serving."""
    if name == "auth":
        from services.auth.app import assemble

        parts = await assemble(settings)
        return Hosted(name, parts.server, parts.engine.dispose, parts.checker)
    module = importlib.import_module(f"services.{name}.app")
    server, _service, engine = await module.build(settings)
    return Hosted(name, server, engine.dispose)


def _router_app(settings: ServiceSettings):
    """The router's config read and its spool claimed: what it can find wrong
    before anything else is built."""
    from services.router.app import RouterApp
    from services.router.config import ConfigError
    from services.router.spool import SpoolInUse

    try:
        return RouterApp(settings)
    except ConfigError as exc:
        raise HostError(f"invalid gateway config:\n{exc}") from None
    except SpoolInUse as exc:
        raise HostError(f"{exc}; give each replica its own data dir") from None


async def _open_router(app, access_checker: object | None) -> Hosted:
    from services.router.app import AccessCheckUnavailable

    try:
        server = await app.build_server(access_checker)
    except AccessCheckUnavailable as exc:
        raise HostError(str(exc)) from None
    # Stopping drains in-flight calls first, then flushes usage and closes
    # upstream connections.
    return Hosted("router", server, app.close)


async def open_services(names: Sequence[str], settings: dict[str, ServiceSettings],
                        hosted: list[Hosted]) -> None:
    """Build the services of this process into `hosted`, in start order. The router
    comes last, since it may run auth's access check (services/router/access.py),
    and so stops first, draining its calls while auth is still whole; its config
    is read first all the same, so that a mistake there is what is reported."""
    router = _router_app(settings["router"]) if "router" in names else None
    for name in names:
        if name != "router":
            hosted.append(await open_service(name, settings[name]))
    if router is not None:
        checker = next((h.access_checker for h in hosted if h.access_checker), None)
        hosted.append(await _open_router(router, checker))


async def serve(hosted: Sequence[Hosted], stop: asyncio.Event) -> None:
    """Start every service in order, serve until `stop` is set, then stop them
    in reverse order (each drains its in-flight calls) and run their on_stop."""
    started: list[Hosted] = []
    try:
        for i, service in enumerate(hosted):
            # Each service's /metrics shows its own metrics; what they share only
            # the first one's, so that scraping every port counts nothing twice.
            service.server.process_metrics = i == 0
            await service.server.start()
            started.append(service)
        # Everything built so far (modules, config, caches) lives as long as the
        # process: keep it out of the garbage collector's full collections, which
        # otherwise walk ~150,000 objects (≈ 90 ms with the event loop stalled)
        # every few seconds under load (docs/performance.md).
        gc.collect()
        gc.freeze()
        await stop.wait()
        log.info("stopping")
    finally:
        for service in reversed(started):
            await service.server.stop()
        for service in reversed(hosted):
            await service.on_stop()
        log.info("stopped")


async def host(names: Sequence[str]) -> None:
    """The whole main of a service process: settings, JSON logs, build, serve
    until SIGTERM or SIGINT."""
    settings = load_settings(names)
    setup_logging("+".join(names), _most_verbose(s.log_level for s in settings.values()),
                  hosted=tuple(names))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    hosted: list[Hosted] = []
    try:
        await open_services(names, settings, hosted)
    except BaseException:
        for service in reversed(hosted):  # built, never started: release what they hold
            await service.on_stop()
        raise
    await serve(hosted, stop)


def main(argv: Sequence[str] | None = None, prog: str = "lockgate") -> None:
    names = list(sys.argv[1:] if argv is None else argv)
    try:
        run(lambda: host(names))
    except HostError as exc:
        print(f"{prog} {'+'.join(names)}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _settings_problems(name: str, exc: ValidationError) -> str:
    """`LOCKGATE_LEDGER_GRPC_PORT: Input should be a valid integer (got 'eighty')`, …"""
    lines = []
    for error in exc.errors():
        field = "_".join(str(part) for part in error["loc"]).upper()
        got = f" (got {error['input']!r})" if isinstance(error.get("input"), str) else ""
        lines.append(f"LOCKGATE_{name.upper()}_{field}: {error['msg']}{got}")
    return "invalid settings: " + "; ".join(lines)


def _most_verbose(levels) -> str:
    ranked = [lv.lower() for lv in levels if lv.lower() in _LEVELS]
    return min(ranked, key=_LEVELS.index) if ranked else "info"


if __name__ == "__main__":  # pragma: no cover - `python -m services` is the entry point
    main()
