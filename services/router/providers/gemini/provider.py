"""GeminiProvider: the HTTP calls to the Google Gemini API (v1beta).

Wire format: `POST {base_url}/v1beta/models/{model}:generateContent`,
`…:streamGenerateContent?alt=sse` (each SSE event's data is one
GenerateContentResponse) and `…:batchEmbedContents`. The key goes in the
`x-goog-api-key` header, never in the URL (`?key=` would land in access logs).
`base_url` carries no version, e.g. `https://generativelanguage.googleapis.com`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

import orjson

from lockgate.errors import UpstreamError
from lockgate.upstream_client import UpstreamClient
from services.router.config import ProviderConfig, TimeoutsConfig
from services.router.providers.gemini.embeddings import from_embed_response, to_embed_request
from services.router.providers.gemini.errors import gemini_error
from services.router.providers.gemini.request import to_gemini_request
from services.router.providers.gemini.response import StreamTranslator, from_gemini_response
from services.router.providers.http import UpstreamHTTP, api_key

API_VERSION = "v1beta"


class GeminiProvider:
    def __init__(self, name: str, config: ProviderConfig, upstream: UpstreamClient | None = None):
        self.name = name
        self.base_url = config.base_url
        self.http = UpstreamHTTP(
            name, max_response_bytes=config.max_response_bytes,
            error_hook=lambda status, parsed, text, headers: gemini_error(
                name, status, parsed, text, headers
            ),
            forward_headers=config.forward_headers,
            upstream=upstream,
        )
        self.headers = {"content-type": "application/json"}
        key = api_key(config.api_key_env)
        if key:
            self.headers["x-goog-api-key"] = key

    def url(self, model: str, method: str) -> str:
        """`{base_url}/v1beta/models/{model}:{method}` (a `models/` prefix is tolerated)."""
        model = model.removeprefix("models/")
        return f"{self.base_url}/{API_VERSION}/models/{quote(model, safe='')}:{method}"

    async def chat(self, body: dict, model: str, timeouts: TimeoutsConfig) -> dict:
        payload = to_gemini_request(body)
        reply = await self.http.post_json(
            self.url(model, "generateContent"), payload, self.headers, timeouts
        )
        return from_gemini_response(reply, model, self.name)

    async def stream_chat(
        self, body: dict, model: str, timeouts: TimeoutsConfig
    ) -> AsyncIterator[dict]:
        payload = to_gemini_request(body)
        url = self.url(model, "streamGenerateContent") + "?alt=sse"
        events = self.http.post_sse(url, payload, self.headers, timeouts)
        stream = StreamTranslator(model, self.name)
        try:
            async for event in events:
                try:
                    reply = orjson.loads(event.data)
                except orjson.JSONDecodeError:
                    reply = None
                if not isinstance(reply, dict):
                    raise UpstreamError(f"provider {self.name!r} sent an invalid stream chunk")
                for chunk in stream.feed(reply):
                    yield chunk
        finally:
            await events.aclose()
        for chunk in stream.end():
            yield chunk

    async def embed(self, body: dict, model: str, timeouts: TimeoutsConfig) -> dict:
        payload, encoding = to_embed_request(body, model)
        reply = await self.http.post_json(
            self.url(model, "batchEmbedContents"), payload, self.headers, timeouts
        )
        return from_embed_response(reply, model, len(payload["requests"]), encoding, self.name)
