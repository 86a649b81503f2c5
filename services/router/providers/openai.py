"""OpenAI-compatible provider (OpenAI, vLLM, Ollama, Groq, the simulator…)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import aiohttp
import orjson

from lockgate.errors import (
    InvalidRequest,
    LockgateError,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from lockgate.logs import redact
from services.router.config import ProviderConfig

#: Bound on a non-streamed response or one SSE line from a provider.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024


class OpenAIProvider:
    def __init__(self, name: str, config: ProviderConfig, session: aiohttp.ClientSession):
        self.name = name
        self.url = f"{config.base_url}/chat/completions"
        self.session = session
        self.timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=config.connect_timeout_seconds, sock_read=config.timeout_seconds
        )
        self.headers = {"content-type": "application/json"}
        if config.api_key_env:
            key = os.environ.get(config.api_key_env)
            if key:
                self.headers["authorization"] = f"Bearer {key}"

    async def chat(self, body: dict, model: str) -> dict:
        payload = {**body, "model": model, "stream": False}
        payload.pop("stream_options", None)
        try:
            async with self.session.post(
                self.url, data=orjson.dumps(payload), headers=self.headers, timeout=self.timeout
            ) as resp:
                if resp.status != 200:
                    raise await self._error(resp)
                raw = await resp.content.read(MAX_RESPONSE_BYTES + 1)
                if len(raw) > MAX_RESPONSE_BYTES:
                    raise UpstreamError(f"provider {self.name!r} sent an oversized response")
        except LockgateError:
            raise
        except Exception as exc:  # noqa: BLE001 - every transport failure is mapped
            raise self._transport_error(exc) from None
        try:
            reply = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamError(f"provider {self.name!r} sent invalid JSON") from None
        if not isinstance(reply, dict) or not isinstance(reply.get("choices"), list):
            raise UpstreamError(f"provider {self.name!r} sent an unexpected response")
        return reply

    async def stream_chat(self, body: dict, model: str) -> AsyncIterator[dict]:
        # Always ask for usage: the ledger needs it, whether the client asked or not.
        payload = {**body, "model": model, "stream": True,
                   "stream_options": {"include_usage": True}}
        try:
            async with self.session.post(
                self.url, data=orjson.dumps(payload), headers=self.headers, timeout=self.timeout
            ) as resp:
                if resp.status != 200:
                    raise await self._error(resp)
                done = False
                async for line in _lines(resp.content):
                    if not line.startswith(b"data:"):
                        continue  # blank separators, comments, event: lines
                    data = line[5:].strip()
                    if data == b"[DONE]":
                        done = True
                        break
                    try:
                        chunk = orjson.loads(data)
                    except orjson.JSONDecodeError:
                        raise UpstreamError(
                            f"provider {self.name!r} sent an invalid stream chunk"
                        ) from None
                    if isinstance(chunk, dict) and "error" in chunk:
                        raise UpstreamError(
                            f"provider {self.name!r} failed mid-stream: "
                            f"{_message(chunk)}"
                        )
                    yield chunk
                if not done:
                    raise UpstreamError(f"provider {self.name!r} ended the stream early")
        except LockgateError:
            raise
        except Exception as exc:  # noqa: BLE001 - every transport failure is mapped
            raise self._transport_error(exc) from None

    def _transport_error(self, exc: Exception) -> LockgateError:
        if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
            return UpstreamTimeout(f"provider {self.name!r} timed out")
        if isinstance(exc, aiohttp.ClientConnectorError | ConnectionError):
            return UpstreamUnavailable(f"provider {self.name!r} is unreachable")
        if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
            return UpstreamError(f"provider {self.name!r} closed the connection")
        return UpstreamError(f"provider {self.name!r} failed: {type(exc).__name__}")

    async def _error(self, resp: aiohttp.ClientResponse) -> LockgateError:
        raw = await resp.content.read(64 * 1024)
        try:
            detail = _message(orjson.loads(raw))
        except orjson.JSONDecodeError:
            detail = raw[:200].decode(errors="replace")
        detail = redact(detail)[:500]
        where = f"provider {self.name!r} answered {resp.status}"
        if resp.status == 429:
            return RateLimited(f"{where}: {detail}", code="upstream_rate_limited")
        if resp.status in (400, 404, 413, 422):
            return InvalidRequest(f"{where}: {detail}", code="upstream_invalid_request")
        if resp.status in (401, 403):
            # The gateway's provider credentials are wrong: not the caller's fault.
            return UpstreamError(f"{where}: the gateway's credentials were rejected")
        if resp.status in (502, 503, 504, 529):
            return UpstreamUnavailable(f"{where}: {detail}")
        return UpstreamError(f"{where}: {detail}")


def _message(payload: object) -> str:
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
        if isinstance(error, str):
            return error
    return "no error message"


async def _lines(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """Lines of an SSE body, each bounded."""
    while True:
        line = await content.readline()
        if not line:
            return
        if len(line) > MAX_RESPONSE_BYTES:
            raise UpstreamError("provider sent an oversized stream line")
        yield line.rstrip(b"\r\n")
