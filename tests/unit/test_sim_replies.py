"""Deterministic replies, token counting and config of the provider simulator."""

from __future__ import annotations

import base64
import math
import struct

import pydantic
import pytest

from lockgate.sim import replies
from lockgate.sim.config import SimConfig

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say something about gateways."},
]


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", 0),
        ("   \n\t", 0),
        ("hello", 1),
        ("Hello, world!", 4),
        ("a b c", 3),
        ("12345", 2),  # digits go by 1-3
        ("international", 3),  # long words split about every 4 chars
        ("internationalization", 5),
        ("snake_case", 3),
    ],
)
def test_count_tokens(text, tokens):
    assert replies.count_tokens(text) == tokens


def test_count_tokens_grows_with_text_and_is_cached_consistently():
    long_text = "word " * 10_000  # over the cache limit: counted directly
    assert replies.count_tokens(long_text) == 10_000
    assert replies.count_tokens("word " * 10) == 10
    assert replies.count_tokens("word " * 10) == 10


def test_reply_is_deterministic_and_depends_on_the_messages():
    a = replies.reply_text(MESSAGES, 12)
    assert a == replies.reply_text([dict(m) for m in MESSAGES], 12)
    # key order inside a message does not matter
    assert a == replies.reply_text([{"content": m["content"], "role": m["role"]} for m in MESSAGES])
    other = replies.reply_text([{"role": "user", "content": "something else"}], 12)
    assert a != other
    words = a.rstrip(".").split(" ")
    assert len(words) == 12
    assert a[0].isupper() and a.endswith(".")
    assert all(w.lower() in replies.VOCABULARY for w in words)


def test_choices_differ_but_each_is_deterministic():
    key = replies.messages_key(MESSAGES)
    first = [replies.reply_pieces(key, 10, i) for i in range(3)]
    assert first == [replies.reply_pieces(key, 10, i) for i in range(3)]
    assert len({"".join(p) for p in first}) == 3


def test_zero_words_is_an_empty_reply():
    key = replies.messages_key(MESSAGES)
    assert replies.reply_pieces(key, 0) == []
    c = replies.complete(key, 0)
    assert (c.text, c.tokens, c.finish_reason) == ("", 0, "stop")


def test_completion_tokens_are_the_tokens_of_the_text():
    key = replies.messages_key(MESSAGES)
    for words in (1, 5, 12, 200):
        c = replies.complete(key, words)
        assert c.finish_reason == "stop"
        assert c.tokens == replies.count_tokens(c.text)
        assert c.tokens == sum(replies.count_tokens(p) for p in c.pieces)


def test_max_tokens_truncates_with_finish_reason_length():
    key = replies.messages_key(MESSAGES)
    full = replies.complete(key, 30)
    cut = replies.complete(key, 30, max_tokens=5)
    assert cut.finish_reason == "length"
    assert 0 < cut.tokens <= 5
    assert cut.tokens == replies.count_tokens(cut.text)
    assert full.text.startswith(cut.text)
    # a budget that fits the whole reply is not a truncation
    assert replies.complete(key, 30, max_tokens=full.tokens).finish_reason == "stop"


def test_stop_sequences_cut_before_the_first_match():
    key = replies.messages_key(MESSAGES)
    text = replies.complete(key, 12).text
    stop = text.split(" ")[3]  # the fourth word
    cut = replies.complete(key, 12, stop=["never-present", " " + stop])
    assert cut.finish_reason == "stop"
    assert text.startswith(cut.text)
    assert (" " + stop) not in cut.text
    assert cut.text == text[: text.index(" " + stop)]
    assert cut.tokens == replies.count_tokens(cut.text)
    # a stop that never matches changes nothing; one at 0 gives an empty reply
    assert replies.complete(key, 12, stop=["zzz"]).text == text
    assert replies.complete(key, 12, stop=[text[:3]]).text == ""


def test_group_pieces():
    pieces = replies.reply_pieces(replies.messages_key(MESSAGES), 9)  # 9 words + "."
    text = "".join(pieces)
    assert replies.group_pieces(pieces, None) == pieces
    for count in (1, 3, 7, 10):
        chunks = replies.group_pieces(pieces, count)
        assert len(chunks) == count and "".join(chunks) == text
    many = replies.group_pieces(pieces, 25)  # more chunks than words: split by characters
    assert len(many) == 25 and "".join(many) == text and all(many)
    assert replies.group_pieces(["Hi", "."], 50) == ["H", "i", "."]
    assert replies.group_pieces([], 4) == []


def test_prompt_tokens_follow_openai_accounting():
    one = [{"role": "user", "content": "hello"}]
    assert replies.prompt_tokens(one) == 1 + 3 + 3
    named = [{"role": "user", "content": "hello", "name": "bob"}]
    assert replies.prompt_tokens(named) == 1 + 3 + 1 + 1 + 3
    parts = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "hello world"},
                {"type": "image_url", "image_url": {"url": "data:,"}},
            ],
        }
    ]
    assert replies.prompt_tokens(parts) == 2 + replies.NON_TEXT_PART_TOKENS + 3 + 3
    tool_call = [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            ],
        }
    ]
    assert replies.prompt_tokens(tool_call) == 1 + 2 + 3 + 3


def test_embeddings_are_deterministic_unit_vectors():
    v = replies.embedding(b"hello", 8)
    assert v == replies.embedding(b"hello", 8)
    assert v != replies.embedding(b"hellO", 8)
    assert len(v) == 8 and len(replies.embedding(b"hello", 1536)) == 1536
    assert math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, rel_tol=1e-5)
    decoded = struct.unpack("<8f", base64.b64decode(replies.embedding_base64(v)))
    assert all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(decoded, v, strict=True))


def test_config_defaults_and_loading(tmp_path):
    c = SimConfig()
    assert (c.latency_ms, c.ttft_ms, c.chunk_interval_ms, c.chunk_count) == (0, 0, 0, None)
    assert (c.reply_words, c.error_rate, c.error_status, c.api_key) == (12, 0, 503, None)
    assert c.models == ["sim-small", "sim-large"]
    assert SimConfig.from_dict(None) == c

    yml = tmp_path / "sim.yaml"
    yml.write_text("latency_ms: 5\nreply_words: 3\nerror_rate: 0.25\nmodels: [a]\n")
    loaded = SimConfig.from_file(yml)
    assert (loaded.latency_ms, loaded.reply_words, loaded.error_rate, loaded.models) == (
        5,
        3,
        0.25,
        ["a"],
    )
    js = tmp_path / "sim.json"
    js.write_text('{"ttft_ms": 7, "drop_stream_after_chunks": 2}')
    assert SimConfig.from_file(js).drop_stream_after_chunks == 2
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert SimConfig.from_file(empty) == c


@pytest.mark.parametrize(
    "bad",
    [
        {"latency": 5},
        {"error_rate": 1.5},
        {"error_status": 200},
        {"chunk_count": 0},
        {"latency_ms": -1},
        {"models": [" x"]},
    ],
)
def test_config_rejects_invalid_values(bad):
    with pytest.raises(pydantic.ValidationError):
        SimConfig.from_dict(bad)


def test_config_hides_the_api_key_from_repr():
    assert "s3cret" not in repr(SimConfig(api_key="s3cret"))
