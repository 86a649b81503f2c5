"""Streams <-> completions for the response cache.

Entries are always complete completions. `completion_to_chunks` replays a
cached completion as the chunk sequence a stream would have produced, and
`chunks_to_completion` assembles a finished stream into the completion to
store, so streamed and non-streamed calls share entries.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable


class IncompleteStream(ValueError):
    """The chunks do not make a whole completion (e.g. the stream was cut off)."""


#: Top-level fields carried on every chunk when the completion has them.
_SHARED_OPTIONAL = ("service_tier", "system_fingerprint")


def completion_to_chunks(reply: dict) -> list[dict]:
    """The `chat.completion.chunk` sequence a stream of `reply` would have had.

    Per choice: a role chunk (content "" or null as in the reply), one chunk
    with the content (plus its annotations and logprobs), one with the
    refusal, one per tool call (whole: id, type, name and arguments), audio,
    legacy function_call, then the finish chunk (with the logprobs when there
    was no content chunk). After all choices: a chunk with `moderation` if
    present, and the usage chunk (`choices: []`) if the reply has usage. Every chunk has `usage: null` when the reply has a usage
    key, as OpenAI streams do with `include_usage`; the router's
    `shape_chunk` drops it for clients that did not ask.
    `chat.completion.metadata` has no place in a chunk and is not carried."""
    base: dict = {
        "id": reply["id"],
        "object": "chat.completion.chunk",
        "created": reply["created"],
        "model": reply["model"],
    }
    for name in _SHARED_OPTIONAL:
        if name in reply:
            base[name] = reply[name]
    if "usage" in reply:
        base["usage"] = None

    chunks: list[dict] = []

    def emit(index: int, delta: dict, logprobs: object = None, finish: object = None) -> None:
        choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        chunks.append({**base, "choices": [choice]})

    for choice in reply["choices"]:
        index = choice["index"]
        message = choice.get("message") or {}
        content = message.get("content")
        logprobs = copy.deepcopy(choice.get("logprobs"))
        role: dict = {
            "role": message.get("role", "assistant"),
            "content": "" if isinstance(content, str) else None,
        }
        # Keys present in the reply stay present (as null/""/[]) after the round trip.
        refusal = message.get("refusal")
        if "refusal" in message:
            role["refusal"] = "" if isinstance(refusal, str) else None
        body: dict = {"content": content} if content else {}
        annotations_to = body if body else role
        if "annotations" in message:
            annotations_to["annotations"] = copy.deepcopy(message["annotations"])
        audio = message.get("audio")
        if "audio" in message and not isinstance(audio, dict):
            role["audio"] = None
        tool_calls = message.get("tool_calls")
        if "tool_calls" in message and not tool_calls:
            role["tool_calls"] = None if tool_calls is None else []
        function_call = message.get("function_call")
        if "function_call" in message and not isinstance(function_call, dict):
            role["function_call"] = None

        # Logprobs never ride on a choice's first chunk: the SDK's accumulator
        # counts them twice there (openai 3.54, choices after the first).
        emit(index, role)
        if body:
            emit(index, body, logprobs)
            logprobs = None
        if refusal:
            emit(index, {"refusal": refusal})
        for position, call in enumerate(tool_calls or []):
            emit(index, {"tool_calls": [{"index": position, **copy.deepcopy(call)}]})
        if isinstance(audio, dict):
            emit(index, {"audio": copy.deepcopy(audio)})
        if isinstance(function_call, dict):
            emit(index, {"function_call": copy.deepcopy(function_call)})
        emit(index, {}, logprobs, choice.get("finish_reason"))

    if "moderation" in reply:
        chunks.append({**base, "choices": [], "moderation": copy.deepcopy(reply["moderation"])})
    if reply.get("usage") is not None:
        chunks.append({**base, "choices": [], "usage": copy.deepcopy(reply["usage"])})
    return chunks


#: Within a tool call or an audio/function_call fragment: replaced, never concatenated.
_ATOMIC = frozenset({"id", "type", "expires_at"})


def _merge(acc: dict, fragment: dict) -> None:
    """Fold one delta fragment into `acc`: strings concatenate (content, names,
    arguments, audio data), ids/types replace, nested objects merge, lists
    concatenate; a key seen only with null stays present as null."""
    for key, value in fragment.items():
        if value is None:
            acc.setdefault(key, None)
            continue
        held = acc.get(key)
        if key in _ATOMIC or held is None:
            acc[key] = copy.deepcopy(value)
        elif isinstance(held, str) and isinstance(value, str):
            acc[key] = held + value
        elif isinstance(held, dict) and isinstance(value, dict):
            _merge(held, value)
        elif isinstance(held, list) and isinstance(value, list):
            held.extend(copy.deepcopy(value))
        else:
            acc[key] = copy.deepcopy(value)


class _ChoiceState:
    def __init__(self) -> None:
        self.message: dict = {}
        self.tool_calls: dict[int, dict] | None = None
        self.tool_calls_seen = False
        self.logprobs: dict | None = None
        self.finish_reason: str | None = None

    def add(self, choice: dict) -> None:
        delta = choice.get("delta") or {}
        for key, value in delta.items():
            if key == "role":
                if value is not None:
                    self.message["role"] = value
            elif key == "tool_calls":
                self.tool_calls_seen = True
                if value is not None and self.tool_calls is None:
                    self.tool_calls = {}
                for call in value or []:
                    held = self.tool_calls.setdefault(call.get("index", 0), {})
                    _merge(held, {k: v for k, v in call.items() if k != "index"})
            else:
                _merge(self.message, {key: value})
        logprobs = choice.get("logprobs")
        if isinstance(logprobs, dict):
            if self.logprobs is None:
                self.logprobs = {}
            _merge(self.logprobs, logprobs)
        if choice.get("finish_reason") is not None:
            self.finish_reason = choice["finish_reason"]

    def result(self, index: int) -> dict:
        message = {"role": "assistant", "content": None, **self.message}
        if self.tool_calls_seen:
            calls = self.tool_calls
            message["tool_calls"] = None if calls is None else [calls[i] for i in sorted(calls)]
        return {
            "index": index,
            "message": message,
            "logprobs": self.logprobs,
            "finish_reason": self.finish_reason,
        }


def chunks_to_completion(chunks: Iterable[dict]) -> dict:
    """The `chat.completion` a finished stream amounts to, to store in the cache.

    Per choice index: content and refusal concatenated, tool calls assembled
    by their index (arguments concatenated), logprobs lists joined, the last
    finish_reason; usage from the usage chunk. Chunks whose `object` is not
    `chat.completion.chunk` (e.g. Azure's asynchronous filter events) are
    skipped. Raises IncompleteStream when there is no chunk or a choice never
    got a finish_reason (a cut-off stream must not be cached)."""
    top: dict = {}
    choices: dict[int, _ChoiceState] = {}
    for chunk in chunks:
        if chunk.get("object", "chat.completion.chunk") != "chat.completion.chunk":
            continue
        for name in ("id", "created", "model"):
            if top.get(name) is None and chunk.get(name) is not None:
                top[name] = chunk[name]
        for name in (*_SHARED_OPTIONAL, "moderation", "usage"):
            if name in chunk and (chunk[name] is not None or name not in top):
                top[name] = copy.deepcopy(chunk[name])
        for choice in chunk.get("choices") or []:
            choices.setdefault(choice.get("index", 0), _ChoiceState()).add(choice)
    if "id" not in top:
        raise IncompleteStream("no chat.completion.chunk to assemble a completion from")
    unfinished = [i for i, state in choices.items() if state.finish_reason is None]
    if unfinished:
        raise IncompleteStream(f"choice {min(unfinished)} has no finish_reason (stream cut off?)")
    return {
        "id": top["id"],
        "object": "chat.completion",
        "created": top.get("created"),
        "model": top.get("model"),
        "choices": [choices[i].result(i) for i in sorted(choices)],
        **{k: v for k, v in top.items() if k not in ("id", "created", "model")},
    }
