"""Registry use cases: a tenant's API catalog. Owns ids, timestamps and transactions."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from lockgate.errors import AlreadyExists, InvalidRequest, NotFound
from lockgate.identity import Identity
from lockgate.ids import new_id
from lockgate.pagination import decode_cursor, page_of, page_size
from services.registry.models import Api
from services.registry.store import ApiStore

KINDS = ("model", "prompt")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{1,62}$")
MAX_DESCRIPTION = 2000
MAX_ALIASES = 100
MAX_ALIAS_LENGTH = 256
#: One message for "no such id" and "another tenant's id": ids are never confirmed.
NOT_FOUND_MESSAGE = "API not found"


def _validate(name: str, kind: str, description: str, aliases: list[str]) -> None:
    # fullmatch: `$` alone would also accept a trailing newline.
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidRequest(
            "name must be 2-63 lower-case letters, digits and dashes, starting with a letter",
            param="name",
        )
    if kind not in KINDS:
        raise InvalidRequest("kind must be MODEL or PROMPT", param="kind")
    if len(description) > MAX_DESCRIPTION:
        raise InvalidRequest(
            f"description must be at most {MAX_DESCRIPTION} characters", param="description"
        )
    if len(aliases) > MAX_ALIASES:
        raise InvalidRequest(f"at most {MAX_ALIASES} model aliases", param="model_aliases")
    if any(not alias or len(alias) > MAX_ALIAS_LENGTH for alias in aliases):
        raise InvalidRequest(
            f"model aliases must be 1-{MAX_ALIAS_LENGTH} characters", param="model_aliases"
        )


class RegistryService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self.sessions = sessions

    async def create_api(
        self, caller: Identity, name: str, kind: str, description: str, aliases: list[str]
    ) -> Api:
        """Add an API to the caller's catalog; names are unique per tenant."""
        _validate(name, kind, description, aliases)
        api = Api(
            id=new_id("api"),
            tenant_id=caller.tenant_id,
            name=name,
            kind=kind,
            description=description,
            model_aliases=list(dict.fromkeys(aliases)),  # drop repeats, keep order
            created_at=datetime.now(UTC),
        )
        try:
            async with self.sessions() as session, session.begin():
                ApiStore(session).add(api)
        except IntegrityError:
            # The only unique key a caller controls is (tenant_id, name).
            raise AlreadyExists(f'an API named "{name}" already exists', param="name") from None
        return api

    async def get_api(self, caller: Identity, api_id: str) -> Api:
        if not api_id:
            raise InvalidRequest("api_id is required", param="api_id")
        async with self.sessions() as session:
            api = await ApiStore(session).get(caller.tenant_id, api_id)
        if api is None:
            raise NotFound(NOT_FOUND_MESSAGE, param="api_id")
        return api

    async def list_apis(
        self, caller: Identity, requested_size: int, page_token: str
    ) -> tuple[list[Api], str]:
        """The caller's APIs, oldest first."""
        size = page_size(requested_size)
        after = decode_cursor(page_token)
        async with self.sessions() as session:
            rows = await ApiStore(session).list_page(caller.tenant_id, size + 1, after)
        return page_of(rows, size, lambda api: api.seq)
