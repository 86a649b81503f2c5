"""OpenAI and any OpenAI-compatible server by base URL (vLLM, Ollama, Groq,
Together, DeepSeek, OpenRouter, the Lockgate simulator…).

The request body is already OpenAI's; the adapter sets the provider's model
name, forces `stream_options.include_usage` on streams (the ledger needs usage
whether the client asked or not) and checks the shape of what comes back.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable

import orjson

from lockgate.errors import UpstreamError
from lockgate.logs import redact
from lockgate.upstream_client import UpstreamClient
from services.router.config import ProviderConfig, TimeoutsConfig
from services.router.providers.http import UpstreamHTTP, api_key, error_message
from services.router.providers.sse import SSEEvent


class OpenAIProvider:
    def __init__(self, name: str, config: ProviderConfig, upstream: UpstreamClient | None = None):
        self.name = name
        self.base_url = config.base_url
        self.http = UpstreamHTTP(
            name, max_response_bytes=config.max_response_bytes,
            forward_headers=config.forward_headers,
            upstream=upstream,
        )
        self.headers = {"content-type": "application/json"}
        key = api_key(config.api_key_env)
        if key:
            self.headers["authorization"] = f"Bearer {key}"

    def url(self, operation: str, model: str) -> str:
        """`chat/completions` or `embeddings` under the configured base URL
        (the model travels in the body; Azure puts it in the path instead)."""
        return f"{self.base_url}/{operation}"

    async def chat(self, body: dict, model: str, timeouts: TimeoutsConfig) -> dict:
        payload = {**body, "model": model, "stream": False}
        payload.pop("stream_options", None)
        reply = await self.http.post_json(
            self.url("chat/completions", model), payload, self.headers, timeouts
        )
        if not isinstance(reply.get("choices"), list):
            raise UpstreamError(f"provider {self.name!r} sent an unexpected response")
        return reply

    def stream_chat(
        self, body: dict, model: str, timeouts: TimeoutsConfig
    ) -> AsyncIterator[dict]:
        payload = {**body, "model": model, "stream": True,
                   "stream_options": {"include_usage": True}}
        events = self.http.post_sse(self.url("chat/completions", model), payload, self.headers,
                                    timeouts, last_event=is_done)
        return stream_chunks(self.name, events)

    async def embed(self, body: dict, model: str, timeouts: TimeoutsConfig) -> dict:
        reply = await self.http.post_json(
            self.url("embeddings", model), {**body, "model": model}, self.headers, timeouts
        )
        if not isinstance(reply.get("data"), list):
            raise UpstreamError(f"provider {self.name!r} sent an unexpected response")
        return reply


def _error_detail(chunk: dict) -> str | None:
    """An OpenAI error object's message ("" without one), or None for a chunk."""
    return error_message(chunk) if "error" in chunk else None


def is_done(event: SSEEvent) -> bool:
    """OpenAI's end-of-stream event, `data: [DONE]`."""
    return event.data == b"[DONE]"


async def stream_chunks(
    provider: str,
    events: AsyncGenerator[SSEEvent, None],
    error_detail: Callable[[dict], str | None] = _error_detail,
) -> AsyncIterator[dict]:
    """The JSON objects of an OpenAI-style event stream, through `data: [DONE]`.

    An event that is not a JSON object, an error sent mid-stream
    (`error_detail` gives its message, None for a chunk) and a stream ending
    without [DONE] are UpstreamErrors. `events` is closed when this ends or is
    closed.
    """
    done = False
    try:
        async for event in events:
            if is_done(event):
                done = True
                break
            try:
                chunk = orjson.loads(event.data)
            except orjson.JSONDecodeError:
                chunk = None
            if not isinstance(chunk, dict):
                raise UpstreamError(f"provider {provider!r} sent an invalid stream chunk")
            detail = error_detail(chunk)
            if detail is not None:
                detail = redact(detail)[:500] or "no error message"
                raise UpstreamError(f"provider {provider!r} failed mid-stream: {detail}")
            yield chunk
    finally:
        await events.aclose()
    if not done:
        raise UpstreamError(f"provider {provider!r} ended the stream early")
