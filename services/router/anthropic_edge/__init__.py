"""The Anthropic-compatible edge: Anthropic's Messages API in, OpenAI chat completions inside.

Clients using the official `anthropic` SDK call `POST /v1/messages`. The router
speaks OpenAI chat completions to every provider adapter (the lingua franca),
so this package translates, purely (no I/O), one module per job:

* `validate`: `parse_messages_request` / `validate_messages_request`, the
  request checked the way Anthropic checks what we rely on; errors are
  `InvalidRequest` with the dotted field path (`messages.0.content.1.source`)
  in the message and `param`.
* `request`: `to_openai_request`, the request as an OpenAI chat body.
* `response`: `to_anthropic_message`, an OpenAI `chat.completion` as an
  Anthropic `message`.
* `stream`: `StreamTranslator`, OpenAI `chat.completion.chunk`s as Anthropic's
  SSE events (`message_start`, `content_block_start/delta/stop`,
  `message_delta`, `message_stop`); `error_event` for a failure after the
  stream started.
* `errors`: `anthropic_error_body` / `anthropic_error_status`, errors in
  Anthropic's shape.
"""

from services.router.anthropic_edge.errors import (
    OVERLOADED_STATUS,
    anthropic_error_body,
    anthropic_error_status,
    anthropic_error_type,
)
from services.router.anthropic_edge.request import to_openai_request
from services.router.anthropic_edge.response import (
    anthropic_usage,
    message_id,
    stop_reason,
    to_anthropic_message,
)
from services.router.anthropic_edge.stream import (
    PING_EVENT,
    StreamTranslator,
    error_event,
    sse_event,
)
from services.router.anthropic_edge.validate import (
    parse_messages_request,
    validate_messages_request,
)

__all__ = [
    "OVERLOADED_STATUS",
    "PING_EVENT",
    "StreamTranslator",
    "anthropic_error_body",
    "anthropic_error_status",
    "anthropic_error_type",
    "anthropic_usage",
    "error_event",
    "message_id",
    "parse_messages_request",
    "sse_event",
    "stop_reason",
    "to_anthropic_message",
    "to_openai_request",
    "validate_messages_request",
]
