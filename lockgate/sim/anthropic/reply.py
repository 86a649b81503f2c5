"""The answer of the simulator's Anthropic dialect.

Reply: the same deterministic words the OpenAI dialect gives for the same
conversation (the reply key is built from ``[system] + messages`` as OpenAI
messages would carry them, so plain-text conversations match exactly), cut
at ``stop_sequences`` (``stop_reason: stop_sequence``) and ``max_tokens``
(``stop_reason: max_tokens``). With ``tools``, the call is chosen by
:func:`lockgate.sim.tools.choose_call` (tool_choice auto / any / tool / none;
after a ``tool_result`` the model answers in text unless forced) and the
answer is one ``tool_use`` block (``stop_reason: tool_use``), never cut by
``max_tokens``.

With ``x-sim-echo: 1`` the answer is one text block echoing the conversation
(:func:`replies.echo_text` of the system prompt and the messages' text
blocks; no tool call, never cut: ``stop_reason: end_turn``).

Usage: ``input_tokens`` are :func:`replies.prompt_tokens` of the system
prompt and the messages (tool_use blocks counted as their name and JSON
input, tool_result blocks as their content); ``output_tokens`` the reply's
tokens. No prompt caching: the cache counters are 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from lockgate.sim import replies
from lockgate.sim.anthropic.validate import MessagesRequest
from lockgate.sim.tools import ToolCall, ToolSpec, choose_call

_JSON_PIECE = re.compile(r'[^,:]*[,:]?')


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


@dataclass(slots=True)
class Answer:
    """The assistant message: its content blocks and what streaming needs."""

    content: list[dict[str, Any]]
    stop_reason: str
    stop_sequence: str | None
    input_tokens: int
    output_tokens: int
    #: Text pieces (text answer) or partial JSON pieces (tool_use answer).
    pieces: list[str]
    call: ToolCall | None


def conversation(req: MessagesRequest) -> list[dict[str, Any]]:
    """The conversation as OpenAI messages would carry it: the reply key."""
    head = [{"role": "system", "content": req.system}] if req.system else []
    return head + [{"role": m["role"], "content": m["content"]} for m in req.messages]


def respond(req: MessagesRequest, words: int, echo: bool = False) -> Answer:
    key = replies.messages_key(conversation(req))
    input_tokens = replies.prompt_tokens(_token_view(conversation(req)))
    if echo:
        done = replies.echo(conversation(req))
        content = [{"type": "text", "text": done.text}] if done.pieces else []
        return Answer(content, "end_turn", None, input_tokens, done.tokens, done.pieces, None)
    call = _tool_call(req, key)
    if call is not None:
        block = {
            "type": "tool_use", "id": call.call_id("toolu_"), "name": call.name,
            "input": call.arguments,
        }
        arguments = orjson.dumps(call.arguments).decode()
        output = replies.count_tokens(call.name) + replies.count_tokens(arguments)
        pieces = [p for p in _JSON_PIECE.findall(arguments) if p]
        return Answer([block], "tool_use", None, input_tokens, output, pieces, call)
    done = replies.complete(key, words, stop=req.stop_sequences, max_tokens=req.max_tokens)
    matched = _matched_stop(key, words, req.stop_sequences) if done.finish_reason == "stop" else None
    content = [{"type": "text", "text": done.text}] if done.pieces else []
    if done.finish_reason == "length":
        reason = "max_tokens"
    else:
        reason = "stop_sequence" if matched is not None else "end_turn"
    return Answer(content, reason, matched, input_tokens, done.tokens, done.pieces, None)


def _matched_stop(key: bytes, words: int, stops: list[str]) -> str | None:
    """The stop sequence the full reply reaches first, if any."""
    text = "".join(replies.reply_pieces(key, words))
    hits = [(pos, i) for i, s in enumerate(stops) if s and (pos := text.find(s)) >= 0]
    return stops[min(hits)[1]] if hits else None


def _tool_call(req: MessagesRequest, key: bytes) -> ToolCall | None:
    if not req.tools:
        return None
    choice = req.tool_choice or {"type": "auto"}
    neutral = {"auto": "auto", "any": "required", "none": "none", "tool": None}[choice["type"]]
    last = req.messages[-1]
    ends_with_result = last["role"] == "user" and isinstance(last["content"], list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in last["content"]
    )
    return choose_call(
        [ToolSpec(t["name"], t["input_schema"]) for t in req.tools],
        neutral,
        choice.get("name") if choice["type"] == "tool" else None,
        ends_with_result,
        key,
    )


def _token_view(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages whose tool blocks read as the text they carry, for prompt_tokens."""
    out = []
    for message in messages:
        content = message["content"]
        if isinstance(content, list):
            content = [_block_as_part(b) for b in content]
        out.append({"role": message["role"], "content": content})
    return out


def _block_as_part(block: Any) -> Any:
    if not isinstance(block, dict):
        return block
    if block.get("type") == "tool_use":
        text = f"{block.get('name', '')} {orjson.dumps(block.get('input')).decode()}"
        return {"type": "text", "text": text}
    if block.get("type") == "tool_result":
        content = block.get("content")
        if isinstance(content, list):
            return {"type": "text", "text": " ".join(
                b.get("text", "") for b in content if isinstance(b, dict)
            )}
        return {"type": "text", "text": content if isinstance(content, str) else ""}
    return block
