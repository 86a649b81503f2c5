"""Simulator state shared by the handlers: config, ids, RNG, sleepers."""

from __future__ import annotations

import asyncio
import hmac
import itertools
import random
import secrets
import string
from typing import Any

import orjson
from aiohttp import web

from lockgate.sim.config import SimConfig
from lockgate.sim.errors import SimError, injected
from lockgate.sim.knobs import Knobs

MODELS_CREATED = 1_700_000_000


class ShuttingDown(Exception):
    """A delayed request interrupted because the server stops."""


#: Bound on remembered x-sim-scenario ids (forgotten all at once beyond it).
MAX_SCENARIOS = 10_000


class State:
    __slots__ = (
        "config",
        "auth",
        "rng",
        "id_prefix",
        "ids",
        "models_body",
        "model_bodies",
        "sleepers",
        "stopping",
        "scenarios",
    )

    def __init__(self, config: SimConfig):
        self.config = config
        self.auth = f"Bearer {config.api_key}".encode() if config.api_key else None
        self.rng = random.Random(config.seed)
        alphabet = string.ascii_letters + string.digits
        self.id_prefix = "".join(secrets.choice(alphabet) for _ in range(12))
        self.ids = itertools.count(1)
        models = [
            {"id": m, "object": "model", "created": MODELS_CREATED, "owned_by": "lockgate-sim"}
            for m in dict.fromkeys(config.models)
        ]
        self.models_body = orjson.dumps({"object": "list", "data": models})
        self.model_bodies = {m["id"]: orjson.dumps(m) for m in models}
        #: Handlers inside pause(): on shutdown they are woken up at once.
        self.sleepers: set[asyncio.Task[Any]] = set()
        self.stopping = False
        #: Requests seen per x-sim-scenario id (for x-sim-fail-first).
        self.scenarios: dict[str, int] = {}

    async def pause(self, seconds: float) -> None:
        """Sleeps; raises ShuttingDown when the server stops meanwhile."""
        task = asyncio.current_task()
        if self.stopping or task is None:
            raise ShuttingDown
        self.sleepers.add(task)
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            if not self.stopping:
                raise
            task.uncancel()
            raise ShuttingDown from None
        finally:
            self.sleepers.discard(task)

    def wake_sleepers(self) -> None:
        self.stopping = True
        for task in list(self.sleepers):
            task.cancel()

    def next_id(self, prefix: str) -> str:
        return f"{prefix}{self.id_prefix}{next(self.ids):010d}"

    def prelude(self, request: web.Request) -> Knobs:
        """Checks the API key, then parses the x-sim-* headers."""
        if self.auth is not None:
            given = request.headers.get("Authorization")
            if given is None:
                raise SimError(
                    401,
                    "You didn't provide an API key. You need to provide your "
                    "API key in an Authorization header using Bearer auth (i.e. "
                    "Authorization: Bearer YOUR_KEY).",
                    code="invalid_api_key",
                )
            if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), self.auth):
                raise SimError(401, "Incorrect API key provided.", code="invalid_api_key")
        return Knobs(self.config, request.headers)

    async def fault(self, knobs: Knobs) -> None:
        """Raises the injected error of this request, if any (after the latency)."""
        status = knobs.status
        if knobs.fail_first:
            # The first N requests of the scenario fail (x-sim-status, default
            # 503), the later ones are answered: a provider that recovers.
            if len(self.scenarios) >= MAX_SCENARIOS and knobs.scenario not in self.scenarios:
                self.scenarios.clear()
            seen = self.scenarios[knobs.scenario] = self.scenarios.get(knobs.scenario, 0) + 1
            if seen > knobs.fail_first:
                return
            status = status if status not in (None, 200) else 503
        elif status is None:
            if self.config.error_rate <= 0.0 or self.rng.random() >= self.config.error_rate:
                return
            status = self.config.error_status
        elif status == 200:
            return
        if knobs.latency > 0:
            await self.pause(knobs.latency)
        raise injected(status)


STATE: web.AppKey[State] = web.AppKey("lockgate_sim_state")
