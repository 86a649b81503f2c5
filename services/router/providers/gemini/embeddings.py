"""Embeddings: OpenAI embeddings <-> batchEmbedContents.

Input (a string or a list of strings; token arrays -> 400),
dimensions -> outputDimensionality, one batchEmbedContents call. Gemini reports
no token counts for embeddings: usage is 0/0 and the router estimates it.
`encoding_format: base64` is produced here from the floats.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from lockgate.errors import InvalidRequest, UpstreamError
from services.router.providers.gemini.request import _integer


def to_embed_request(body: Any, model: str) -> tuple[dict, str]:
    """(batchEmbedContents request, encoding_format) for an OpenAI embeddings body."""
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    for field, value in body.items():
        if value is not None and field not in (
            "input", "model", "dimensions", "encoding_format", "user"
        ):
            raise InvalidRequest(f"'{field}' is not supported by Gemini", param=field)
    inputs = body.get("input")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs:
        raise InvalidRequest("'input' must be a string or a non-empty array", param="input")
    if not all(isinstance(item, str) for item in inputs):
        raise InvalidRequest(
            "'input' must hold strings: Gemini does not take token arrays", param="input"
        )
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise InvalidRequest(
            "'encoding_format' must be 'float' or 'base64'", param="encoding_format"
        )
    extra: dict[str, Any] = {}
    if body.get("dimensions") is not None:
        extra["outputDimensionality"] = _integer(body["dimensions"], "dimensions", 1)
    name = "models/" + model.removeprefix("models/")
    requests = [{"model": name, "content": {"parts": [{"text": s}]}, **extra} for s in inputs]
    return {"requests": requests}, encoding


def from_embed_response(
    reply: dict, model: str, expected: int, encoding: str, provider: str = "gemini"
) -> dict:
    embeddings = reply.get("embeddings")
    if not isinstance(embeddings, list) or len(embeddings) != expected:
        raise UpstreamError(f"provider {provider!r} sent an unexpected response")
    data = []
    for index, item in enumerate(embeddings):
        values = item.get("values") if isinstance(item, dict) else None
        if not isinstance(values, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in values
        ):
            raise UpstreamError(f"provider {provider!r} sent an unexpected response")
        vector: Any = values
        if encoding == "base64":
            vector = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": 0, "total_tokens": 0},
    }
