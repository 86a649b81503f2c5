"""A background task that runs one step every so often, for the services'
refreshers, reconcilers and pruners: `start()` once the server serves,
`await close()` once it stopped (the GrpcService.background protocol).

A step that fails is logged and tried again at the next interval: a database
or peer that is briefly away must not end the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("lockgate.periodic")


class Periodic:
    def __init__(self, name: str, interval: float, step: Callable[[], Awaitable[object]], *,
                 immediately: bool = False):
        """`step` every `interval` seconds (none when interval <= 0); the first one
        at start when `immediately`, else one interval after it."""
        self.name = name
        self.interval = interval
        self.step = step
        self.immediately = immediately
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self.interval > 0 and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        if not self.immediately:
            await asyncio.sleep(self.interval)
        while True:
            try:
                await self.step()
            except Exception:  # noqa: BLE001 - logged; the next interval tries again
                log.warning("periodic step failed; retrying", extra={"task": self.name},
                            exc_info=True)
            await asyncio.sleep(self.interval)
