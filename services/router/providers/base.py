"""What the router needs from a provider adapter.

Adapters speak OpenAI chat completions on the router side (the lingua franca)
and the provider's own wire format on the other: requests, responses, stream
events, errors and usage are translated exactly as the provider documents
them. They raise lockgate.errors (UpstreamError and friends for retryable
failures, RateLimited with `retry_after`, InvalidRequest for the caller's
mistakes and for fields the provider cannot honour, naming the field in
`param`), never transport exceptions, so the router can decide about retries
and failover. All HTTP goes through providers/http.py (UpstreamHTTP).

`model` is the provider's model name from the deployment config (for Azure,
the deployment name); `timeouts` are the deployment's, already shrunk to the
caller's deadline.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from services.router.config import TimeoutsConfig


class Provider(Protocol):
    name: str

    async def chat(self, body: dict, model: str, timeouts: TimeoutsConfig) -> dict:
        """A complete OpenAI `chat.completion` object for the request body, with
        `usage` (including `prompt_tokens_details.cached_tokens` when known)."""
        ...

    def stream_chat(
        self, body: dict, model: str, timeouts: TimeoutsConfig
    ) -> AsyncIterator[dict]:
        """OpenAI `chat.completion.chunk` objects. When the provider reports
        usage, the last chunk carries it (`choices: []`, `usage: {...}`); when
        it does not, no chunk has usage and the router estimates it.

        The router awaits the first chunk before anything reaches the client,
        so an adapter must raise for a failed call before yielding; it yields
        nothing for provider keep-alives (pings)."""
        ...

    async def embed(self, body: dict, model: str, timeouts: TimeoutsConfig) -> dict:
        """An OpenAI embeddings `list` object for an OpenAI embeddings request
        body; InvalidRequest when the provider has no embeddings API."""
        ...
