"""The OpenAI chat completions dialect at the router's edge: request checks and
response shaping, byte-exact with what the official SDK expects."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from lockgate.errors import InvalidRequest

_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}


@dataclass(frozen=True, slots=True)
class TokenCounts:
    input: int = 0
    output: int = 0
    cached_input: int = 0
    #: Counted by Lockgate with its tokenizer, not reported by the provider.
    estimated: bool = False


def parse_chat_request(raw: bytes) -> dict:
    """The request body as a dict, or InvalidRequest saying what is wrong."""
    return validate_chat_request(_json_object(raw))


def parse_embeddings_request(raw: bytes) -> dict:
    """An OpenAI embeddings request: model, and input as a string, a list of
    strings, a token array or a list of token arrays."""
    return validate_embeddings_request(_json_object(raw))


def validate_embeddings_request(body: dict) -> dict:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("you must provide a model parameter", param="model")
    value = body.get("input")
    if isinstance(value, str):
        ok = bool(value)
    elif isinstance(value, list) and value:
        ok = all(isinstance(v, str) and v for v in value) or all(
            isinstance(v, int) for v in value
        ) or all(isinstance(v, list) and v and all(isinstance(t, int) for t in v) for v in value)
    else:
        ok = False
    if not ok:
        raise InvalidRequest(
            "'input' must be a non-empty string, array of strings, or array of token arrays",
            param="input",
        )
    return body


def _json_object(raw: bytes) -> dict:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest(
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload.)"
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return body


def validate_chat_request(body: dict) -> dict:
    """Check the fields the router relies on; the provider validates the rest."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("you must provide a model parameter", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest(
            "'messages' is a required property and must be a non-empty array", param="messages"
        )
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise InvalidRequest(
                f"messages[{i}] must be an object with a valid 'role'", param=f"messages.[{i}].role"
            )
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be a boolean", param="stream")
    return body


def wants_usage_in_stream(body: dict) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def usage_of(payload: dict) -> TokenCounts | None:
    usage = payload.get("usage")
    if not isinstance(usage, dict):
        return None
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens", 0) if isinstance(details, dict) else 0
    return TokenCounts(
        input=int(usage.get("prompt_tokens") or 0),
        output=int(usage.get("completion_tokens") or 0),
        cached_input=int(cached or 0),
    )


def shape_completion(reply: dict, alias: str) -> bytes:
    """The provider's completion as the client sees it: under the alias it asked for."""
    reply["model"] = alias
    return orjson.dumps(reply)


def shape_chunk(chunk: dict, alias: str, client_wants_usage: bool) -> bytes | None:
    """One SSE event for the client, or None when the chunk is ours only (usage
    the client did not ask for)."""
    if not client_wants_usage:
        if chunk.get("usage") and not chunk.get("choices"):
            return None
        chunk.pop("usage", None)
    chunk["model"] = alias
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


DONE_EVENT = b"data: [DONE]\n\n"


def openai_error_event(error_body: bytes) -> bytes:
    """An in-band error after the stream has started (the HTTP status is already sent)."""
    return b"data: " + error_body + b"\n\n"
