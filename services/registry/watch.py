"""The watch stream: what the gateway enforces, pushed to every watcher.

`GovernanceHub` keeps the enforced state in memory — model alias bindings of
non-draft versions, approved subscriptions, prompt routes — built from the
database at start. It follows the change feed (`registry_changes`, written in
the same transaction as every change that matters, by any registry replica),
polls it every `interval` (200 ms), reloads what changed, and sends each
watcher a delta with a new revision. A new watcher first gets a snapshot.
Watcher queues are bounded: one that falls behind is dropped and reconnects
to a fresh snapshot, so a slow auth replica never holds the registry up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from lockgate.prompts.proto import prompt_to_proto
from lockgate.registry.v1 import registry_service_pb2 as pb
from lockgate.timestamps import to_timestamp
from services.registry.models import Api, ApiVersion, Subscription
from services.registry.store import ApiStore

log = logging.getLogger("lockgate.registry.watch")

ENFORCED = ("published", "deprecated", "retired")
MAX_WATCHER_BACKLOG = 256


def bindings_of(api: Api, versions: list[ApiVersion]) -> dict[str, pb.AliasBinding]:
    found: dict[str, pb.AliasBinding] = {}
    for v in versions:
        if v.state not in ENFORCED or api.kind != "model":
            continue
        for alias in v.model_aliases:
            found[alias] = pb.AliasBinding(
                alias=alias, api_id=api.id, api_name=api.name, api_tenant_id=api.tenant_id,
                owner_team_id=api.owner_team_id, version=v.version, state=v.state,
                sunset_time=to_timestamp(v.sunset_at) if v.sunset_at else None,
                successor=v.successor,
                deprecate_time=to_timestamp(v.deprecated_at) if v.deprecated_at else None,
                log_bodies=api.log_bodies,
            )
    return found


def prompts_of(api: Api, versions: list[ApiVersion]) -> dict[str, pb.PromptRoute]:
    found: dict[str, pb.PromptRoute] = {}
    for v in versions:
        if v.state not in ENFORCED or api.kind != "prompt":
            continue
        found[f"{api.id}/{v.version}"] = pb.PromptRoute(
            api_id=api.id, api_name=api.name, api_tenant_id=api.tenant_id, version=v.version,
            state=v.state, prompt=prompt_to_proto(v.prompt), owner_team_id=api.owner_team_id,
            sunset_time=to_timestamp(v.sunset_at) if v.sunset_at else None,
            successor=v.successor,
            deprecate_time=to_timestamp(v.deprecated_at) if v.deprecated_at else None,
            log_bodies=api.log_bodies,
        )
    return found


def grant_of(row: Subscription) -> pb.SubscriptionGrant:
    return pb.SubscriptionGrant(subscription_id=row.id, team_id=row.team_id, api_id=row.api_id,
                                version=row.version)


def _end(queue: asyncio.Queue) -> None:
    """Make a watcher's stream end next (dropping its backlog if it is full)."""
    while True:
        try:
            queue.put_nowait(None)
            return
        except asyncio.QueueFull:
            queue.get_nowait()


class GovernanceHub:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], interval: float = 0.2):
        self.sessions = sessions
        self.interval = interval
        self.revision = 0
        self.aliases: dict[str, pb.AliasBinding] = {}
        self.grants: dict[str, pb.SubscriptionGrant] = {}
        self.prompts: dict[str, pb.PromptRoute] = {}
        #: Which aliases and prompt keys each API binds (to find removals).
        self._by_api: dict[str, tuple[set[str], set[str]]] = {}
        self._last_seq = 0
        self._watchers: set[asyncio.Queue] = set()
        self._task: asyncio.Task | None = None
        self._loaded = asyncio.Event()

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for queue in list(self._watchers):
            _end(queue)

    async def _run(self) -> None:
        while True:
            try:
                if not self._loaded.is_set():
                    await self.load()
                else:
                    await self.poll()
            except Exception:  # noqa: BLE001 - a database blip must not end the stream
                log.warning("governance watch refresh failed; retrying", exc_info=True)
            await asyncio.sleep(self.interval)

    async def load(self) -> None:
        """The whole enforced state from the database (at start)."""
        async with self.sessions() as session:
            store = ApiStore(session)
            self._last_seq = await store.last_change()
            apis = await store.all_apis()
            versions = await store.versions_of(a.id for a in apis)
            grants = await store.approved_subscriptions()
        by_api: dict[str, list[ApiVersion]] = {}
        for v in versions:
            by_api.setdefault(v.api_id, []).append(v)
        for api in apis:
            self._apply_api(api, by_api.get(api.id, []), pb.GovernanceDelta())
        self.grants = {g.id: grant_of(g) for g in grants}
        self.revision += 1
        self._loaded.set()

    async def poll(self) -> None:
        async with self.sessions() as session:
            store = ApiStore(session)
            rows = await store.changes_after(self._last_seq, 1000)
            if not rows:
                return
            api_ids = {r.subject_id for r in rows if r.subject_kind == "api"}
            sub_ids = {r.subject_id for r in rows if r.subject_kind == "subscription"}
            apis = {a.id: a for a in [await store.by_id(i) for i in api_ids] if a is not None}
            versions = await store.versions_of(apis)
            approved = {s.id: s for s in await store.approved_subscriptions(sub_ids)}
        self._last_seq = rows[-1].seq or self._last_seq
        delta = pb.GovernanceDelta()
        by_api: dict[str, list[ApiVersion]] = {}
        for v in versions:
            by_api.setdefault(v.api_id, []).append(v)
        for api_id in api_ids:
            api = apis.get(api_id)
            if api is not None:
                self._apply_api(api, by_api.get(api_id, []), delta)
        for sub_id in sub_ids:
            if sub_id in approved:
                self.grants[sub_id] = grant_of(approved[sub_id])
                delta.upsert_grants.append(self.grants[sub_id])
            elif self.grants.pop(sub_id, None) is not None:
                delta.removed_grants.append(sub_id)
        if delta.ByteSize() == 0:
            return  # nothing the gateway enforces changed (a pending request, an edit)
        self.revision += 1
        self._broadcast(pb.WatchGovernanceResponse(revision=self.revision, delta=delta))

    def _apply_api(self, api: Api, versions: list[ApiVersion], delta: pb.GovernanceDelta) -> None:
        bindings, prompts = bindings_of(api, versions), prompts_of(api, versions)
        old_aliases, old_prompts = self._by_api.get(api.id, (set(), set()))
        for alias in old_aliases - set(bindings):
            if self.aliases.get(alias) is not None and self.aliases[alias].api_id == api.id:
                del self.aliases[alias]
                delta.removed_aliases.append(alias)
        for key in old_prompts - set(prompts):
            self.prompts.pop(key, None)
            delta.removed_prompts.append(key)
        for alias, binding in bindings.items():
            if self.aliases.get(alias) != binding:
                self.aliases[alias] = binding
                delta.upsert_aliases.append(binding)
        for key, route in prompts.items():
            if self.prompts.get(key) != route:
                self.prompts[key] = route
                delta.upsert_prompts.append(route)
        self._by_api[api.id] = (set(bindings), set(prompts))

    # -- watchers ------------------------------------------------------------------------

    def snapshot(self) -> pb.WatchGovernanceResponse:
        return pb.WatchGovernanceResponse(
            revision=self.revision,
            snapshot=pb.GovernanceSnapshot(aliases=list(self.aliases.values()),
                                           grants=list(self.grants.values()),
                                           prompts=list(self.prompts.values())),
        )

    def _broadcast(self, message: pb.WatchGovernanceResponse) -> None:
        for queue in list(self._watchers):
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:
                # Too slow: end its stream; it reconnects to a fresh snapshot.
                self._watchers.discard(queue)
                _end(queue)

    async def watch(self) -> AsyncIterator[pb.WatchGovernanceResponse]:
        await self._loaded.wait()
        queue: asyncio.Queue = asyncio.Queue(maxsize=MAX_WATCHER_BACKLOG)
        self._watchers.add(queue)
        try:
            yield self.snapshot()
            while True:
                message = await queue.get()
                if message is None:
                    return
                yield message
        finally:
            self._watchers.discard(queue)
