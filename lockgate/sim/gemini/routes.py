"""The route of the simulator's Gemini dialect and its method handlers.

``POST /v1beta/models/{model}:{method}``, one aiohttp resource whose last path
segment is split on its last ':' (aiohttp matches ``{model_action}`` across the
colon; unknown methods get a Google-shaped 404). The methods' answers are
described in :mod:`.reply` (generateContent), :mod:`.stream`
(streamGenerateContent) and :mod:`.embeddings` (embedContent /
batchEmbedContents).

The key, when the simulator has one, is taken from ``x-goog-api-key`` or the
``key`` query parameter: missing -> 403 PERMISSION_DENIED, wrong -> 400
INVALID_ARGUMENT with an ErrorInfo ``API_KEY_INVALID`` detail (as Google does).
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

import orjson
from aiohttp import web

from lockgate.sim.errors import SimError
from lockgate.sim.gemini.embeddings import MAX_BATCH_EMBEDDINGS, _embedding
from lockgate.sim.gemini.errors import _INJECTED, _JSON, GoogleError, _bad, _injected
from lockgate.sim.gemini.reply import (
    _blocked,
    _candidates,
    _final_candidate,
    _prompt_tokens,
    _usage,
)
from lockgate.sim.gemini.stream import _content_events, _send_stream
from lockgate.sim.gemini.validate import _fields, _parse_generate
from lockgate.sim.knobs import Knobs
from lockgate.sim.state import STATE, ShuttingDown, State

log = logging.getLogger(__name__)

ROUTE = "/v1beta/models/{model_action}"
H_SAFETY_BLOCK = "x-sim-safety-block"


async def model_action(request: web.Request) -> web.StreamResponse:
    """``POST /v1beta/models/{model}:{method}``; every error leaves Google-shaped."""
    try:
        model, sep, method = request.match_info["model_action"].rpartition(":")
        handler = _METHODS.get(method)
        if not sep or not model or handler is None:
            raise GoogleError(404, f"Method not found: {method[:100]!r}.")
        state: State = request.app[STATE]
        _check_key(state, request)
        knobs = Knobs(state.config, request.headers)
        return await handler(request, state, knobs, model)
    except GoogleError as exc:
        return exc.response()
    except SimError as exc:  # an invalid x-sim-* header
        return GoogleError(exc.status, exc.message).response()
    except ShuttingDown:
        return GoogleError(503, "The service is currently unavailable.").response()
    except web.HTTPRequestEntityTooLarge:
        return _bad("Request payload size exceeds the limit.").response()
    except ConnectionError:
        raise  # the client went away: the server's middleware drops the connection
    except Exception:
        log.exception("simulator: unexpected error on %s %s", request.method, request.path)
        return GoogleError(500, _INJECTED[500]).response()


def _check_key(state: State, request: web.Request) -> None:
    expected = state.config.api_key
    if expected is None:
        return
    given = request.headers.get("x-goog-api-key") or request.query.get("key")
    if given is None:
        raise GoogleError(
            403,
            "Method doesn't allow unregistered callers (callers without established "
            "identity). Please use API Key or other form of API consumer identity to call "
            "this API.",
        )
    if not hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape")
    ):
        raise GoogleError(400, "API key not valid. Please pass a valid API key.", [{
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        }])


async def _read(request: web.Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise _bad("Invalid JSON payload received. Unexpected token.") from None
    if not isinstance(body, dict):
        raise _bad("Invalid JSON payload received. Expected an object.")
    return body


async def _fault(state: State, knobs: Knobs) -> None:
    try:
        await state.fault(knobs)
    except SimError as exc:
        raise _injected(exc.status) from None


def _safety_mode(request: web.Request) -> str | None:
    value = request.headers.get(H_SAFETY_BLOCK)
    if value is None:
        return None
    value = value.strip().lower()
    if value not in ("prompt", "response"):
        raise _bad(f"Invalid '{H_SAFETY_BLOCK}' header: expected 'prompt' or 'response'.")
    return value


async def _generate(
    request: web.Request, state: State, knobs: Knobs, model: str, stream: bool = False
) -> web.StreamResponse:
    safety = _safety_mode(request)
    parsed = _parse_generate(await _read(request))
    await _fault(state, knobs)
    prompt = _prompt_tokens(parsed)
    head = {"modelVersion": model, "responseId": state.next_id("")}
    if safety is not None:
        events: list[dict] = []
        final = _blocked(safety, parsed, prompt, head)
    else:
        candidates = _candidates(parsed, knobs.words, knobs.echo)
        completion = sum(c.tokens for c in candidates)
        if stream:
            events = _content_events(candidates, knobs, prompt, head)
            final = {
                "candidates": [_final_candidate(c, i, "") for i, c in enumerate(candidates)],
                "usageMetadata": _usage(prompt, completion), **head,
            }
        else:
            events = []
            final = {
                "candidates": [
                    _final_candidate(c, i, "".join(c.pieces) if c.pieces else None)
                    for i, c in enumerate(candidates)
                ],
                "usageMetadata": _usage(prompt, completion), **head,
            }
    if not stream:
        if knobs.latency > 0:
            await state.pause(knobs.latency)
        return web.Response(body=orjson.dumps(final), headers=_JSON)
    return await _send_stream(request, knobs, events, final)


async def _stream_generate(
    request: web.Request, state: State, knobs: Knobs, model: str
) -> web.StreamResponse:
    return await _generate(request, state, knobs, model, stream=True)


async def _embed_content(
    request: web.Request, state: State, knobs: Knobs, model: str
) -> web.Response:
    body = await _read(request)
    result = _embedding(body, "", state.config.embedding_dimensions, None)
    await _fault(state, knobs)
    if knobs.latency > 0:
        await state.pause(knobs.latency)
    return web.Response(body=orjson.dumps({"embedding": result}), headers=_JSON)


async def _batch_embed(
    request: web.Request, state: State, knobs: Knobs, model: str
) -> web.Response:
    body = _fields(await _read(request), frozenset({"requests"}), "")
    items = body.get("requests")
    if not isinstance(items, list) or not items:
        raise _bad("* BatchEmbedContentsRequest.requests: requests is not specified\n")
    if len(items) > MAX_BATCH_EMBEDDINGS:
        raise _bad(f"* BatchEmbedContentsRequest.requests: at most {MAX_BATCH_EMBEDDINGS} "
                   "requests can be in one batch\n")
    name = "models/" + model
    dims = state.config.embedding_dimensions
    results = [_embedding(r, f"requests[{i}]", dims, name) for i, r in enumerate(items)]
    await _fault(state, knobs)
    if knobs.latency > 0:
        await state.pause(knobs.latency)
    return web.Response(body=orjson.dumps({"embeddings": results}), headers=_JSON)


_METHODS = {
    "generateContent": _generate,
    "streamGenerateContent": _stream_generate,
    "embedContent": _embed_content,
    "batchEmbedContents": _batch_embed,
}
