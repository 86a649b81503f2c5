"""A service's live copy of what the registry enforces, fed by its watch stream.

Auth (subscriptions, lifecycle at the edge) and the router (prompt APIs) keep
this view and read it on the hot path: lookups are dictionary reads, never a
call to the registry. A background task holds the stream open, applies the
snapshot and every delta, and reconnects with backoff when the stream ends;
meanwhile the last view stays in force. `ready` is false until the first
snapshot arrives: callers fail closed for governed requests until then.
"""

from __future__ import annotations

import asyncio
import logging
import random

import grpc

from lockgate.metrics import Gauge
from lockgate.registry.v1 import registry_service_pb2 as pb
from lockgate.registry.v1 import registry_service_pb2_grpc as pb_grpc

log = logging.getLogger("lockgate.governance")

REVISION = Gauge("lockgate_governance_revision", "Registry watch revision applied", ["service"])


class GovernanceView:
    def __init__(self, address: str, service: str, *, max_backoff: float = 5.0):
        self.address = address
        self.service = service
        self.max_backoff = max_backoff
        self.revision = 0
        #: Changes on every applied snapshot or delta: decision caches key on it.
        self.generation = 0
        self.aliases: dict[str, pb.AliasBinding] = {}
        self.prompts: dict[str, pb.PromptRoute] = {}
        self._prompt_names: dict[tuple[str, str, str], pb.PromptRoute] = {}
        self._grants: dict[str, pb.SubscriptionGrant] = {}
        #: (team_id, api_id) -> {version granted ("" = every version): subscription id}
        self._granted: dict[tuple[str, str], dict[str, str]] = {}
        self.ready = asyncio.Event()
        self._task: asyncio.Task | None = None

    # -- reads (hot path) --------------------------------------------------------------

    def binding(self, alias: str) -> pb.AliasBinding | None:
        return self.aliases.get(alias)

    def subscribed(self, team_id: str, api_id: str, version: str) -> bool:
        return bool(self.subscription_id(team_id, api_id, version))

    def subscription_id(self, team_id: str, api_id: str, version: str) -> str:
        """The approved subscription of a team to an API version ("" when none)."""
        versions = self._granted.get((team_id, api_id))
        if not versions:
            return ""
        return versions.get(version) or versions.get("", "")

    def prompt(self, api_ref: str, version: str, home_tenant_id: str) -> pb.PromptRoute | None:
        """A prompt API version by API id, or by name within the caller's tenant."""
        route = self.prompts.get(f"{api_ref}/{version}")
        if route is None:
            route = self._prompt_names.get((home_tenant_id, api_ref, version))
        return route

    # -- applying the stream -------------------------------------------------------------

    def apply(self, message: pb.WatchGovernanceResponse) -> None:
        if message.HasField("snapshot"):
            snap = message.snapshot
            self.aliases = {a.alias: a for a in snap.aliases}
            self.prompts = {f"{p.api_id}/{p.version}": p for p in snap.prompts}
            self._grants = {g.subscription_id: g for g in snap.grants}
        else:
            delta = message.delta
            for alias in delta.removed_aliases:
                self.aliases.pop(alias, None)
            for binding in delta.upsert_aliases:
                self.aliases[binding.alias] = binding
            for key in delta.removed_prompts:
                self.prompts.pop(key, None)
            for route in delta.upsert_prompts:
                self.prompts[f"{route.api_id}/{route.version}"] = route
            for subscription_id in delta.removed_grants:
                self._grants.pop(subscription_id, None)
            for grant in delta.upsert_grants:
                self._grants[grant.subscription_id] = grant
        self._prompt_names = {(p.api_tenant_id, p.api_name, p.version): p
                              for p in self.prompts.values()}
        granted: dict[tuple[str, str], dict[str, str]] = {}
        for grant in self._grants.values():
            granted.setdefault((grant.team_id, grant.api_id), {})[grant.version] = (
                grant.subscription_id
            )
        self._granted = granted
        self.revision = message.revision
        self.generation += 1
        REVISION.labels(self.service).set(message.revision)
        self.ready.set()

    # -- the stream ------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._follow())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _follow(self) -> None:
        backoff = 0.1
        # gRPC's own reconnect backoff (up to 120 s by default) would otherwise keep the
        # stream down long after the registry is back: cap it at ours.
        cap_ms = max(100, int(self.max_backoff * 1000))
        options = [("grpc.initial_reconnect_backoff_ms", 100),
                   ("grpc.min_reconnect_backoff_ms", 100),
                   ("grpc.max_reconnect_backoff_ms", cap_ms)]
        async with grpc.aio.insecure_channel(self.address, options=options) as channel:
            stub = pb_grpc.RegistryServiceStub(channel)
            while True:
                try:
                    async for message in stub.WatchGovernance(pb.WatchGovernanceRequest()):
                        self.apply(message)
                        backoff = 0.1
                    log.info("governance watch ended; reconnecting")
                except grpc.aio.AioRpcError as exc:
                    log.warning("governance watch failed; retrying",
                                extra={"code": exc.code().name, "retry_in": backoff})
                except Exception:  # noqa: BLE001 - never stop following: reconnect afresh
                    log.exception("governance watch broke; reconnecting for a new snapshot")
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, self.max_backoff)
