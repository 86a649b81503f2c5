"""The replies of the simulator's Gemini dialect.

``generateContent``
    A GenerateContentResponse: ``candidates`` (``candidateCount`` of them) with
    the deterministic reply of :mod:`lockgate.sim.replies` seeded by the
    ``contents`` and ``systemInstruction``, or a ``functionCall`` chosen by
    :func:`lockgate.sim.tools.choose_call` from ``tools`` and
    ``toolConfig.functionCallingConfig`` (mode AUTO / ANY / NONE,
    ``allowedFunctionNames``; after a ``functionResponse`` the model answers in
    text unless forced). ``maxOutputTokens`` -> finishReason MAX_TOKENS,
    ``stopSequences`` cut the text. With ``responseMimeType:
    application/json`` the text is a JSON value valid against
    ``responseSchema`` / ``responseJsonSchema``, built by
    :func:`lockgate.sim.structured.document` (not strict: the required
    properties, all of them when none are marked; one document per
    candidate), or ``{"text": <reply>}`` without a schema; it is streamed one
    token per chunk, and stop sequences and the token limit do not apply to
    it. With ``x-sim-echo: 1`` each candidate's text is
    :func:`lockgate.sim.replies.echo_text` of the system instruction (a
    ``system`` line) and the contents (roles ``user`` / ``model``; text parts
    only), never cut, and no function is called. ``usageMetadata``
    counts every text of the request (function declarations included; 85
    tokens per inline or file part), ``modelVersion`` is the path's model.

Besides the ``x-sim-*`` fault headers (see :mod:`.errors`):

``x-sim-safety-block: prompt``
    No candidates; ``promptFeedback: {blockReason: SAFETY, safetyRatings}``.
``x-sim-safety-block: response``
    Every candidate ends with finishReason SAFETY, no content, and
    ``safetyRatings`` with a blocked HIGH rating.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from lockgate.sim import replies, structured, tools
from lockgate.sim.gemini.errors import _bad
from lockgate.sim.gemini.validate import _MODES, _Generate


def _prompt_tokens(parsed: _Generate) -> int:
    total = 0
    turns = [*parsed.contents, parsed.system] if parsed.system else parsed.contents
    for content in turns:
        for part in content["parts"]:
            if isinstance(part.get("text"), str):
                total += replies.count_tokens(part["text"])
            elif "inlineData" in part or "fileData" in part:
                total += replies.NON_TEXT_PART_TOKENS
            else:
                total += replies.count_tokens(orjson.dumps(part).decode())
    if parsed.declarations:
        total += replies.count_tokens(orjson.dumps(parsed.declarations).decode())
    return total


@dataclass(slots=True)
class _Candidate:
    pieces: list[str]
    call: tools.ToolCall | None
    finish: str
    tokens: int


def _echo(parsed: _Generate) -> replies.Completion:
    turns = [{"role": "system", "content": parsed.system["parts"]}] if parsed.system else []
    turns += [{"role": c.get("role", "user"), "content": c["parts"]} for c in parsed.contents]
    return replies.echo(turns)


def _json_text(parsed: _Generate, key: bytes, words: int, choice: int) -> str:
    if parsed.schema is None:
        return orjson.dumps({"text": "".join(replies.reply_pieces(key, words, choice))}).decode()
    try:
        value = structured.document(parsed.schema, key, choice, strict=False)
    except structured.SchemaProblem as exc:
        raise _bad(f"* GenerateContentRequest.generation_config.response_schema: {exc}\n") from None
    return structured.dumps(value)


def _candidates(parsed: _Generate, words: int, echo: bool = False) -> list[_Candidate]:
    key = replies.messages_key({"contents": parsed.contents, "system": parsed.system})
    if echo:
        done = _echo(parsed)
        return [_Candidate(done.pieces, None, "STOP", done.tokens)] * parsed.candidates
    last = parsed.contents[-1]
    ends_with_result = last.get("role", "user") == "user" and any(
        "functionResponse" in p for p in last["parts"]
    )
    offered = parsed.tools
    if parsed.allowed is not None:
        offered = [t for t in offered if t.name in parsed.allowed]
    call = tools.choose_call(
        offered, _MODES.get(parsed.mode) if parsed.mode else None, None, ends_with_result, key
    )
    out = []
    for i in range(parsed.candidates):
        if call is not None:
            tokens = replies.count_tokens(call.name + orjson.dumps(call.arguments).decode())
            out.append(_Candidate([], call, "STOP", tokens))
        elif parsed.json_mode:
            text = _json_text(parsed, key, words, i)
            out.append(_Candidate(replies.text_pieces(text), None, "STOP",
                                  replies.count_tokens(text)))
        else:
            done = replies.complete(key, words, i, stop=parsed.stops, max_tokens=parsed.max_tokens)
            finish = "MAX_TOKENS" if done.finish_reason == "length" else "STOP"
            out.append(_Candidate(done.pieces, None, finish, done.tokens))
    return out


def _usage(prompt: int, completion: int | None) -> dict[str, Any]:
    usage: dict[str, Any] = {"promptTokenCount": prompt}
    if completion is not None:
        usage["candidatesTokenCount"] = completion
    usage["totalTokenCount"] = prompt + (completion or 0)
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
    return usage


def _with_index(candidate: dict, index: int) -> dict:
    if index:  # proto3 JSON leaves the default 0 out
        candidate["index"] = index
    return candidate


def _final_candidate(c: _Candidate, index: int, text: str | None) -> dict:
    parts: list[dict] = []
    if c.call is not None:
        parts.append({"functionCall": {"name": c.call.name, "args": c.call.arguments}})
    elif text is not None:
        parts.append({"text": text})
    content: dict[str, Any] = {"role": "model"}
    if parts:
        content["parts"] = parts
    return _with_index({"content": content, "finishReason": c.finish}, index)


_RATINGS = ("HARM_CATEGORY_SEXUALLY_EXPLICIT", "HARM_CATEGORY_HATE_SPEECH",
            "HARM_CATEGORY_HARASSMENT", "HARM_CATEGORY_DANGEROUS_CONTENT")


def _safety_ratings() -> list[dict]:
    ratings: list[dict] = [{"category": c, "probability": "NEGLIGIBLE"} for c in _RATINGS[:-1]]
    ratings.append({"category": _RATINGS[-1], "probability": "HIGH", "blocked": True})
    return ratings


def _blocked(mode: str, parsed: _Generate, prompt: int, head: dict) -> dict:
    if mode == "prompt":
        return {"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": _safety_ratings()},
                "usageMetadata": _usage(prompt, None), **head}
    candidates = [
        _with_index({"finishReason": "SAFETY", "safetyRatings": _safety_ratings()}, i)
        for i in range(parsed.candidates)
    ]
    return {"candidates": candidates, "usageMetadata": _usage(prompt, 0), **head}

