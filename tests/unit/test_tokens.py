"""Token estimates with the shipped o200k_base encoding (services/router/tokens.py)."""

from __future__ import annotations

import base64
import socket
import struct
import zlib

import pytest
import tiktoken
import tiktoken.load
from hypothesis import given, settings
from hypothesis import strategies as st

from services.router import tokens
from services.router.tokens import (
    EncodingFileError,
    count_text,
    estimate_completion_tokens,
    estimate_prompt_tokens,
    high_detail_tokens,
    image_tokens,
)


@pytest.mark.parametrize(("text", "ids"), [
    ("hello world", [24912, 2375]),
    ("Hello, world!", [13225, 11, 2375, 0]),
    ("tiktoken is great!", [83, 8251, 2488, 382, 2212, 0]),
])
def test_known_o200k_tokens(text, ids):
    assert tokens.encoding().encode_ordinary(text) == ids
    assert count_text(text) == len(ids)


def test_empty_and_non_ascii():
    assert count_text("") == 0
    assert count_text("日本語のテキスト") == 6
    assert count_text("😀") >= 1
    # Special-token text is counted as plain text, never as a special token.
    assert count_text("<|endoftext|>") == 7


def test_repetition_is_monotonic():
    counts = [count_text(" ".join(["The quick brown fox."] * k)) for k in range(1, 30)]
    assert counts == sorted(counts) and len(set(counts)) == len(counts)


def test_encoding_is_loaded_once():
    assert tokens.encoding() is tokens.encoding()
    assert tokens.encoding().name == "o200k_base"


def test_loading_uses_only_the_shipped_file(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("network access while loading the encoding")

    monkeypatch.setattr(tokens, "_encoding", None)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(tiktoken.load, "read_file", no_network)
    monkeypatch.setattr(tiktoken, "get_encoding", no_network)
    assert count_text("hello world") == 2


def test_a_missing_encoding_file_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(tokens, "_encoding", None)
    monkeypatch.setattr(tokens, "_DATA_FILE", "missing.tiktoken.gz")
    with pytest.raises(EncodingFileError, match="cannot read the shipped o200k_base"):
        tokens.encoding()


def test_a_corrupt_encoding_file_is_refused(monkeypatch):
    monkeypatch.setattr(tokens, "_encoding", None)
    monkeypatch.setattr(tokens, "ENCODING_SHA256", "0" * 64)
    with pytest.raises(EncodingFileError, match="corrupt"):
        tokens.encoding()


_words = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12
).filter(lambda w: not w[-1].isspace())


@settings(max_examples=200, deadline=None)
@given(st.lists(_words, min_size=1, max_size=80))
def test_segmented_counts_are_exact(words):
    """Long texts are encoded in segments cut before a space that follows a
    non-space; that must not change the count. (Words of at most 12 characters
    not ending in whitespace: every half-segment has such a space.)"""
    text = " ".join(words)
    exact = len(tokens.encoding().encode_ordinary(text))
    original = tokens._SEGMENT
    tokens._SEGMENT = 32
    try:
        assert count_text(text) == exact
    finally:
        tokens._SEGMENT = original


def test_pathological_runs_do_not_crash():
    # One regex piece this long overflows tiktoken's regex stack (a Rust panic).
    assert 0 < count_text(" " * 1_000_000) < 20_000
    assert count_text("a" * 100_000) == len(tokens.encoding().encode_ordinary("a" * 100_000))


# -- chat prompts --------------------------------------------------------------------------


def test_message_overhead_follows_the_cookbook():
    body = {"messages": [{"role": "user", "content": "hello world"}]}
    # 3 per message + "user" (1) + "hello world" (2) + 3 for the reply primer.
    assert estimate_prompt_tokens(body) == 3 + 1 + 2 + 3
    named = {"messages": [{"role": "user", "name": "bob", "content": "hello world"}]}
    assert estimate_prompt_tokens(named) == 9 + count_text("bob") + 1
    assert estimate_prompt_tokens({"messages": []}) == 3


def test_text_parts_count_like_strings():
    parts = {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "hello"}, {"type": "text", "text": " world"}]}]}
    assert estimate_prompt_tokens(parts) == 3 + 1 + count_text("hello") + count_text(" world") + 3


def test_more_messages_cost_more():
    one = {"messages": [{"role": "user", "content": "hi"}]}
    two = {"messages": [{"role": "system", "content": "Be brief."},
                        {"role": "user", "content": "hi"}]}
    assert estimate_prompt_tokens(two) > estimate_prompt_tokens(one)


def _png(width: int, height: int) -> str:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + crc
    return "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + chunk).decode()


def _jpeg(width: int, height: int) -> str:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return "data:image/jpeg;base64," + base64.b64encode(b"\xff\xd8" + app0 + sof0).decode()


def _gif(width: int, height: int) -> str:
    head = b"GIF89a" + struct.pack("<HH", width, height) + b"\x00\x00\x00"
    return "data:image/gif;base64," + base64.b64encode(head).decode()


def test_image_costs_follow_openai_vision_pricing():
    # OpenAI's documented examples: 1024x1024 high = 765, 2048x4096 high = 1105.
    assert high_detail_tokens(1024, 1024) == 765
    assert high_detail_tokens(2048, 4096) == 1105
    assert high_detail_tokens(512, 512) == 85 + 170
    assert image_tokens(_png(2048, 4096), "high") == 1105
    assert image_tokens(_jpeg(2048, 4096), "auto") == 1105
    assert image_tokens(_gif(512, 512), None) == 255
    assert image_tokens(_png(4096, 4096), "low") == 85
    # Unknown size (remote URL, unreadable data): OpenAI's 1024x1024 example.
    assert image_tokens("https://example.com/cat.png", "high") == 765
    assert image_tokens("data:image/webp;base64,UklGRg==", None) == 765


def test_image_parts_in_a_prompt():
    body = {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": _png(512, 512), "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg", "detail": "low"}},
    ]}]}
    text_only = {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"}]}]}
    assert estimate_prompt_tokens(body) == estimate_prompt_tokens(text_only) + 255 + 85


def test_tools_and_tool_calls_are_counted():
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}
    plain = {"messages": [{"role": "user", "content": "weather?"}]}
    with_tools = {**plain, "tools": [tool]}
    assert estimate_prompt_tokens(with_tools) - estimate_prompt_tokens(plain) == count_text(
        '[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object",'
        '"properties":{"city":{"type":"string"}}}}}]')
    history = {"messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]}
    expected = (3 + 3 * 3 + count_text("user") + count_text("weather?")
                + count_text("assistant") + count_text("get_weather")
                + count_text('{"city": "Paris"}')
                + count_text("tool") + count_text("c1") + count_text("sunny"))
    assert estimate_prompt_tokens(history) == expected


def test_malformed_bodies_are_estimated_not_raised():
    assert estimate_prompt_tokens({}) == 3
    assert estimate_prompt_tokens({"messages": "nope", "tools": "x"}) == 3
    odd = {"messages": [None, 3, {"role": "user", "content": [None, {"type": "image_url"}]}]}
    assert estimate_prompt_tokens(odd) == 3 + 3 + 1


def test_completion_estimate():
    assert estimate_completion_tokens("", []) == 0
    assert estimate_completion_tokens("hello world", []) == 2
    assert estimate_completion_tokens("hello world", ['{"city": "Paris"}']) == 2 + count_text(
        '{"city": "Paris"}')
