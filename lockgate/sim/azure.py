"""Azure OpenAI's deployment routes, served by the OpenAI handlers.

`/openai/deployments/{deployment}/chat/completions` and `/embeddings`:
Azure's `api-version` query parameter and `api-key` header, Azure's error
shape; the rest is the OpenAI route's (see lockgate/sim/server.py).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web
from multidict import CIMultiDict

from lockgate.sim.errors import JSON_HEADERS
from lockgate.sim.state import STATE, State

_DENIED = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
    "provide a valid key for an active subscription and use a correct regional API "
    "endpoint for your resource."
)


def _error(status: int, code: str, message: str) -> web.Response:
    """Azure's error shape: {"error": {"code", "message"}}."""
    body = orjson.dumps({"error": {"code": code, "message": message}})
    return web.Response(status=status, body=body, headers=JSON_HEADERS)


def deployment_route(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """An Azure deployment route served by an OpenAI handler: checks
    ``api-version`` and the ``api-key`` header, then hands the handler the
    request with the key as Bearer auth (what its prelude checks)."""

    async def route(request: web.Request) -> web.StreamResponse:
        if not request.query.get("api-version"):
            return _error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        state: State = request.app[STATE]
        key = request.headers.get("api-key")
        if key is None:
            if state.auth is not None and "Authorization" not in request.headers:
                return _error(401, "401", _DENIED)
            return await handler(request)
        bearer = f"Bearer {key}"
        if state.auth is not None and not hmac.compare_digest(
            bearer.encode("utf-8", "surrogateescape"), state.auth
        ):
            return _error(401, "401", _DENIED)
        headers = CIMultiDict(request.headers)
        headers["Authorization"] = bearer
        return await handler(request.clone(headers=headers))

    return route
