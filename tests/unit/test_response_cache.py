"""Response cache: keys, Cache-Control, the in-memory LRU, and streams <-> completions."""

from __future__ import annotations

import copy
import re

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from prometheus_client import REGISTRY

from services.router.cache import (
    IncompleteStream,
    MemoryCache,
    RedisCache,
    UncacheableRequest,
    build_cache,
    cache_directives,
    cache_key,
    canonical_request,
    chunks_to_completion,
    completion_to_chunks,
    may_store,
    should_bypass,
)
from services.router.config import ResponseCacheConfig
from services.router.openai_api import shape_chunk

CHAT = {
    "model": "gpt-x",
    "messages": [{"role": "user", "content": "Hello"}],
    "temperature": 0.5,
    "max_tokens": 20,
}


def key(body=None, tenant="t1", alias="gpt-x", kind="chat"):
    return cache_key(tenant, alias, kind, CHAT if body is None else body)


# --------------------------------------------------------------------------- keys


def test_key_shape_names_version_and_kind_and_hides_the_tenant():
    k = key(tenant="acme-corp")
    assert re.fullmatch(r"lg:v1:chat:[0-9a-f]{32}:[0-9a-f]{64}", k)
    assert "acme" not in k
    assert key() == key()


def test_key_ignores_key_order_and_number_spelling():
    reordered = {
        "max_tokens": 20.0,
        "temperature": 0.5,
        "messages": [{"content": "Hello", "role": "user"}],
        "model": "gpt-x",
    }
    assert key(reordered) == key()


def test_key_ignores_transport_and_end_user_fields_and_null_defaults():
    noisy = {
        **CHAT,
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "u-42",
        "safety_identifier": "s-1",
        "prompt_cache_key": "pc",
        "model": "some-other-spelling",
        "stop": None,
        "seed": None,
    }
    assert key(noisy) == key()


@pytest.mark.parametrize(
    "change",
    [
        {"temperature": 0.7},
        {"max_tokens": 21},
        {"messages": [{"role": "user", "content": "Hello!"}]},
        {"metadata": {"trace": "1"}},  # echoed in the answer
        {"store": True},  # decides whether the response id is retrievable
        {"service_tier": "flex"},  # echoed in the answer
        {"n": 2},
        {"seed": 7},
    ],
)
def test_key_changes_with_fields_that_change_the_answer(change):
    assert key({**CHAT, **change}) != key()


def test_nested_nulls_are_significant():
    with_null = {**CHAT, "messages": [{"role": "user", "content": "Hello", "name": None}]}
    assert key(with_null) != key()


def test_key_is_scoped_by_tenant_alias_and_kind():
    keys = {
        key(),
        key(tenant="t2"),
        key(alias="gpt-y"),
        key(kind="embeddings"),
    }
    assert len(keys) == 4
    assert key().split(":")[3] != key(tenant="t2").split(":")[3]  # tenant tag differs
    assert key().split(":")[3] == key(alias="gpt-y").split(":")[3]  # same tenant, same tag


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("t:1", "a"), ("t", "1:a")),  # collide when joined with ":"
        (("t", "a:chat"), ("t:a", "chat")),
        (("t1", "a"), ("t", "1a")),  # collide when simply concatenated
        (("t\x00", "a"), ("t", "\x00a")),  # collide when joined with NUL
    ],
)
def test_no_delimiter_injection_between_tenant_and_alias(a, b):
    joins = [a[0] + sep + a[1] == b[0] + sep + b[1] for sep in (":", "", "\x00")]
    assert any(joins)  # a naive scope would put these in one place
    key_a, key_b = (cache_key(t, al, "chat", CHAT) for t, al in (a, b))
    assert key_a != key_b
    # The digest alone keeps them apart (the tenant tag is only for grouping).
    assert key_a.rsplit(":", 1)[1] != key_b.rsplit(":", 1)[1]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("t", "a", "images", CHAT), ValueError),
        (("", "a", "chat", CHAT), ValueError),
        (("t", "", "chat", CHAT), ValueError),
        (("t", "a", "chat", ["not", "a", "dict"]), UncacheableRequest),
        (("t", "a", "chat", {**CHAT, "temperature": float("nan")}), UncacheableRequest),
        (("t", "a", "chat", {**CHAT, "logit_bias": {1: 5}}), UncacheableRequest),
        (("t", "a", "chat", {**CHAT, "x": object()}), UncacheableRequest),
    ],
)
def test_bad_input_is_a_clear_error(args, error):
    with pytest.raises(error) as info:
        cache_key(*args)
    assert str(info.value)


def test_too_deep_bodies_are_uncacheable():
    deep: dict = {}
    for _ in range(5000):
        deep = {"x": deep}
    with pytest.raises(UncacheableRequest):
        canonical_request({"messages": deep})


def test_huge_integers_normalize_like_orjson_parses_them():
    assert canonical_request({"a": 1 << 70}) == canonical_request(
        orjson.loads(b'{"a": 1180591620717411303424}')
    )
    assert canonical_request({"seed": (1 << 63) - 1}) != canonical_request({"seed": (1 << 63) - 2})


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(1 << 53), max_value=1 << 53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


def _respell(value, rnd):
    """Same JSON data: dict keys in another order, integral numbers as floats."""
    if isinstance(value, dict):
        items = list(value.items())
        rnd.shuffle(items)
        return {k: _respell(v, rnd) for k, v in items}
    if isinstance(value, list):
        return [_respell(v, rnd) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and rnd.random() < 0.5:
        return float(value)
    return value


@settings(deadline=None)
@given(st.dictionaries(st.text(max_size=6), json_values, max_size=6), st.randoms())
def test_key_depends_on_the_data_not_its_spelling(body, rnd):
    assert key(_respell(body, rnd)) == key(body)
    # and a JSON round trip (what the router actually parses) changes nothing
    assert key(orjson.loads(orjson.dumps(body))) == key(body)


# --------------------------------------------------------------------------- Cache-Control


@pytest.mark.parametrize(
    ("header", "bypass", "store"),
    [
        (None, False, True),
        ("", False, True),
        ("no-cache", True, True),
        ("No-Cache", True, True),
        ("no-store", True, False),
        ("max-age=60, NO-STORE", True, False),
        ("max-age=0,no-cache", True, True),
        ("  no-cache  ,  ", True, True),
        ("no-transform", False, True),
        ("no-cachex", False, True),
        ("x-no-cache", False, True),
        ('private="no-cache, no-store"', False, True),  # inside a quoted argument
        ('foo="a\\"no-cache,", no-store', True, False),  # escaped quote inside the argument
        ('no-cache="x"', True, True),
    ],
)
def test_cache_control(header, bypass, store):
    assert should_bypass(header) is bypass
    assert may_store(header) is store


def test_directive_names():
    assert cache_directives("Max-Age=5, no-cache , ,public") == {"max-age", "no-cache", "public"}


# --------------------------------------------------------------------------- memory LRU


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def metric(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, {"backend": "memory", **labels}) or 0.0


async def test_lru_stays_within_bytes_and_evicts_least_recently_used():
    cache = MemoryCache(max_bytes=30, max_entry_bytes=100)
    for k in ("k1", "k2", "k3"):
        await cache.put(k, b"12345678", ttl_seconds=60)  # 2 + 8 = 10 bytes each
    assert cache.stats.bytes == 30 and len(cache) == 3
    assert await cache.get("k1") == b"12345678"  # k1 is now the most recent
    await cache.put("k4", b"12345678", ttl_seconds=60)
    assert "k2" not in cache  # least recently used went first
    assert all(k in cache for k in ("k1", "k3", "k4"))
    await cache.put("k5", b"1234567890123456", ttl_seconds=60)  # 18 bytes: two must go
    assert "k3" not in cache and "k1" not in cache
    assert {k for k in ("k4", "k5") if k in cache} == {"k4", "k5"}
    assert cache.stats.bytes == 10 + 18 <= 30
    assert cache.stats.evictions == 3


async def test_bytes_count_keys_and_values_and_replacement():
    cache = MemoryCache(max_bytes=1000, max_entry_bytes=1000)
    await cache.put("é", b"abc", ttl_seconds=5)  # key is 2 bytes in UTF-8
    assert cache.stats.bytes == 5
    await cache.put("é", b"abcdef", ttl_seconds=5)
    assert cache.stats.bytes == 8 and len(cache) == 1
    assert await cache.get("é") == b"abcdef"


async def test_ttl_expiry_with_a_fake_clock():
    clock = FakeClock()
    cache = MemoryCache(max_bytes=1000, max_entry_bytes=1000, clock=clock)
    await cache.put("a", b"v", ttl_seconds=10)
    clock.now += 9.999
    assert await cache.get("a") == b"v"
    clock.now += 0.001  # exactly at expiry: never served
    assert await cache.get("a") is None
    assert "a" not in cache and cache.stats.bytes == 0
    assert cache.stats.expired == 1


async def test_expired_entries_are_reclaimed_before_live_ones_count_as_evicted():
    clock = FakeClock()
    cache = MemoryCache(max_bytes=4, max_entry_bytes=10, clock=clock)
    await cache.put("a", b"1", ttl_seconds=1)
    await cache.put("b", b"1", ttl_seconds=100)
    clock.now += 5
    await cache.put("c", b"1", ttl_seconds=100)  # "a" (expired) makes room
    assert cache.stats.expired == 1 and cache.stats.evictions == 0
    assert await cache.get("b") == b"1"


async def test_oversized_and_zero_ttl_entries_are_not_stored():
    cache = MemoryCache(max_bytes=20, max_entry_bytes=8)
    await cache.put("big", b"123456789", ttl_seconds=60)  # over max_entry_bytes
    await cache.put("k" * 15, b"123456", ttl_seconds=60)  # fits the entry bound, not the cache
    await cache.put("z", b"1", ttl_seconds=0)
    assert len(cache) == 0 and cache.stats.bytes == 0
    assert cache.stats.skipped == 3 and cache.stats.writes == 0
    disabled = MemoryCache(max_bytes=0, max_entry_bytes=0)
    await disabled.put("a", b"", ttl_seconds=60)
    assert len(disabled) == 0


async def test_an_unstorable_new_answer_still_replaces_the_old_one():
    cache = MemoryCache(max_bytes=100, max_entry_bytes=4)
    await cache.put("a", b"old", ttl_seconds=60)
    await cache.put("a", b"too long", ttl_seconds=60)
    assert await cache.get("a") is None and cache.stats.bytes == 0


async def test_memory_metrics_are_exported():
    before = {
        n: metric(n)
        for n in (
            "lockgate_router_cache_hits_total",
            "lockgate_router_cache_misses_total",
            "lockgate_router_cache_evictions_total",
            "lockgate_router_cache_bytes",
        )
    }
    cache = MemoryCache(max_bytes=4, max_entry_bytes=4)
    await cache.put("a", b"1", ttl_seconds=60)
    await cache.get("a")
    await cache.get("nope")
    await cache.put("b", b"123", ttl_seconds=60)  # evicts "a"
    assert (
        metric("lockgate_router_cache_hits_total") == before["lockgate_router_cache_hits_total"] + 1
    )
    assert (
        metric("lockgate_router_cache_misses_total")
        == before["lockgate_router_cache_misses_total"] + 1
    )
    assert (
        metric("lockgate_router_cache_evictions_total")
        == before["lockgate_router_cache_evictions_total"] + 1
    )
    assert metric("lockgate_router_cache_bytes") == before["lockgate_router_cache_bytes"] + 4
    await cache.close()
    assert metric("lockgate_router_cache_bytes") == before["lockgate_router_cache_bytes"]
    assert len(cache) == 0


async def test_build_cache_picks_the_configured_backend():
    memory = build_cache(ResponseCacheConfig(max_bytes=123, max_entry_bytes=45))
    assert isinstance(memory, MemoryCache) and (memory.max_bytes, memory.max_entry_bytes) == (
        123,
        45,
    )
    remote = build_cache(ResponseCacheConfig(backend="redis", redis_url="redis://127.0.0.1:6379/0"))
    assert isinstance(remote, RedisCache)
    await remote.close()


def test_redis_cache_rejects_a_non_redis_url():
    with pytest.raises(ValueError, match="redis://"):
        RedisCache("http://127.0.0.1:6379", 100)


# --------------------------------------------------------------------------- streams


SIM_LIKE = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-x",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hi there", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    "system_fingerprint": "fp_1",
}

TOOL_CALL = {
    **SIM_LIKE,
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_time", "arguments": "{}"},
                    },
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
}


def test_completion_to_chunks_matches_openai_stream_shape():
    head = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-x",
        "system_fingerprint": "fp_1",
        "usage": None,
    }

    def choice(delta, finish=None):
        return {
            **head,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    assert completion_to_chunks(SIM_LIKE) == [
        choice({"role": "assistant", "content": "", "refusal": None}),
        choice({"content": "Hi there"}),
        choice({}, "stop"),
        {**head, "choices": [], "usage": SIM_LIKE["usage"]},
    ]


def test_tool_calls_become_indexed_deltas():
    chunks = completion_to_chunks(TOOL_CALL)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": None, "refusal": None}
    assert deltas[1]["tool_calls"] == [
        {"index": 0, **TOOL_CALL["choices"][0]["message"]["tool_calls"][0]}
    ]
    assert deltas[2]["tool_calls"][0]["index"] == 1
    assert chunks_to_completion(chunks) == TOOL_CALL


def test_streamed_tool_call_fragments_assemble():
    head = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}

    def chunk(delta, finish=None, index=0):
        return {**head, "choices": [{"index": index, "delta": delta, "finish_reason": finish}]}

    chunks = [
        chunk({"role": "assistant", "content": None}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "f", "arguments": ""},
                    }
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a"'}}]}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 1,
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "g", "arguments": "{}"},
                    }
                ]
            }
        ),
        chunk(
            {
                "tool_calls": [
                    {"index": 0, "id": None, "function": {"name": None, "arguments": ":1}"}}
                ]
            }
        ),
        chunk({}, "tool_calls"),
        {
            **head,
            "choices": [],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
        },
    ]
    done = chunks_to_completion(chunks)
    calls = done["choices"][0]["message"]["tool_calls"]
    assert [c["id"] for c in calls] == ["call_1", "call_2"]
    assert calls[0]["function"] == {"name": "f", "arguments": '{"a":1}'}
    assert done["choices"][0]["finish_reason"] == "tool_calls"
    assert done["usage"]["total_tokens"] == 3
    ChatCompletion.model_validate(done)


def test_incomplete_streams_are_refused():
    chunks = completion_to_chunks(SIM_LIKE)
    with pytest.raises(IncompleteStream, match="finish_reason"):
        chunks_to_completion(chunks[:2])
    with pytest.raises(IncompleteStream):
        chunks_to_completion([])


def test_non_chunk_events_are_skipped():
    azure_filter = {
        "id": "",
        "object": "",
        "created": 0,
        "model": "",
        "choices": [{"index": 0, "delta": {"content": "junk"}, "content_filter_results": {}}],
    }
    chunks = completion_to_chunks(SIM_LIKE)
    assert chunks_to_completion([azure_filter, *chunks]) == SIM_LIKE


def test_replayed_chunks_go_through_shape_chunk():
    chunks = completion_to_chunks(SIM_LIKE)
    without_usage = [shape_chunk(copy.deepcopy(c), "alias", False) for c in chunks]
    assert without_usage[-1] is None and all(b"usage" not in e for e in without_usage[:-1])
    with_usage = [shape_chunk(copy.deepcopy(c), "alias", True) for c in chunks]
    assert b'"total_tokens":7' in with_usage[-1]


# Completions with every field the SDK exposes on messages and choices.
texts = st.text(max_size=12)
logprob = st.fixed_dictionaries(
    {
        "token": texts,
        "logprob": st.floats(max_value=0, allow_nan=False, allow_infinity=False),
        "bytes": st.one_of(st.none(), st.lists(st.integers(0, 255), max_size=4)),
        "top_logprobs": st.just([]),
    }
)
logprobs = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {
            "content": st.one_of(st.none(), st.lists(logprob, min_size=1, max_size=3)),
            "refusal": st.one_of(st.none(), st.lists(logprob, min_size=1, max_size=2)),
        }
    ),
)
function = st.fixed_dictionaries({"name": texts, "arguments": texts})
tool_call = st.fixed_dictionaries(
    {"id": st.text(min_size=1, max_size=8), "type": st.just("function"), "function": function}
)
annotation = st.fixed_dictionaries(
    {
        "type": st.just("url_citation"),
        "url_citation": st.fixed_dictionaries(
            {
                "start_index": st.integers(0, 50),
                "end_index": st.integers(0, 50),
                "title": texts,
                "url": texts,
            }
        ),
    }
)
audio = st.fixed_dictionaries(
    {
        "id": st.text(min_size=1, max_size=6),
        "data": texts,
        "expires_at": st.integers(0, 2**31),
        "transcript": texts,
    }
)


def maybe(name, strategy):
    """The key absent, present as null, or with a value."""
    return st.one_of(st.just({}), st.just({name: None}), strategy.map(lambda v: {name: v}))


@st.composite
def messages(draw):
    message = {"role": "assistant", "content": draw(st.one_of(st.none(), texts))}
    for part in (
        maybe("refusal", texts),
        maybe("tool_calls", st.lists(tool_call, max_size=3)),
        maybe("annotations", st.lists(annotation, max_size=2)),
        maybe("audio", audio),
        maybe("function_call", function),
    ):
        message.update(draw(part))
    return message


@st.composite
def completions(draw):
    n = draw(st.integers(1, 3))
    reply = {
        "id": draw(st.text(min_size=1, max_size=10)),
        "object": "chat.completion",
        "created": draw(st.integers(0, 2**33)),
        "model": draw(st.text(min_size=1, max_size=10)),
        "choices": [
            {
                "index": i,
                "message": draw(messages()),
                "logprobs": draw(logprobs),
                "finish_reason": draw(
                    st.sampled_from(
                        ["stop", "length", "tool_calls", "content_filter", "function_call"]
                    )
                ),
            }
            for i in range(n)
        ],
    }
    reply.update(
        draw(
            maybe(
                "usage",
                st.builds(
                    lambda p, c: {
                        "prompt_tokens": p,
                        "completion_tokens": c,
                        "total_tokens": p + c,
                    },
                    st.integers(0, 10**6),
                    st.integers(0, 10**6),
                ),
            )
        )
    )
    reply.update(draw(maybe("system_fingerprint", texts)))
    reply.update(draw(maybe("service_tier", st.sampled_from(["default", "flex", "priority"]))))
    return reply


@settings(max_examples=200, deadline=None)
@given(completions())
def test_completion_chunks_round_trip_exactly(reply):
    original = copy.deepcopy(reply)
    chunks = completion_to_chunks(reply)
    assert reply == original  # the input is not modified
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    assert chunks_to_completion(chunks) == original


def _pieces(draw, text: str) -> list[str]:
    cuts = sorted(draw(st.sets(st.integers(0, len(text)), max_size=3)))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


@st.composite
def fragmented_streams(draw):
    """(completion, chunks): the completion streamed in arbitrary fragments,
    choices interleaved, as a provider could send it."""
    reply = draw(completions())
    head = {k: reply[k] for k in ("id", "created", "model")}
    head["object"] = "chat.completion.chunk"
    for name in ("system_fingerprint", "service_tier"):
        if name in reply:
            head[name] = reply[name]
    per_choice = []
    for choice in reply["choices"]:
        message, i, deltas = choice["message"], choice["index"], []
        content = message["content"]
        deltas.append(
            ({"role": "assistant", "content": "" if isinstance(content, str) else None}, None)
        )
        for piece in _pieces(draw, content or ""):
            deltas.append(({"content": piece}, None))
        for name in ("refusal", "annotations", "audio", "function_call"):
            if name in message:
                value = message[name]
                if isinstance(value, str):
                    deltas.append(({name: ""}, None))
                    deltas.extend(({name: p}, None) for p in _pieces(draw, value))
                elif isinstance(value, dict) and "arguments" in value:
                    deltas.append(({name: {"name": value["name"], "arguments": ""}}, None))
                    deltas.extend(
                        ({name: {"arguments": p}}, None) for p in _pieces(draw, value["arguments"])
                    )
                else:
                    deltas.append(({name: value}, None))
        if "tool_calls" in message:
            calls = message["tool_calls"]
            if not calls:
                deltas.append(({"tool_calls": calls}, None))
            for k, call in enumerate(calls or []):
                deltas.append(
                    (
                        {
                            "tool_calls": [
                                {
                                    "index": k,
                                    "id": call["id"],
                                    "type": "function",
                                    "function": {"name": call["function"]["name"], "arguments": ""},
                                }
                            ]
                        },
                        None,
                    )
                )
                for p in _pieces(draw, call["function"]["arguments"]):
                    deltas.append(
                        ({"tool_calls": [{"index": k, "function": {"arguments": p}}]}, None)
                    )
        if choice["logprobs"] is not None:
            deltas[0] = (deltas[0][0], choice["logprobs"])
        deltas.append(({}, "finish"))
        per_choice.append(
            [
                {
                    "index": i,
                    "delta": d,
                    "logprobs": lp if lp != "finish" else None,
                    "finish_reason": choice["finish_reason"] if lp == "finish" else None,
                }
                for d, lp in deltas
            ]
        )
    chunks = []
    while any(per_choice):
        queue = draw(st.sampled_from([q for q in per_choice if q]))
        chunks.append({**head, "choices": [queue.pop(0)]})
    if "usage" in reply:
        for chunk in chunks:
            chunk["usage"] = None
        if reply["usage"] is not None:
            chunks.append({**head, "choices": [], "usage": reply["usage"]})
    return reply, chunks


@settings(max_examples=200, deadline=None)
@given(fragmented_streams())
def test_fragmented_streams_assemble_to_the_completion(case):
    reply, chunks = case
    assembled = chunks_to_completion(chunks)
    assert assembled == reply
    # and replaying what was stored reassembles to the same thing
    assert chunks_to_completion(completion_to_chunks(assembled)) == assembled


def _sdk_view(completion: ChatCompletion) -> dict:
    data = completion.model_dump(exclude_none=True)
    for choice in data["choices"]:
        for call in choice["message"].get("tool_calls") or []:
            call["function"].pop("parsed_arguments", None)  # snapshot-only extras
            call.pop("index", None)
    return data


@settings(max_examples=100, deadline=None)
@given(completions())
def test_openai_sdk_sees_the_same_answer_streamed_from_the_cache(reply):
    """The official SDK's own stream accumulator, fed the replayed chunks, ends
    with the completion a non-streamed call would have returned."""
    state = ChatCompletionStreamState()
    for chunk in completion_to_chunks(reply):
        state.handle_chunk(ChatCompletionChunk.model_validate(chunk))
    # The snapshot, not get_final_completion(): that one also refuses to
    # *parse* answers cut by length or content filter, which is beside the point.
    streamed = _sdk_view(ChatCompletion.model_validate(state.current_completion_snapshot.to_dict()))
    expected = _sdk_view(ChatCompletion.model_validate(reply))
    # The SDK keeps empty lists from the role chunk (e.g. tool_calls: []) as
    # given; compare what a caller reads.
    for data in (streamed, expected):
        for choice in data["choices"]:
            for name in ("tool_calls", "annotations"):
                if choice["message"].get(name) == []:
                    del choice["message"][name]
    assert streamed == expected
