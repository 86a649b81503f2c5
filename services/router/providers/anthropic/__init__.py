"""Anthropic's Messages API (`POST {base_url}/v1/messages`) behind the OpenAI dialect.

One module per job:

* `provider`: `AnthropicProvider`, the HTTP calls (URL, headers, the API key).
* `request`: OpenAI chat completion request -> Anthropic Messages request
  (what is translated, ignored, or rejected with 400).
* `response`: Anthropic message -> chat.completion (finish reasons, usage).
* `stream`: Anthropic stream events -> chat.completion.chunk objects
  (`StreamTranslator`).
* `errors`: Anthropic error answers -> Lockgate errors.
"""

from services.router.providers.anthropic.errors import anthropic_error
from services.router.providers.anthropic.provider import DEFAULT_VERSION, AnthropicProvider
from services.router.providers.anthropic.request import DEFAULT_MAX_TOKENS, to_anthropic
from services.router.providers.anthropic.response import (
    FINISH_REASONS,
    finish_reason,
    openai_usage,
    to_completion,
)
from services.router.providers.anthropic.stream import StreamTranslator

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_VERSION",
    "FINISH_REASONS",
    "AnthropicProvider",
    "StreamTranslator",
    "anthropic_error",
    "finish_reason",
    "openai_usage",
    "to_anthropic",
    "to_completion",
]
