"""Deterministic replies, token counts and embeddings of the provider simulator.

* The reply to a chat request depends only on its ``messages`` (and on the
  choice index when ``n`` > 1): a BLAKE2 digest of the messages (keys sorted)
  seeds SHAKE-256, whose output bytes pick words from a fixed 64-word
  vocabulary. Same messages -> same reply, streamed or not, on every run and
  every machine.
* :func:`count_tokens` is a cheap, deterministic stand-in for a BPE tokenizer:
  about one token per short word, long words split every ~4 characters, one
  token per 1-3 digits and per punctuation character, whitespace free.
* Token accounting follows OpenAI's: ``prompt_tokens`` = the tokens of every
  message's content (+ 3 per message, + 1 and the name's tokens per ``name``)
  + 3 to prime the reply; ``completion_tokens`` = the tokens of the reply.

A reply is a list of *pieces* (``["Word", " word", ..., " word", "."]``): the
pieces are exactly the streamed content chunks (one per word by default), and
the tokens of the text are the sum of the tokens of its pieces.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

#: The words replies are made of. Mostly one token each, a few two.
VOCABULARY: tuple[str, ...] = (
    "the", "quick", "lock", "gate", "model", "token", "reply", "stream",
    "signal", "policy", "route", "ledger", "answer", "simple", "steady", "clear",
    "bright", "river", "stone", "cloud", "light", "green", "north", "south",
    "paper", "window", "garden", "silver", "orange", "yellow", "winter", "summer",
    "forest", "ocean", "valley", "harbor", "planet", "engine", "bridge", "castle",
    "market", "letter", "number", "little", "gentle", "moment", "season", "spirit",
    "across", "before", "beyond", "within", "always", "often", "never", "again",
    "careful", "morning", "evening", "journey", "machine", "pattern", "balance", "harmony",
)  # fmt: skip

#: Tokens of the non-text parts of a message content (images, audio, files).
NON_TEXT_PART_TOKENS = 85
_TOKENS_PER_MESSAGE = 3
_TOKENS_PER_NAME = 1
_REPLY_PRIMING_TOKENS = 3

# One match per token: a whole short word (<= 6 letters), else 4-letter pieces
# of a long word (its tail up to 6 letters), 1-3 digits, one punctuation char.
_TOKEN = re.compile(r"[^\W\d_]{1,6}(?![^\W\d_])|[^\W\d_]{1,4}|\d{1,3}|[^\w\s]|_")
_CACHE_MAX_CHARS = 16 * 1024


@lru_cache(maxsize=8192)
def _count_cached(text: str) -> int:
    return len(_TOKEN.findall(text))


def count_tokens(text: str) -> int:
    """Deterministic approximate token count of ``text`` (0 for an empty text)."""
    if len(text) <= _CACHE_MAX_CHARS:
        return _count_cached(text)
    return len(_TOKEN.findall(text))


_FIRST_WORDS = tuple(w.capitalize() for w in VOCABULARY)
_NEXT_WORDS = tuple(" " + w for w in VOCABULARY)
#: Tokens of every piece a reply can be made of (other pieces: count_tokens).
_PIECE_TOKENS: dict[str, int] = {p: count_tokens(p) for p in (*_FIRST_WORDS, *_NEXT_WORDS, ".")}
if len(set(VOCABULARY)) != 64:  # reply_pieces masks a byte with 63
    raise RuntimeError("the reply vocabulary must have 64 distinct words")


def piece_tokens(piece: str) -> int:
    """Tokens of one reply piece."""
    tokens = _PIECE_TOKENS.get(piece)
    return count_tokens(piece) if tokens is None else tokens


# -- chat replies -------------------------------------------------------------


def messages_key(messages: Any) -> bytes:
    """A digest of the messages: the seed of the reply (key order does not matter)."""
    data = orjson.dumps(messages, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.blake2b(data, digest_size=16).digest()


def reply_pieces(key: bytes, words: int, choice: int = 0) -> list[str]:
    """The pieces of the reply seeded by ``key``: ``words`` words and a final period."""
    if words <= 0:
        return []
    # One pseudo-random byte per word; the vocabulary has 64 words (a mask, no bias).
    picks = hashlib.shake_256(key + choice.to_bytes(4, "little")).digest(words)
    nxt = _NEXT_WORDS
    pieces = [nxt[b & 63] for b in picks]
    pieces[0] = _FIRST_WORDS[picks[0] & 63]
    pieces.append(".")
    return pieces


def reply_text(messages: Any, words: int = 12, choice: int = 0) -> str:
    """The full (untruncated) reply to ``messages``."""
    return "".join(reply_pieces(messages_key(messages), words, choice))


@dataclass(slots=True)
class Completion:
    """One choice of a reply, after ``stop`` and ``max_tokens`` were applied."""

    pieces: list[str]
    finish_reason: str  # "stop" or "length"
    tokens: int

    @property
    def text(self) -> str:
        return "".join(self.pieces)


def complete(
    key: bytes,
    words: int,
    choice: int = 0,
    *,
    stop: Sequence[str] | None = None,
    max_tokens: int | None = None,
) -> Completion:
    """The reply seeded by ``key``, cut before the first ``stop`` sequence and
    to at most ``max_tokens`` tokens (then with ``finish_reason`` "length")."""
    pieces = reply_pieces(key, words, choice)
    if stop:
        pieces = _cut_at_stop(pieces, stop)
        tokens = sum(map(piece_tokens, pieces))  # the last piece may be cut
    else:
        tokens = sum(map(_PIECE_TOKENS.__getitem__, pieces))
    return _limit(pieces, tokens, max_tokens)


def finish(
    pieces: list[str],
    *,
    stop: Sequence[str] | None = None,
    max_tokens: int | None = None,
) -> Completion:
    """Any reply's pieces (e.g. :func:`text_pieces` of a JSON document) cut
    at ``stop`` and to ``max_tokens`` as :func:`complete` cuts the words."""
    if stop:
        pieces = _cut_at_stop(pieces, stop)
    return _limit(pieces, sum(map(piece_tokens, pieces)), max_tokens)


def _limit(pieces: list[str], tokens: int, max_tokens: int | None) -> Completion:
    if max_tokens is None or tokens <= max_tokens:
        return Completion(pieces, "stop", tokens)
    tokens = 0
    for i, piece in enumerate(pieces):
        t = piece_tokens(piece)
        if tokens + t > max_tokens:
            return Completion(pieces[:i], "length", tokens)
        tokens += t
    return Completion(pieces, "stop", tokens)


# One piece per token, with the whitespace before it (whitespace is free, and a
# piece holding one token match counts one token alone): the pieces' tokens add
# up to the text's. Every character is whitespace or starts a token match.
_TOKEN_PIECE = re.compile(r"\s*(?:" + _TOKEN.pattern + r")|\s+")


def text_pieces(text: str) -> list[str]:
    """Any text as reply pieces, one per token (the streamed chunks of a JSON
    reply or an echo); their tokens add up to ``count_tokens(text)``."""
    return _TOKEN_PIECE.findall(text)


def message_text(content: Any) -> str:
    """The text of one message ``content``: a string, or its text parts joined
    (other parts and null: nothing)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part if isinstance(part, str) else part["text"]
            for part in content
            if isinstance(part, str) or (isinstance(part, dict) and isinstance(part.get("text"), str))
        )
    return ""


def echo_text(messages: Iterable[dict[str, Any]]) -> str:
    """The ``x-sim-echo`` reply: one ``<role>: <text>`` line per message."""
    return "\n".join(f"{m.get('role')}: {message_text(m.get('content'))}" for m in messages)


def echo(messages: Iterable[dict[str, Any]]) -> Completion:
    """The ``x-sim-echo`` choice: :func:`echo_text`, never cut (finish_reason "stop")."""
    text = echo_text(messages)
    return Completion(text_pieces(text), "stop", count_tokens(text))


def _cut_at_stop(pieces: list[str], stop: Sequence[str]) -> list[str]:
    text = "".join(pieces)
    cut = min((i for s in stop if s and (i := text.find(s)) >= 0), default=-1)
    if cut < 0:
        return pieces
    out: list[str] = []
    used = 0
    for piece in pieces:
        if used >= cut:
            break
        if used + len(piece) > cut:
            out.append(piece[: cut - used])
            break
        out.append(piece)
        used += len(piece)
    return out


def group_pieces(pieces: list[str], chunk_count: int | None) -> list[str]:
    """The content chunks of a streamed reply: the pieces themselves, or
    ``chunk_count`` chunks (fewer only when the text has fewer characters)."""
    if chunk_count is None or chunk_count == len(pieces):
        return pieces
    if chunk_count < len(pieces):
        base, extra = divmod(len(pieces), chunk_count)
        out = []
        start = 0
        for i in range(chunk_count):
            end = start + base + (1 if i < extra else 0)
            out.append("".join(pieces[start:end]))
            start = end
        return out
    text = "".join(pieces)
    count = min(chunk_count, len(text))
    if count == 0:
        return []
    base, extra = divmod(len(text), count)
    out = []
    start = 0
    for i in range(count):
        end = start + base + (1 if i < extra else 0)
        out.append(text[start:end])
        start = end
    return out


# -- prompt accounting --------------------------------------------------------


def content_tokens(content: Any) -> int:
    """Tokens of one message ``content``: a string, a list of parts, or null."""
    if isinstance(content, str):
        return count_tokens(content)
    if isinstance(content, list):
        total = 0
        for part in content:
            if isinstance(part, str):
                total += count_tokens(part)
            elif isinstance(part, dict):
                text = part.get("text")
                if text is None:
                    text = part.get("refusal")
                if isinstance(text, str):
                    total += count_tokens(text)
                else:
                    total += NON_TEXT_PART_TOKENS
        return total
    return 0


def prompt_tokens(messages: Iterable[dict[str, Any]]) -> int:
    """OpenAI-style prompt tokens of a list of chat messages."""
    total = _REPLY_PRIMING_TOKENS
    for message in messages:
        total += _TOKENS_PER_MESSAGE + content_tokens(message.get("content"))
        name = message.get("name")
        if isinstance(name, str):
            total += _TOKENS_PER_NAME + count_tokens(name)
        tool_calls = message.get("tool_calls")
        if isinstance(tool_calls, list):
            for call in tool_calls:
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict):
                    for field in ("name", "arguments"):
                        value = fn.get(field)
                        if isinstance(value, str):
                            total += count_tokens(value)
    return total


# -- embeddings ---------------------------------------------------------------


def embedding(key: bytes, dimensions: int) -> list[float]:
    """A deterministic unit vector of ``dimensions`` floats for the input ``key``."""
    raw = hashlib.shake_256(key).digest(2 * dimensions)
    values = struct.unpack(f"<{dimensions}h", raw)
    norm = math.sqrt(sum(v * v for v in values))
    if norm == 0.0:
        return [1.0] + [0.0] * (dimensions - 1)
    return [round(v / norm, 7) for v in values]


def embedding_base64(vector: Sequence[float]) -> bytes:
    """The vector as OpenAI's ``encoding_format: "base64"`` (little-endian float32)."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector))
