"""Response translation (GenerateContentResponse -> OpenAI chat.completion / chunks).

Each candidate -> a choice (`index`, which proto3 JSON omits when 0): text
parts joined (thought summaries skipped), `functionCall` parts -> `tool_calls`
with ids `call_<hash of response id, candidate, position, name, args>` (stable:
the same response gives the same ids streamed or not). finishReason STOP ->
stop (tool_calls when the candidate called functions), MAX_TOKENS -> length,
SAFETY / RECITATION / BLOCKLIST / PROHIBITED_CONTENT / SPII / IMAGE_SAFETY /
IMAGE_PROHIBITED_CONTENT / IMAGE_RECITATION -> content_filter, anything else
(OTHER, LANGUAGE, MALFORMED_FUNCTION_CALL, …) -> stop. A prompt blocked by
`promptFeedback.blockReason` (no candidates) -> one choice with empty content
and finish_reason content_filter, so the caller sees a refusal, not an error.
usage: prompt_tokens = promptTokenCount + toolUsePromptTokenCount,
completion_tokens = candidatesTokenCount + thoughtsTokenCount,
completion_tokens_details.reasoning_tokens = thoughtsTokenCount,
prompt_tokens_details.cached_tokens = cachedContentTokenCount.

Streaming: a role chunk first, then text deltas and whole tool_calls deltas
(Gemini sends each function call complete), a finish chunk per candidate, and
a last chunk with `choices: []` and the usage of the last usageMetadata. A
stream that ends before every started candidate has a finishReason raises
UpstreamError("… ended the stream early").
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

import orjson

from lockgate.errors import UpstreamError
from lockgate.logs import redact
from services.router.providers.http import error_message

_FILTERED = frozenset({
    "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION",
})  # fmt: skip


def from_gemini_response(reply: dict, model: str, provider: str = "gemini") -> dict:
    """An OpenAI chat.completion for a GenerateContentResponse."""
    response_id = reply.get("responseId") if isinstance(reply.get("responseId"), str) else ""
    candidates = reply.get("candidates")
    choices = []
    if isinstance(candidates, list) and candidates:
        for position, candidate in enumerate(candidates):
            if not isinstance(candidate, dict):
                raise UpstreamError(f"provider {provider!r} sent an unexpected response")
            index = _index(candidate, position)
            text, calls = candidate_parts(candidate, response_id, index, 0)
            message: dict[str, Any] = {
                "role": "assistant",
                "content": text if text or not calls else None,
                "refusal": None,
            }
            if calls:
                message["tool_calls"] = calls
            choices.append({
                "index": index,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(candidate.get("finishReason"), bool(calls)),
            })
        choices.sort(key=lambda c: c["index"])
    elif _block_reason(reply):
        choices = [{
            "index": 0,
            "message": {"role": "assistant", "content": "", "refusal": None},
            "logprobs": None,
            "finish_reason": "content_filter",
        }]
    else:
        raise UpstreamError(f"provider {provider!r} sent a response without candidates")
    return {
        "id": _completion_id(response_id),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": _model_of(reply, model),
        "choices": choices,
        "usage": usage_of(reply.get("usageMetadata")),
    }


def candidate_parts(
    candidate: dict, response_id: str, index: int, first_call: int
) -> tuple[str, list[dict]]:
    """(joined text, OpenAI tool_calls) of a candidate's parts; call positions
    start at `first_call` (a stream numbers calls across events)."""
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    texts: list[str] = []
    calls: list[dict] = []
    for part in parts if isinstance(parts, list) else ():
        if not isinstance(part, dict) or part.get("thought") is True:
            continue
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        call = part.get("functionCall")
        if isinstance(call, dict) and isinstance(call.get("name"), str):
            args = call.get("args") if isinstance(call.get("args"), dict) else {}
            arguments = orjson.dumps(args).decode()
            position = first_call + len(calls)
            tool_call = {
                "id": tool_call_id(response_id, index, position, call["name"], arguments),
                "type": "function",
                "function": {"name": call["name"], "arguments": arguments},
            }
            signature = part.get("thoughtSignature")
            if isinstance(signature, str) and signature:
                # Thinking models need it back with the call in the next turn;
                # the field is the one Google's own OpenAI-compatible API uses.
                tool_call["extra_content"] = {"google": {"thought_signature": signature}}
            calls.append(tool_call)
    return "".join(texts), calls


def tool_call_id(response_id: str, index: int, position: int, name: str, arguments: str) -> str:
    """A stable OpenAI-style id for a Gemini function call (Gemini sends none)."""
    seed = f"{response_id}\x00{index}\x00{position}\x00{name}\x00{arguments}".encode()
    return "call_" + hashlib.blake2b(seed, digest_size=12).hexdigest()


def finish_reason(reason: Any, called: bool) -> str:
    if reason == "MAX_TOKENS":
        return "length"
    if reason in _FILTERED:
        return "content_filter"
    return "tool_calls" if called else "stop"


def usage_of(meta: Any) -> dict:
    """OpenAI usage from Gemini's usageMetadata (zeros when absent)."""
    meta = meta if isinstance(meta, dict) else {}

    def count(field: str) -> int:
        value = meta.get(field)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0

    prompt = count("promptTokenCount") + count("toolUsePromptTokenCount")
    thoughts = count("thoughtsTokenCount")
    completion = count("candidatesTokenCount") + thoughts
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": count("cachedContentTokenCount")},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    }


def _index(candidate: dict, position: int) -> int:
    index = candidate.get("index", position)
    return index if isinstance(index, int) and not isinstance(index, bool) else position


def _block_reason(reply: dict) -> str | None:
    feedback = reply.get("promptFeedback")
    reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
    return reason if isinstance(reason, str) and reason else None


def _completion_id(response_id: str) -> str:
    return f"chatcmpl-{response_id}" if response_id else f"chatcmpl-{uuid.uuid4().hex}"


def _model_of(reply: dict, model: str) -> str:
    version = reply.get("modelVersion")
    return version if isinstance(version, str) and version else model


class StreamTranslator:
    """GenerateContentResponse stream events -> OpenAI chat.completion.chunk objects."""

    def __init__(self, model: str, provider: str = "gemini"):
        self.model = model
        self.provider = provider
        self.id = ""
        self.response_id = ""
        self.created = int(time.time())
        self.started: set[int] = set()
        self.calls: dict[int, int] = {}
        self.finished: set[int] = set()
        self.usage: Any = None

    def feed(self, reply: dict) -> list[dict]:
        if "error" in reply:
            raise UpstreamError(
                f"provider {self.provider!r} failed mid-stream: "
                f"{redact(error_message(reply))[:500] or 'no error message'}"
            )
        if not self.id:
            rid = reply.get("responseId")
            self.response_id = rid if isinstance(rid, str) else ""
            self.id = _completion_id(self.response_id)
            self.model = _model_of(reply, self.model)
        if isinstance(reply.get("usageMetadata"), dict):
            self.usage = reply["usageMetadata"]
        chunks: list[dict] = []
        candidates = reply.get("candidates")
        if not isinstance(candidates, list) or not candidates:
            if _block_reason(reply) and 0 not in self.finished:
                self._start(0, chunks)
                chunks.append(self._chunk(0, {}, "content_filter"))
                self.finished.add(0)
            return chunks
        for position, candidate in enumerate(candidates):
            if not isinstance(candidate, dict):
                raise UpstreamError(f"provider {self.provider!r} sent an invalid stream chunk")
            index = _index(candidate, position)
            if index in self.finished:
                continue
            self._start(index, chunks)
            first = self.calls.get(index, 0)
            text, calls = candidate_parts(candidate, self.response_id, index, first)
            if text:
                chunks.append(self._chunk(index, {"content": text}))
            if calls:
                deltas = [{"index": first + k, **call} for k, call in enumerate(calls)]
                chunks.append(self._chunk(index, {"tool_calls": deltas}))
                self.calls[index] = first + len(calls)
            reason = candidate.get("finishReason")
            if isinstance(reason, str) and reason:
                called = self.calls.get(index, 0) > 0
                chunks.append(self._chunk(index, {}, finish_reason(reason, called)))
                self.finished.add(index)
        return chunks

    def end(self) -> list[dict]:
        """The usage chunk; UpstreamError when a candidate never finished."""
        if not self.started or self.started - self.finished:
            raise UpstreamError(f"provider {self.provider!r} ended the stream early")
        if self.usage is None:
            return []
        return [{**self._head(), "choices": [], "usage": usage_of(self.usage)}]

    def _start(self, index: int, chunks: list[dict]) -> None:
        if index not in self.started:
            self.started.add(index)
            chunks.append(self._chunk(index, {"role": "assistant", "content": ""}))

    def _head(self) -> dict:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
        }

    def _chunk(self, index: int, delta: dict, finish: str | None = None) -> dict:
        return {
            **self._head(),
            "choices": [
                {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            ],
        }
