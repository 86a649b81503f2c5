"""POST /v1/embeddings: deterministic unit vectors in OpenAI's embeddings shape."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from lockgate.sim import replies
from lockgate.sim.config import MAX_EMBEDDING_DIMENSIONS
from lockgate.sim.errors import JSON_HEADERS, bad_type, int_param, invalid, read_json
from lockgate.sim.state import STATE, State

MAX_EMBEDDING_INPUTS = 2048


async def embeddings(request: web.Request) -> web.Response:
    state: State = request.app[STATE]
    knobs = state.prelude(request)
    body = await read_json(request)

    model = body.get("model")
    if model is None:
        raise invalid("you must provide a model parameter", "model", "missing_required_parameter")
    if not isinstance(model, str):
        raise bad_type("model", "string", model)
    items = _embedding_inputs(body.get("input"))
    dims = int_param(body, "dimensions", 1, MAX_EMBEDDING_DIMENSIONS)
    if dims is None:
        dims = state.config.embedding_dimensions
    encoding = body.get("encoding_format")
    if encoding not in (None, "float", "base64"):
        raise invalid(
            f"Invalid value: {str(encoding)[:40]!r}. Supported values are: 'float' and 'base64'.",
            "encoding_format",
            "invalid_value",
        )
    await state.fault(knobs)

    data = []
    tokens = 0
    for index, (key, count) in enumerate(items):
        tokens += count
        vector: Any = replies.embedding(key, dims)
        if encoding == "base64":
            vector = orjson.Fragment(b'"' + replies.embedding_base64(vector) + b'"')
        data.append({"object": "embedding", "index": index, "embedding": vector})
    if knobs.latency > 0:
        await state.pause(knobs.latency)
    out = orjson.dumps(
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )
    return web.Response(body=out, headers=JSON_HEADERS)


def _embedding_inputs(value: Any) -> list[tuple[bytes, int]]:
    """(hash key, tokens) of every input of an embeddings request."""
    if value is None:
        raise invalid(
            "Missing required parameter: 'input'.", "input", "missing_required_parameter"
        )
    if isinstance(value, str):
        value = [value]
    elif not isinstance(value, list):
        raise bad_type("input", "string or array", value)
    elif value and all(isinstance(t, int) and not isinstance(t, bool) for t in value):
        value = [value]  # one input given as token ids
    if not value:
        raise invalid(
            "'$.input' is invalid. Please check the API reference.", "input", "empty_array"
        )
    if len(value) > MAX_EMBEDDING_INPUTS:
        raise invalid(
            f"Invalid 'input': array too long. Expected an array with maximum length "
            f"{MAX_EMBEDDING_INPUTS}, but got an array with length {len(value)} "
            "instead.",
            "input",
            "array_above_max_length",
        )
    items = []
    for item in value:
        if isinstance(item, str) and item:
            items.append((item.encode(), replies.count_tokens(item)))
        elif (
            isinstance(item, list)
            and item
            and all(isinstance(t, int) and not isinstance(t, bool) for t in item)
        ):
            items.append((orjson.dumps(item), len(item)))
        else:
            raise invalid(
                "'$.input' is invalid. Please check the API reference.", "input", "invalid_value"
            )
    return items
