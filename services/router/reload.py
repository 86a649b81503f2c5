"""Hot reload of the gateway config: poll the file, validate, swap the table.

The file is checked every `interval` seconds (lockgate/watch.py: it also
sees a file replaced by a rename, as editors and ConfigMap updates do). A config that fails validation never replaces the
working one: the error is logged, counted, and shown by the routing-table
admin RPC until a good config loads. In-flight requests keep the table they
started with (table.py), so nothing is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from lockgate.metrics import Counter, Gauge
from lockgate.watch import PollingWatcher
from services.router.config import ConfigError, GatewayConfig, load_gateway_config

log = logging.getLogger("lockgate.router.reload")

RELOADS = Counter("lockgate_router_config_reloads_total", "Gateway config reloads", ["result"])
GENERATION = Gauge("lockgate_router_config_generation", "Generation of the routing table in use")


class ConfigWatcher:
    def __init__(
        self,
        path: Path,
        apply: Callable[[GatewayConfig], None],
        interval: float = 1.0,
    ):
        self.path = path
        self.apply = apply
        self.last_error = ""
        self.loaded_at = time.time()
        self.watcher = PollingWatcher(lambda: [self.path], self.reload, interval)

    def start(self) -> None:
        self.watcher.start()

    async def close(self) -> None:
        await self.watcher.close()

    async def reload(self) -> bool:
        """Load the file now; True when the new config is in use."""
        self.watcher.mark_seen()
        try:
            config = await asyncio.to_thread(load_gateway_config, self.path)
            self.apply(config)
        except ConfigError as exc:
            self.last_error = str(exc)
            RELOADS.labels("invalid").inc()
            log.error("gateway config rejected; keeping the previous one",
                      extra={"path": str(self.path), "error": self.last_error})
            return False
        except Exception as exc:  # noqa: BLE001 - a reload must never kill the router
            self.last_error = f"{self.path}: {type(exc).__name__}: {exc}"
            RELOADS.labels("failed").inc()
            log.exception("gateway config reload failed; keeping the previous one")
            return False
        self.last_error = ""
        self.loaded_at = time.time()
        RELOADS.labels("ok").inc()
        log.info("gateway config reloaded", extra={"path": str(self.path)})
        return True
