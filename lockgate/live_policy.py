"""Policies that follow their files: hot reload without a restart.

A LivePolicy evaluates like a PolicyEngine and watches its policy folder.
When a `.rego` or `data.json` file changes, it builds a new engine and runs
every policy test beside the policies; only if both succeed does the new
engine replace the working one (one attribute store: an evaluation in flight
finishes on the engine it started with). A policy that does not compile, or
whose tests fail, never goes live: the error is logged, counted, and kept in
`last_error` until a good version loads. Decision caches keyed on `revision`
follow at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any

from lockgate.metrics import Counter
from lockgate.policy import DATA_FILE, DEFAULT_ROOT, PolicyEngine, PolicyError
from lockgate.policy_tests import run_policy_tests
from lockgate.watch import PollingWatcher

log = logging.getLogger("lockgate.policy")

RELOADS = Counter("lockgate_policy_reloads_total", "Policy reloads", ["result"])


class LivePolicy:
    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        interval: float = 1.0,
        run_tests: bool = True,
    ):
        self.root = Path(root) if root is not None else DEFAULT_ROOT
        self.engine = PolicyEngine(self.root)
        self.run_tests = run_tests
        self.last_error = ""
        self.loaded_at = time.time()
        self.watcher = PollingWatcher(self._files, self.reload, interval)

    # -- the PolicyEngine surface the services use ---------------------------------

    @property
    def revision(self) -> str:
        return self.engine.revision

    @property
    def entrypoints(self) -> tuple[str, ...]:
        return self.engine.entrypoints

    def evaluate(self, entrypoint: str, input: Any) -> Any:
        return self.engine.evaluate(entrypoint, input)

    async def evaluate_async(self, entrypoint: str, input: Any) -> Any:
        return self.engine.evaluate(entrypoint, input)

    # -- reloading --------------------------------------------------------------------

    def _files(self) -> list[Path]:
        return [*self.root.rglob("*.rego"), *self.root.rglob(DATA_FILE)]

    def start(self) -> None:
        self.watcher.start()

    async def close(self) -> None:
        await self.watcher.close()

    async def reload(self) -> bool:
        """Load the folder now; True when the new policies are live."""
        self.watcher.mark_seen()
        try:
            engine = await asyncio.to_thread(PolicyEngine, self.root)
            if self.run_tests:
                results = await asyncio.to_thread(run_policy_tests, self.root)
                failed = [r for r in results if not r.passed]
                if failed:
                    first = failed[0]
                    raise PolicyError(
                        f"{len(failed)} of {len(results)} policy tests failed; first: "
                        f"{first.file}: {first.name}: {first.message}"
                    )
        except PolicyError as exc:
            self.last_error = str(exc)
            RELOADS.labels("rejected").inc()
            log.error("policy change rejected; the previous policies stay live",
                      extra={"root": str(self.root), "error": self.last_error})
            return False
        if engine.revision != self.engine.revision:
            self.engine = engine
            log.info("policies reloaded", extra={"revision": engine.revision})
        self.last_error = ""
        self.loaded_at = time.time()
        RELOADS.labels("ok").inc()
        return True
