"""The ``POST /v1/messages`` handler of the simulator's Anthropic dialect.

When the simulator has an ``api_key``, it must come as ``x-api-key`` or
as ``Authorization: Bearer`` (what newer official SDKs send);
``anthropic-version`` is required.

Every answer has a ``request-id`` header. The ``x-sim-*`` fault headers work
as in the OpenAI dialect (see :mod:`lockgate.sim.server`);
``x-sim-drop-after-chunks`` as :mod:`lockgate.sim.anthropic.stream` says.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

import orjson
from aiohttp import web

from lockgate.sim import streaming
from lockgate.sim.anthropic.errors import _INJECTED_MESSAGES, _Invalid, error_response
from lockgate.sim.anthropic.reply import _usage, respond
from lockgate.sim.anthropic.stream import stream_events
from lockgate.sim.anthropic.validate import parse
from lockgate.sim.errors import SimError
from lockgate.sim.knobs import Knobs
from lockgate.sim.state import STATE, ShuttingDown, State

log = logging.getLogger(__name__)


async def messages(request: web.Request) -> web.StreamResponse:
    """``POST /v1/messages``; every error leaves Anthropic-shaped."""
    state: State = request.app[STATE]
    request_id = state.next_id("req_")
    try:
        response = await _messages(request, state, request_id)
    except SimError as exc:
        response = error_response(exc.status, exc.message, request_id, exc.headers)
    except web.HTTPRequestEntityTooLarge:
        response = error_response(413, "Request exceeds the maximum allowed number of bytes.",
                                  request_id)
    except ShuttingDown:
        response = error_response(503, "The simulator is shutting down.", request_id)
    except ConnectionError:
        return web.Response(status=500)  # the client went away: nobody reads this
    except Exception:
        log.exception("simulator: unexpected error on POST /v1/messages")
        response = error_response(500, "Internal server error", request_id)
    if not response.prepared:
        response.headers["request-id"] = request_id
    return response


async def _messages(request: web.Request, state: State, request_id: str) -> web.StreamResponse:
    _authorize(state, request)
    knobs = Knobs(state.config, request.headers)
    req = parse(await _read_json(request))
    try:
        await state.fault(knobs)
    except SimError as exc:
        exc.message = _INJECTED_MESSAGES.get(exc.status, exc.message)
        raise
    answer = respond(req, knobs.words, knobs.echo)
    message_id = state.next_id("msg_")
    if req.stream:
        head, deltas, tail = stream_events(req, answer, message_id, knobs.chunk_count)
        headers = {**streaming.SSE_HEADERS, "request-id": request_id}
        return await streaming.send(request, knobs, head, deltas, tail, headers,
                                    dialect="anthropic")
    if knobs.latency > 0:
        await state.pause(knobs.latency)
    body = orjson.dumps({
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": req.model,
        "content": answer.content,
        "stop_reason": answer.stop_reason,
        "stop_sequence": answer.stop_sequence,
        "usage": _usage(answer.input_tokens, answer.output_tokens),
    })
    return web.Response(body=body, content_type="application/json")


async def _read_json(request: web.Request) -> dict[str, Any]:
    raw = await request.read()  # bounded by client_max_size (413)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _Invalid("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise _Invalid("The request body must be a JSON object.")
    return body


def _authorize(state: State, request: web.Request) -> None:
    key = state.config.api_key
    if key is not None:
        given = request.headers.get("x-api-key")
        bearer = request.headers.get("Authorization", "")
        if given is None and bearer[:7].lower() == "bearer ":
            given = bearer[7:]  # how newer official SDKs send the key
        if given is None:
            raise SimError(401, "x-api-key header is required")
        if not hmac.compare_digest(
            given.encode("utf-8", "surrogateescape"), key.encode("utf-8", "surrogateescape")
        ):
            raise SimError(401, "invalid x-api-key")
    if not request.headers.get("anthropic-version"):
        raise _Invalid("anthropic-version: header is required")

