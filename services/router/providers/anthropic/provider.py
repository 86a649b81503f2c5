"""AnthropicProvider: the HTTP calls to Anthropic's Messages API.

Wire format: `POST {base_url}/v1/messages`; `base_url` is the API root
without `/v1` (e.g. `https://api.anthropic.com`).
Headers: `x-api-key` (from `api_key_env`), `anthropic-version`
(`ProviderConfig.api_version`, default `2023-06-01`), `content-type`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from lockgate.errors import InvalidRequest, LockgateError, UpstreamError
from lockgate.upstream_client import UpstreamClient
from services.router.config import ProviderConfig, TimeoutsConfig
from services.router.providers.anthropic.errors import anthropic_error
from services.router.providers.anthropic.request import to_anthropic
from services.router.providers.anthropic.response import to_completion
from services.router.providers.anthropic.stream import StreamTranslator
from services.router.providers.http import UpstreamHTTP, api_key
from services.router.providers.sse import SSEEvent

DEFAULT_VERSION = "2023-06-01"


class AnthropicProvider:
    def __init__(self, name: str, config: ProviderConfig, upstream: UpstreamClient | None = None):
        self.name = name
        self.url = f"{config.base_url}/v1/messages"
        self.http = UpstreamHTTP(
            name, max_response_bytes=config.max_response_bytes,
            error_hook=self._error_hook, forward_headers=config.forward_headers,
            upstream=upstream,
        )
        self.headers = {
            "content-type": "application/json",
            "anthropic-version": config.api_version or DEFAULT_VERSION,
        }
        key = api_key(config.api_key_env)
        if key:
            self.headers["x-api-key"] = key

    async def chat(self, body: dict, model: str, timeouts: TimeoutsConfig) -> dict:
        payload = to_anthropic(body, model)
        reply = await self.http.post_json(self.url, payload, self.headers, timeouts)
        try:
            return to_completion(reply)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise UpstreamError(f"provider {self.name!r} sent an unexpected response") from None

    async def stream_chat(
        self, body: dict, model: str, timeouts: TimeoutsConfig
    ) -> AsyncIterator[dict]:
        payload = {**to_anthropic(body, model), "stream": True}
        events = self.http.post_sse(self.url, payload, self.headers, timeouts,
                                    last_event=_is_message_stop)
        translator = StreamTranslator(self.name)
        try:
            async for event in events:
                try:
                    data = orjson.loads(event.data)
                except orjson.JSONDecodeError:
                    raise UpstreamError(
                        f"provider {self.name!r} sent an invalid stream event"
                    ) from None
                for chunk in translator.feed(data):
                    yield chunk
                if translator.done:
                    break
        finally:
            await events.aclose()
        if not translator.done:
            raise UpstreamError(f"provider {self.name!r} ended the stream early")

    async def embed(self, body: dict, model: str, timeouts: TimeoutsConfig) -> dict:
        raise InvalidRequest("Anthropic has no embeddings API", param="model")

    def _error_hook(
        self, status: int, payload: object, text: str, headers: Any
    ) -> LockgateError | None:
        return anthropic_error(self.name, status, payload, text, headers)


def _is_message_stop(event: SSEEvent) -> bool:
    """Anthropic's end-of-stream event."""
    return event.event == "message_stop"
