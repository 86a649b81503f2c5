"""API versions and their lifecycle: draft → published → deprecated → retired.

Owners write drafts; each transition is asked of policies/lockgate/lifecycle,
which sees everything the rules need (the version's description and schema,
breaking changes against the previous live version, the sunset date and
successor, the last call by any subscriber). A published version is
immutable: a change is a new version. Each model alias is bound by at most
one non-draft version in the whole gateway, so a call's alias names exactly
one API version.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.exc import IntegrityError

from lockgate.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    ServiceUnavailable,
)
from lockgate.identity import Identity
from lockgate.pagination import decode_cursor, encode_cursor, page_size
from lockgate.prompts.compat import breaking_changes, parse_version
from lockgate.prompts.spec import compile_version_spec
from lockgate.revisions import require_mask
from services.registry.access import can_manage, is_platform_admin
from services.registry.audit import digest
from services.registry.catalog import check_aliases, check_description
from services.registry.models import Api, ApiVersion
from services.registry.store import ApiStore
from services.registry.usecase import UseCases, change, principal_input

LIFECYCLE_DECISION = "lockgate/lifecycle/decision"
VERSION_FIELDS = ("description", "model_aliases", "prompt")
LIVE = ("published", "deprecated")
MAX_PROMPT_BYTES = 256 * 1024
MAX_REASON = 2000

#: When subscribers last called a version (None: never); from the ledger.
LastCall = Callable[[str, str], Awaitable[datetime | None]]


def _ns(value: datetime | None) -> int:
    if value is None:
        return 0
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    return int(value.timestamp()) * 1_000_000_000 + value.microsecond * 1000


def _check_prompt(prompt: dict[str, Any] | None) -> dict[str, Any]:
    if not prompt:
        return {}
    if len(orjson.dumps(prompt)) > MAX_PROMPT_BYTES:
        raise InvalidRequest(f"prompt: at most {MAX_PROMPT_BYTES} bytes", param="prompt")
    return prompt


class Versions(UseCases):
    def __init__(self, sessions, policy, decision_log=None, last_call: LastCall | None = None):
        super().__init__(sessions, policy, decision_log)
        self.last_call = last_call

    async def _owned_api(self, store: ApiStore, caller: Identity, ref: str) -> Api:
        api = await self.visible_api(store, caller, ref)
        if not can_manage(caller, api):
            raise PermissionDenied("only the API's owners manage its versions",
                                   code="permission_denied")
        return api

    @staticmethod
    async def _version(store: ApiStore, api: Api, version: str) -> ApiVersion:
        row = await store.version(api.id, version) if version else None
        if row is None:
            raise NotFound("version not found", param="version")
        return row

    async def create_version(self, caller: Identity, ref: str, version: str, description: str,
                             aliases: list[str], prompt: dict[str, Any] | None) -> ApiVersion:
        number = parse_version(version)
        description = check_description(description)
        aliases = check_aliases(aliases)
        prompt = _check_prompt(prompt)
        try:
            async with self.sessions() as session, session.begin():
                store = ApiStore(session)
                api = await self._owned_api(store, caller, ref)
                if api.kind == "model" and prompt:
                    raise InvalidRequest("prompt is for prompt APIs", param="prompt")
                if api.kind == "prompt" and aliases:
                    raise InvalidRequest("model_aliases are for model APIs",
                                         param="model_aliases")
                now = datetime.now(UTC)
                row = ApiVersion(api_id=api.id, tenant_id=api.tenant_id, version=str(number),
                                 major=number.major, minor=number.minor, description=description,
                                 model_aliases=aliases, prompt=prompt, created_at=now,
                                 updated_at=now)
                store.add(row)
                await store.flush()
                await self.audit(session, caller, "versions.create", api.tenant_id, "version",
                                 f"{api.id}/{row.version}", "", row)
        except IntegrityError:
            raise AlreadyExists(f"version {number} already exists", param="version") from None
        return row

    async def get_version(self, caller: Identity, ref: str, version: str) -> ApiVersion:
        async with self.sessions() as session:
            store = ApiStore(session)
            api = await self.visible_api(store, caller, ref)
            row = await self._version(store, api, version)
            if row.state == "draft" and not can_manage(caller, api):
                raise NotFound("version not found", param="version")
            return row

    async def list_versions(self, caller: Identity, ref: str, size: int, token: str
                            ) -> tuple[list[ApiVersion], str]:
        size = page_size(size)
        after = decode_cursor(token) or 0
        async with self.sessions() as session:
            store = ApiStore(session)
            api = await self.visible_api(store, caller, ref)
            rows = [v for v in await store.versions(api.id)
                    if v.state != "draft" or can_manage(caller, api)]
        rows = rows[after:]
        if len(rows) > size:
            return rows[:size], encode_cursor(after + size)
        return rows, ""

    async def update_version(self, caller: Identity, ref: str, version: str,
                             changes: dict[str, Any], etag: str = "") -> ApiVersion:
        require_mask(list(changes), VERSION_FIELDS)
        async with self.sessions() as session, session.begin():
            store = ApiStore(session)
            api = await self._owned_api(store, caller, ref)
            row = await self._version(store, api, version)
            self.check_etag(row, etag)
            if row.state != "draft":
                raise FailedPrecondition(
                    f"version {row.version} is {row.state}: a published version is immutable; "
                    "create a new version", param="version")
            before = digest(row)
            if "description" in changes:
                row.description = check_description(changes["description"])
            if "model_aliases" in changes:
                if api.kind != "model":
                    raise InvalidRequest("model_aliases are for model APIs",
                                         param="model_aliases")
                row.model_aliases = check_aliases(list(changes["model_aliases"]))
            if "prompt" in changes:
                if api.kind != "prompt":
                    raise InvalidRequest("prompt is for prompt APIs", param="prompt")
                row.prompt = _check_prompt(changes["prompt"])
            self.touch(row)
            store.add(row)
            await self.audit(session, caller, "versions.update", api.tenant_id, "version",
                             f"{api.id}/{row.version}", before, row)
        return row

    # -- lifecycle ---------------------------------------------------------------------------

    async def publish(self, caller: Identity, ref: str, version: str) -> ApiVersion:
        async def rules(store: ApiStore, api: Api, row: ApiVersion) -> dict:
            versions = await store.versions(api.id)
            previous = [v for v in versions if v.state in LIVE and (v.major, v.minor)
                        < (row.major, row.minor)]
            changes: list[str] = []
            if api.kind == "prompt":
                compile_version_spec(api.name, row.version, row.prompt)  # 400 naming the field
                if previous:
                    changes = breaking_changes(previous[-1].prompt.get("input_schema", {}),
                                               row.prompt.get("input_schema", {}))
            else:
                if not row.model_aliases:
                    raise InvalidRequest("a model API version exposes at least one model alias",
                                         param="model_aliases")
                taken = await store.live_aliases(row.model_aliases, api.id, row.version)
                if taken:
                    alias, owner = next(iter(taken.items()))
                    raise FailedPrecondition(
                        f"model alias {alias!r} is already bound by another API version "
                        f"({owner}); each alias names one version", param="model_aliases")
            earlier = [v.major for v in versions if v.version != row.version
                       and v.state != "draft"]
            return {
                "has_input_schema": bool(row.prompt.get("input_schema")),
                "breaking_changes": changes,
                "major_bump": row.major > max(earlier, default=0),
            }

        return await self._transition(caller, ref, version, "published", rules)

    async def deprecate(self, caller: Identity, ref: str, version: str,
                        sunset: datetime | None, successor: str) -> ApiVersion:
        if sunset is None:
            raise InvalidRequest("sunset_time is required", param="sunset_time")
        if successor:
            successor = str(parse_version(successor))

        async def rules(store: ApiStore, api: Api, row: ApiVersion) -> dict:
            target = await store.version(api.id, successor) if successor else None
            return {"sunset_ns": _ns(sunset), "successor": successor,
                    "successor_state": target.state if target else ""}

        def apply(row: ApiVersion) -> None:
            row.sunset_at, row.successor = sunset, successor

        return await self._transition(caller, ref, version, "deprecated", rules, apply)

    async def retire(self, caller: Identity, ref: str, version: str, force: bool,
                     reason: str) -> ApiVersion:
        if len(reason) > MAX_REASON:
            raise InvalidRequest(f"reason: at most {MAX_REASON} characters", param="reason")
        if force and not is_platform_admin(caller):
            raise PermissionDenied("only a platform admin may force a retirement",
                                   code="permission_denied")

        # The ledger is asked before the transaction opens (no network call while
        # holding it), and only once the sunset has passed: before that the policy
        # refuses anyway, and says why.
        async with self.sessions() as session:
            store = ApiStore(session)
            api = await self.visible_api(store, caller, ref)
            target = await self._version(store, api, version)
        last_call_ns = 0
        sunset = _ns(target.sunset_at)
        if force or (sunset and sunset <= _ns(datetime.now(UTC))):
            last_call_ns = await self._last_call_ns(api, target, force)

        async def rules(store: ApiStore, api: Api, row: ApiVersion) -> dict:
            return {"sunset_ns": _ns(row.sunset_at), "successor": row.successor}

        return await self._transition(caller, ref, version, "retired", rules,
                                      last_call_ns=last_call_ns,
                                      force=force, reason=reason)

    async def _transition(self, caller: Identity, ref: str, version: str, target: str,
                          rules, apply=None, *, force: bool = False, reason: str = "",
                          last_call_ns: int = 0) -> ApiVersion:
        async with self.sessions() as session, session.begin():
            store = ApiStore(session)
            api = await self.visible_api(store, caller, ref)
            row = await self._version(store, api, version)
            if row.state == "draft" and not can_manage(caller, api):
                raise NotFound("version not found", param="version")
            facts = await rules(store, api, row)
            decision, decision_id = await self.decide(LIFECYCLE_DECISION, {
                "principal": principal_input(caller),
                "api": {"id": api.id, "name": api.name, "kind": api.kind,
                        "tenant_id": api.tenant_id, "owner_team_id": api.owner_team_id,
                        "description": api.description},
                "version": {"version": row.version, "state": row.state,
                            "description": row.description, "has_input_schema": False,
                            "sunset_ns": 0, "successor": "", "successor_state": "",
                            "breaking_changes": [], "major_bump": False, **facts},
                "transition": {"from": row.state, "to": target},
                "now_ns": _ns(datetime.now(UTC)),
                "last_call_ns": last_call_ns,
                "force": force, "reason": reason,
            })
            if not isinstance(decision, dict) or decision.get("allow") is not True:
                reason_text = str((decision or {}).get("reason") or "denied by lifecycle policy")
                if isinstance(decision, dict) and decision.get("status") == 400:
                    raise FailedPrecondition(reason_text, code="lifecycle_rule")
                raise PermissionDenied(reason_text, code="lifecycle_denied")
            before = digest(row)
            now = datetime.now(UTC)
            row.state = target
            setattr(row, {"published": "published_at", "deprecated": "deprecated_at",
                          "retired": "retired_at"}[target], now)
            if apply is not None:
                apply(row)
            self.touch(row)
            await self._refresh_api_aliases(store, api)
            store.add(row, change("api", api.id))
            action = {"published": "versions.publish", "deprecated": "versions.deprecate",
                      "retired": "versions.retire"}[target]
            await self.audit(session, caller, action, api.tenant_id, "version",
                             f"{api.id}/{row.version}", before, row, decision_id)
        return row

    async def _last_call_ns(self, api: Api, row: ApiVersion, force: bool) -> int:
        if self.last_call is None:
            if force:
                return 0
            raise ServiceUnavailable("the ledger is not configured: cannot tell when this "
                                     "version was last called")
        try:
            return _ns(await self.last_call(api.id, row.version))
        except Exception:  # noqa: BLE001 - unknown last call: refuse (forced retirements pass)
            if force:
                return 0
            raise ServiceUnavailable("the ledger did not answer: cannot tell when this version "
                                     "was last called; retry") from None

    @staticmethod
    async def _refresh_api_aliases(store: ApiStore, api: Api) -> None:
        """Keep Api.model_aliases = the aliases of its live versions."""
        await store.flush()
        aliases: list[str] = []
        for v in await store.versions(api.id):
            if v.state in LIVE:
                aliases.extend(a for a in v.model_aliases if a not in aliases)
        api.model_aliases = aliases
        store.add(api)
