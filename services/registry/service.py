"""Registry use cases: the tenant's API catalog."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from lockgate.errors import AlreadyExists, InvalidRequest, NotFound
from lockgate.identity import Identity
from lockgate.ids import new_id
from lockgate.pagination import decode_cursor, encode_cursor, page_size
from services.registry.models import Api
from services.registry.store import ApiStore

KINDS = ("model", "prompt")
_NAME = re.compile(r"^[a-z][a-z0-9-]{1,62}$")
MAX_DESCRIPTION = 2000
MAX_ALIASES = 100


class RegistryService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self.sessions = sessions

    async def create_api(
        self, caller: Identity, name: str, kind: str, description: str, aliases: list[str]
    ) -> Api:
        if not _NAME.match(name):
            raise InvalidRequest(
                "name must be 2-63 lower-case letters, digits and dashes, starting with a letter",
                param="name",
            )
        if kind not in KINDS:
            raise InvalidRequest(f"kind must be one of {list(KINDS)}", param="kind")
        if len(description) > MAX_DESCRIPTION:
            raise InvalidRequest(
                f"description is longer than {MAX_DESCRIPTION} characters", param="description"
            )
        if len(aliases) > MAX_ALIASES or any(not a or len(a) > 256 for a in aliases):
            raise InvalidRequest(f"at most {MAX_ALIASES} non-empty aliases", param="model_aliases")
        api = Api(
            id=new_id("api"),
            tenant_id=caller.tenant_id,
            name=name,
            kind=kind,
            description=description,
            model_aliases=list(dict.fromkeys(aliases)),
            created_at=datetime.now(UTC),
        )
        try:
            async with self.sessions() as session, session.begin():
                ApiStore(session).add(api)
        except IntegrityError:
            raise AlreadyExists(f"an API named {name!r} already exists", param="name") from None
        return api

    async def get_api(self, caller: Identity, api_id: str) -> Api:
        async with self.sessions() as session:
            api = await ApiStore(session).get(caller.tenant_id, api_id)
        if api is None:  # also for another tenant's id: ids are never confirmed
            raise NotFound(f"API {api_id!r} not found", param="api_id")
        return api

    async def list_apis(
        self, caller: Identity, requested_size: int, page_token: str
    ) -> tuple[list[Api], str]:
        size = page_size(requested_size)
        after = decode_cursor(page_token)
        async with self.sessions() as session:
            rows = await ApiStore(session).list(caller.tenant_id, size + 1, after)
        if len(rows) > size:
            rows = rows[:size]
            return rows, encode_cursor(rows[-1].seq)
        return rows, ""
