"""Usage the provider did not report, counted with the shipped tokenizer
(services/router/tokens.py) and marked `estimated` in the ledger.

Streams are the usual case (a provider or an OpenAI-compatible server that
ignores `stream_options.include_usage`); replies without `usage` and
embeddings without token counts (Gemini) are the others.
"""

from __future__ import annotations

import time

from services.router.openai_api import TokenCounts
from services.router.tokens import count_text, estimate_completion_tokens, estimate_prompt_tokens


class StreamTally:
    """What a stream delivered, for counting when no usage arrives."""

    __slots__ = ("texts", "tool_args")

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.tool_args: list[str] = []

    def add(self, chunk: dict) -> None:
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                continue
            content = delta.get("content")
            if isinstance(content, str) and content:
                self.texts.append(content)
            for call in delta.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    for field in ("name", "arguments"):
                        value = function.get(field)
                        if isinstance(value, str) and value:
                            self.tool_args.append(value)

    def usage(self, body: dict) -> TokenCounts:
        return TokenCounts(
            input=estimate_prompt_tokens(body),
            output=estimate_completion_tokens("".join(self.texts), self.tool_args),
            estimated=True,
        )


def completion_usage(body: dict, reply: dict) -> TokenCounts:
    """Estimated usage of a non-streamed chat completion."""
    tally = StreamTally()
    for choice in reply.get("choices") or ():
        if isinstance(choice, dict) and isinstance(choice.get("message"), dict):
            tally.add({"choices": [{"delta": choice["message"]}]})
    return tally.usage(body)


def embeddings_usage(body: dict) -> TokenCounts:
    """Estimated input tokens of an embeddings request (strings, or token arrays)."""
    value = body.get("input")
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    total = 0
    for item in items:
        if isinstance(item, str):
            total += count_text(item)
        elif isinstance(item, list):
            total += len(item)
        elif isinstance(item, int):
            total += 1
    return TokenCounts(input=total, estimated=True)


def usage_chunk(usage: TokenCounts, model: str, chunk_id: str) -> dict:
    """A final OpenAI usage chunk carrying an estimate, for clients that asked
    for usage (`stream_options.include_usage`) from a provider that sent none."""
    return {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [],
        "usage": {
            "prompt_tokens": usage.input,
            "completion_tokens": usage.output,
            "total_tokens": usage.input + usage.output,
        },
    }
