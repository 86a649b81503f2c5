"""Upstream HTTP shared by every provider adapter: bounded bodies, timeouts,
an SSE reader, and one mapping from transport failures and provider statuses
to lockgate.errors.

Unary calls (`post_json`) and streams (`post_sse`) go over the lean keep-alive
client (lockgate/upstream_client.py: the router's event loop is the stack's
bottleneck, and aiohttp was its largest part per call and per chunk), the
router's shared one, or one of the adapter's own when built alone (tests,
tools).

The base URL is always the admin-configured one (ProviderConfig.base_url);
adapters only append documented paths to it, so a request can never steer the
gateway to another host (SSRF).

Timeouts (TimeoutsConfig): `connect` bounds the TCP/TLS handshake;
`first_token` the wait for the response headers and, for a stream, its first
event; `total` the whole attempt, stream included. The caller's own deadline
is applied by the router by shrinking `total`.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextvars import ContextVar

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
from lockgate.upstream_client import (
    BadResponse,
    RefusedRequest,
    ResponseTooLarge,
    UpstreamClient,
    UpstreamConnectError,
)
from services.router.config import TimeoutsConfig
from services.router.providers.sse import SSEEvent, SSEParser

#: Bound on the part of an error body we read (the message is all we keep).
MAX_ERROR_BYTES = 64 * 1024

#: The current client request's headers (lower-case name -> value), set by the
#: servicer; providers pass on the ones their `forward_headers` allow.
CLIENT_HEADERS: ContextVar[tuple[tuple[str, str], ...]] = ContextVar("client_headers", default=())


#: Maps a non-2xx answer to an error: (status, parsed JSON body or None,
#: body text, headers with lower-case names) -> error, or None to use the
#: default mapping.
ErrorHook = Callable[[int, object, str, Mapping[str, str]], LockgateError | None]


class UpstreamHTTP:
    """One provider's view of the shared connection pool."""

    def __init__(
        self,
        provider: str,
        *,
        max_response_bytes: int = 16 * 1024 * 1024,
        error_hook: ErrorHook | None = None,
        forward_headers: Sequence[str] = (),
        upstream: UpstreamClient | None = None,
    ):
        self.provider = provider
        #: The pool every call goes over: the router's, or one of its own.
        self.upstream = upstream if upstream is not None else UpstreamClient()
        self.max_response_bytes = max_response_bytes
        self.error_hook = error_hook
        self._exact = frozenset(h for h in forward_headers if not h.endswith("*"))
        self._prefixes = tuple(h[:-1] for h in forward_headers if h.endswith("*"))

    def _with_forwarded(self, headers: dict[str, str]) -> dict[str, str]:
        """The adapter's headers plus the client headers config allows through."""
        if not self._exact and not self._prefixes:
            return headers
        extra = {
            name: value for name, value in CLIENT_HEADERS.get()
            if name in self._exact or name.startswith(self._prefixes)
        }
        return {**extra, **headers} if extra else headers

    async def post_json(
        self, url: str, payload: dict, headers: dict[str, str], timeouts: TimeoutsConfig
    ) -> dict:
        """POST a JSON body; the JSON object answered, or a mapped LockgateError."""
        try:
            reply = await self.upstream.post(
                url, orjson.dumps(payload), self._with_forwarded(headers),
                connect_timeout=timeouts.connect, max_bytes=self.max_response_bytes,
                within=timeouts.total,
            )
        except ResponseTooLarge:
            raise UpstreamError(f"provider {self.provider!r} sent an oversized response") from None
        except Exception as exc:  # noqa: BLE001 - every transport failure is mapped
            raise self.transport_error(exc) from None
        if reply.status >= 300:
            raise self._answer_error(reply.status, reply.body[:MAX_ERROR_BYTES], reply.headers)
        return self._json_object(reply.body)

    def _json_object(self, raw: bytes) -> dict:
        try:
            reply = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamError(f"provider {self.provider!r} sent invalid JSON") from None
        if not isinstance(reply, dict):
            raise UpstreamError(f"provider {self.provider!r} sent an unexpected response")
        return reply

    async def post_sse(
        self, url: str, payload: dict, headers: dict[str, str], timeouts: TimeoutsConfig,
        last_event: Callable[[SSEEvent], bool] | None = None,
    ) -> AsyncIterator[SSEEvent]:
        """POST, then the server-sent events of the answer, each bounded in size.
        `last_event` tells the provider's end-of-stream event: a reader that stops
        there leaves the connection for the next call (lockgate/upstream_stream.py,
        `DRAIN_SECONDS`).

        The first event must arrive within `first_token`, the stream must end
        within `total`: one deadline on the stream, moved once, when the first
        event is in (a timer per read was a quarter of the router's event loop
        with a thousand streams: docs/performance.md, "Streams"). Closing the
        generator before the last event closes the connection (a client that
        went away frees the provider at once).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeouts.total
        first_by = loop.time() + min(timeouts.first_token, timeouts.total)
        try:
            stream = await self.upstream.stream(
                url, orjson.dumps(payload), self._with_forwarded(headers),
                connect_timeout=timeouts.connect, head_by=first_by,
            )
            at_last = False
            try:
                if stream.status >= 300:
                    raise self._answer_error(
                        stream.status, await stream.read_upto(MAX_ERROR_BYTES), stream.headers)
                parser = SSEParser(self.max_response_bytes)
                waiting_first = True
                while True:
                    # Whatever has arrived, parsed at once: one await per network read.
                    chunk = await stream.read()
                    for event in parser.feed(chunk) if chunk else parser.finish():
                        if waiting_first:
                            stream.expire_at(deadline)
                            waiting_first = False
                        at_last = last_event is not None and last_event(event)
                        yield event
                    if not chunk:
                        break
            finally:
                # Read to its end, or left at the provider's last event, the
                # connection goes back to the pool; abandoned midway, it is closed
                # so the provider stops generating.
                stream.close(at_last_event=at_last)
        except LockgateError:
            raise
        except Exception as exc:  # noqa: BLE001 - every transport failure is mapped
            raise self.transport_error(exc) from None

    def transport_error(self, exc: BaseException) -> LockgateError:
        name = self.provider
        if isinstance(exc, TimeoutError):
            return UpstreamTimeout(f"provider {name!r} timed out")
        if isinstance(exc, UpstreamConnectError | ConnectionRefusedError):
            return UpstreamUnavailable(f"provider {name!r} is unreachable")
        if isinstance(exc, ConnectionError):
            return UpstreamError(f"provider {name!r} closed the connection")
        if isinstance(exc, BadResponse):
            return UpstreamError(f"provider {name!r} sent an unreadable response")
        if isinstance(exc, RefusedRequest):
            return UpstreamError(f"request to provider {name!r} not sent: {exc}")
        return UpstreamError(f"provider {name!r} failed: {type(exc).__name__}")

    def _answer_error(self, status: int, raw: bytes, headers) -> LockgateError:
        """A non-2xx answer (its status, the start of its body, its headers) as an error."""
        try:
            parsed: object = orjson.loads(raw)
        except orjson.JSONDecodeError:
            parsed = None
        text = raw[:500].decode(errors="replace")
        if self.error_hook is not None:
            mapped = self.error_hook(status, parsed, text, headers)
            if mapped is not None:
                return mapped
        return status_error(
            self.provider, status, error_message(parsed) or text,
            retry_after=retry_after_seconds(headers), code=_passed_code(parsed),
        )


def status_error(
    provider: str, status: int, detail: str, *, retry_after: float | None = None,
    code: str | None = None,
) -> LockgateError:
    """The default mapping of a provider's non-2xx status.

    429, 5xx and 529 are retryable upstream failures; 400-class answers are
    the caller's (returned as they are); 401/403 mean the gateway's own
    provider credentials are wrong, which is not the caller's fault.
    """
    detail = redact(detail)[:500]
    where = f"provider {provider!r} answered {status}"
    if status == 429:
        error: LockgateError = RateLimited(f"{where}: {detail}", code=code or "upstream_rate_limited")
    elif status in (400, 404, 409, 413, 422):
        error = InvalidRequest(f"{where}: {detail}", code=code or "upstream_invalid_request")
    elif status in (401, 403):
        error = UpstreamError(f"{where}: the gateway's credentials were rejected")
    elif status in (502, 503, 504, 529):
        error = UpstreamUnavailable(f"{where}: {detail}", code=code)
    else:
        error = UpstreamError(f"{where}: {detail}", code=code)
    error.retry_after = retry_after
    return error


#: Provider error codes a client can act on, passed through as error.code
#: (everything else becomes the gateway's own code for the status).
PASSED_CODES = frozenset({"context_length_exceeded", "content_filter", "content_policy_violation"})


def _passed_code(payload: object) -> str | None:
    error = payload.get("error") if isinstance(payload, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if code in PASSED_CODES else None


def error_message(payload: object) -> str:
    """`error.message` of OpenAI, Anthropic, Gemini and Mistral error bodies."""
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
        if isinstance(error, str):
            return error
        if isinstance(payload.get("message"), str):
            return payload["message"]
    return ""


def retry_after_seconds(headers) -> float | None:
    """`retry-after-ms` (OpenAI), or `retry-after` as seconds or an HTTP date."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def api_key(env_name: str | None) -> str | None:
    """The provider key from the named environment variable (never from config)."""
    return os.environ.get(env_name) if env_name else None
