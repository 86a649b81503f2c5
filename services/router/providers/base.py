"""What the router needs from a provider adapter.

Adapters speak OpenAI chat completions on the router side (the lingua franca)
and the provider's own wire format on the other. They raise lockgate.errors
(UpstreamError and friends, InvalidRequest, RateLimited) — never transport
exceptions — so the router can decide about failover.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol


class Provider(Protocol):
    name: str

    async def chat(self, body: dict, model: str) -> dict:
        """A complete OpenAI chat.completion object for the request body."""
        ...

    def stream_chat(self, body: dict, model: str) -> AsyncIterator[dict]:
        """OpenAI chat.completion.chunk objects; the last one carries usage.

        The first chunk is awaited before anything is sent to the client, so an
        adapter must raise for a failed call before yielding.
        """
        ...
