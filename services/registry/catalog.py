"""The API catalog: create, read, search and update APIs.

An API belongs to a team of a tenant. Its visibility decides who finds it in
the catalog and who may subscribe; its owners (the team's admins, the
tenant's admins) manage it. Calls through the gateway are governed by its
versions (services/registry/versions.py) and subscriptions.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from lockgate.errors import AlreadyExists, InvalidRequest, PermissionDenied
from lockgate.identity import Identity
from lockgate.ids import new_id
from lockgate.pagination import decode_cursor, encode_cursor, page_size
from lockgate.revisions import require_mask
from services.registry.access import (
    VISIBILITIES,
    can_manage,
    can_manage_team,
    can_see,
    is_platform_admin,
)
from services.registry.audit import digest
from services.registry.models import Api, ApiVersion
from services.registry.store import ApiStore
from services.registry.usecase import UseCases, change

KINDS = ("model", "prompt")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{1,62}$")
TENANT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TEAM_ID = re.compile(r"team_[0-9a-f]{24}")
MAX_DESCRIPTION = 2000
MAX_ALIASES = 100
MAX_ALIAS_LENGTH = 256
MAX_SHARED = 100
MAX_QUERY = 200
API_FIELDS = ("description", "visibility", "shared_tenant_ids", "log_bodies")


def check_aliases(aliases: list[str]) -> list[str]:
    if len(aliases) > MAX_ALIASES:
        raise InvalidRequest(f"at most {MAX_ALIASES} model aliases", param="model_aliases")
    if any(not alias or len(alias) > MAX_ALIAS_LENGTH or "," in alias for alias in aliases):
        raise InvalidRequest(
            f"model aliases must be 1-{MAX_ALIAS_LENGTH} characters, without commas",
            param="model_aliases",
        )
    return list(dict.fromkeys(aliases))  # drop repeats, keep order


def check_description(description: str) -> str:
    if len(description) > MAX_DESCRIPTION:
        raise InvalidRequest(
            f"description must be at most {MAX_DESCRIPTION} characters", param="description"
        )
    return description


def _visibility(value: str, shared: list[str]) -> tuple[str, list[str]]:
    if value not in VISIBILITIES:
        raise InvalidRequest(f"visibility must be one of {', '.join(VISIBILITIES)}",
                             param="visibility")
    if len(shared) > MAX_SHARED or not all(TENANT_ID.match(t) for t in shared):
        raise InvalidRequest(f"shared_tenant_ids: at most {MAX_SHARED} tenant ids",
                             param="shared_tenant_ids")
    if shared and value != "shared":
        raise InvalidRequest("shared_tenant_ids only apply to visibility shared",
                             param="shared_tenant_ids")
    return value, list(dict.fromkeys(shared))


class Catalog(UseCases):
    async def create_api(
        self, caller: Identity, name: str, kind: str, description: str, aliases: list[str],
        owner_team_id: str = "", visibility: str = "", shared: list[str] | None = None,
        log_bodies: bool = False,
    ) -> Api:
        """Add an API to the catalog, owned by a team (default: the caller's)."""
        if not NAME_PATTERN.fullmatch(name):  # fullmatch: `$` would accept a trailing newline
            raise InvalidRequest(
                "name must be 2-63 lower-case letters, digits and dashes, starting with a letter",
                param="name",
            )
        if kind not in KINDS:
            raise InvalidRequest("kind must be MODEL or PROMPT", param="kind")
        description = check_description(description)
        aliases = check_aliases(aliases)
        if aliases and kind != "model":
            raise InvalidRequest("model_aliases are for model APIs", param="model_aliases")
        visibility, shared = _visibility(visibility or "tenant", list(shared or []))
        team = owner_team_id or caller.team_id
        if not team:
            raise InvalidRequest("owner_team_id is required: the caller acts in no team",
                                 param="owner_team_id")
        if not TEAM_ID.fullmatch(team):
            # Teams live in auth; a name or a typo would leave the API without owners.
            raise InvalidRequest("owner_team_id must be a team id (team_…), as `lockgate teams "
                                 "list` shows it", param="owner_team_id")
        if not can_manage_team(caller, caller.tenant_id, team):
            raise PermissionDenied("only the owner team's admins (or tenant admins) create its "
                                   "APIs", code="permission_denied")
        now = datetime.now(UTC)
        api = Api(id=new_id("api"), tenant_id=caller.tenant_id, name=name, kind=kind,
                  description=description, model_aliases=[], created_at=now, updated_at=now,
                  owner_team_id=team, visibility=visibility, shared_tenant_ids=shared,
                  log_bodies=bool(log_bodies))
        try:
            async with self.sessions() as session, session.begin():
                store = ApiStore(session)
                store.add(api)
                await store.flush()
                await self.audit(session, caller, "apis.create", api.tenant_id, "api", api.id,
                                 "", api)
                if aliases:
                    # Convenience: the aliases go to a draft v1 (nothing is enforced yet).
                    draft = ApiVersion(api_id=api.id, tenant_id=api.tenant_id, version="v1",
                                       description=description, model_aliases=aliases,
                                       created_at=now, updated_at=now)
                    store.add(draft)
                    await store.flush()
                    await self.audit(session, caller, "versions.create", api.tenant_id,
                                     "version", f"{api.id}/v1", "", draft)
        except IntegrityError:
            # The only unique key a caller controls is (tenant_id, name).
            raise AlreadyExists(f'an API named "{name}" already exists', param="name") from None
        return api

    async def get_api(self, caller: Identity, ref: str) -> Api:
        if not ref:
            raise InvalidRequest("api_id is required", param="api_id")
        async with self.sessions() as session:
            return await self.visible_api(ApiStore(session), caller, ref)

    async def list_apis(self, caller: Identity, requested_size: int, page_token: str,
                        query: str = "", kind: str = "") -> tuple[list[Api], str]:
        """The catalog as the caller may see it, oldest first."""
        size = page_size(requested_size)
        after = decode_cursor(page_token)
        if len(query) > MAX_QUERY:
            raise InvalidRequest(f"query: at most {MAX_QUERY} characters", param="query")
        text = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        found: list[Api] = []
        async with self.sessions() as session:
            store = ApiStore(session)
            # Visibility is checked per row: fetch until the page is full (bounded).
            for _ in range(20):
                home = None if is_platform_admin(caller) else caller.tenant_id
                rows = await store.catalog_page(home, size * 2 + 1, after, text, kind)
                for api in rows:
                    after = api.seq
                    if can_see(caller, api):
                        found.append(api)
                        if len(found) > size:
                            break
                if len(found) > size or len(rows) < size * 2 + 1:
                    break
        if len(found) > size:
            found = found[:size]
            return found, encode_cursor(found[-1].seq or 0)
        return found, ""

    async def update_api(self, caller: Identity, ref: str, changes: dict[str, Any],
                         etag: str = "") -> Api:
        require_mask(list(changes), API_FIELDS)
        async with self.sessions() as session, session.begin():
            store = ApiStore(session)
            api = await self.visible_api(store, caller, ref)
            if not can_manage(caller, api):
                raise PermissionDenied("only the API's owners may change it",
                                       code="permission_denied")
            self.check_etag(api, etag)
            before = digest(api)
            if "description" in changes:
                api.description = check_description(changes["description"])
            if "log_bodies" in changes:
                # The watch stream carries it to the router (change() below).
                api.log_bodies = bool(changes["log_bodies"])
            visibility = changes.get("visibility", api.visibility)
            shared = changes.get("shared_tenant_ids", api.shared_tenant_ids or [])
            if visibility != "shared" and "shared_tenant_ids" not in changes:
                shared = []
            api.visibility, api.shared_tenant_ids = _visibility(visibility, list(shared))
            self.touch(api)
            store.add(api, change("api", api.id))
            await self.audit(session, caller, "apis.update", api.tenant_id, "api", api.id,
                             before, api)
        return api
