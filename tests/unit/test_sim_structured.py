"""The simulator's structured outputs (lockgate.sim.structured), its regex walk
(lockgate.sim.regex_strings) and the echo / token-piece helpers of replies:
every generated document is checked with the jsonschema package."""

from __future__ import annotations

import json
import re

import jsonschema
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockgate.sim import replies, structured
from lockgate.sim.errors import SimError
from lockgate.sim.regex_strings import matching
from lockgate.sim.response_format import parse_response_format
from lockgate.sim.structured import SchemaProblem, document

KEY = replies.messages_key([{"role": "user", "content": "Summarise the ticket."}])
OTHER_KEY = replies.messages_key([{"role": "user", "content": "Something else entirely."}])

_VALIDATOR = jsonschema.Draft202012Validator
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


def check(schema, key=KEY, choice=0, strict=True):
    """The document for ``schema``, after checking it validates (formats too)."""
    value = document(schema, key, choice, strict=strict)
    _VALIDATOR(schema, format_checker=_VALIDATOR.FORMAT_CHECKER).validate(value)
    # what the endpoint sends is its compact JSON text
    assert json.loads(structured.dumps(value)) == value
    return value


def strict_object(properties, **extra):
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False, **extra}


# -- schemas, one keyword at a time --------------------------------------------------

TICKET = strict_object({
    "title": {"type": "string", "minLength": 3, "maxLength": 40},
    "priority": {"type": "string", "enum": ["low", "medium", "high"]},
    "kind": {"const": "ticket"},
    "count": {"type": "integer", "minimum": 1, "maximum": 5},
    "score": {"type": "number", "minimum": 0, "maximum": 1},
    "urgent": {"type": "boolean"},
    "owner": {"type": ["string", "null"]},
    "labels": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 4},
    "location": strict_object({"city": {"type": "string"}, "zip": {"type": "string"}}),
})


def test_a_strict_object_has_every_property_in_schema_order():
    value = check(TICKET)
    assert list(value) == list(TICKET["properties"])
    assert value["kind"] == "ticket"
    assert value["priority"] in ("low", "medium", "high")
    assert isinstance(value["owner"], str)  # the first non-null type
    assert set(value["location"]) == {"city", "zip"}
    assert all(w in replies.VOCABULARY for w in value["title"].split())


def test_documents_are_deterministic_per_messages_and_choice():
    assert document(TICKET, KEY) == document(TICKET, KEY)
    docs = {structured.dumps(document(TICKET, k, c)) for k in (KEY, OTHER_KEY) for c in (0, 1)}
    assert len(docs) == 4
    text = structured.structured_text(TICKET, [{"role": "user", "content": "Summarise the ticket."}])
    assert text == structured.dumps(document(TICKET, KEY))


def test_not_strict_takes_the_required_properties_all_when_none_are_marked():
    schema = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
              "required": ["b"]}
    assert list(check(schema, strict=False)) == ["b"]
    assert list(check(schema, strict=True)) == ["a", "b"]
    del schema["required"]
    assert list(check(schema, strict=False)) == ["a", "b"]


@pytest.mark.parametrize("low, high", [(0, 0), (0, 1), (1, 1), (5, 5), (12, 14), (50, None),
                                       (None, 3), (200, 260)])
def test_string_lengths(low, high):
    schema = {"type": "string"}
    if low is not None:
        schema["minLength"] = low
    if high is not None:
        schema["maxLength"] = high
    for k in range(20):
        check(schema, key=KEY + bytes([k]))


@pytest.mark.parametrize("fmt", ["date-time", "date", "time", "duration", "email", "hostname",
                                 "ipv4", "ipv6", "uuid", "uri", "uri-reference", "json-pointer",
                                 "relative-json-pointer", "regex", "idn-email"])
def test_string_formats(fmt):
    value = check({"type": "string", "format": fmt})
    if fmt == "date-time":  # not asserted by jsonschema without rfc3339-validator
        assert _DATE_TIME.fullmatch(value)
    if fmt == "time":
        assert re.fullmatch(r"\d{2}:\d{2}:\d{2}Z", value)


@pytest.mark.parametrize("pattern", [
    r"^[A-Z]{3}-\d{4}$",
    r"^\+?[1-9]\d{1,14}$",
    r"^#[0-9a-fA-F]{6}$",
    r"^(low|medium|high)$",
    r"^[a-z]+(-[a-z]+)*$",
    r"^\S+@\S+\.[a-z]{2,}$",
    r"^(ab|cd)\1$",
    r"^[^aeiou\s]{2,5}$",
    r"v\d+\.\d+",
    r"^.{3}$",
    r"^[\w.]+$",
])
def test_string_patterns(pattern):
    for k in range(10):
        value = check({"type": "string", "pattern": pattern}, key=KEY + bytes([k]))
        assert re.search(pattern, value)


@pytest.mark.parametrize("schema", [
    {"type": "integer"},
    {"type": "integer", "minimum": -5, "maximum": -5},
    {"type": "integer", "minimum": 10},
    {"type": "integer", "maximum": -1000},
    {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 2},
    {"type": "integer", "minimum": 0.5, "maximum": 1.5},
    {"type": "integer", "multipleOf": 7, "minimum": 1, "maximum": 20},
    {"type": "integer", "multipleOf": 0.1, "minimum": 1, "maximum": 9},
    {"type": "integer", "multipleOf": 2.5, "minimum": 1, "maximum": 9},
    {"type": "integer", "minimum": 10**20, "maximum": 10**20 + 5},
    {"type": "number"},
    {"type": "number", "minimum": 0, "maximum": 1},
    {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 0.001},
    {"type": "number", "minimum": 3.25, "maximum": 3.25},
    {"type": "number", "multipleOf": 0.1, "minimum": 0, "maximum": 1},
    {"type": "number", "multipleOf": 0.01, "exclusiveMinimum": 0.5, "maximum": 0.6},
    {"type": "number", "multipleOf": 0.25},
    {"type": "number", "minimum": -1e300, "maximum": 1e300},
])
def test_numbers_within_bounds(schema):
    for k in range(20):
        check(schema, key=KEY + bytes([k]))


def test_draft4_boolean_exclusive_bounds():
    schema = {"type": "integer", "minimum": 0, "exclusiveMinimum": True, "maximum": 2,
              "exclusiveMaximum": True}
    assert {document(schema, KEY + bytes([k])) for k in range(10)} == {1}


@pytest.mark.parametrize("schema", [
    {"type": "array", "items": {"type": "integer"}},
    {"type": "array", "items": {"type": "integer"}, "minItems": 0, "maxItems": 0},
    {"type": "array", "items": {"type": "string"}, "minItems": 7},
    {"type": "array", "items": {"type": "string"}, "maxItems": 1},
    {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 9},
     "minItems": 5, "maxItems": 5, "uniqueItems": True},
    {"type": "array", "items": {"enum": ["a", "b", "c"]}, "minItems": 3, "uniqueItems": True},
    {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "items": False},
    {"type": "array", "prefixItems": [{"type": "boolean"}], "minItems": 3,
     "items": {"type": "null"}},
    {"type": "array"},
])
def test_arrays(schema):
    for k in range(10):
        check(schema, key=KEY + bytes([k]))


def test_any_of_takes_the_first_branch_and_ref_follows_defs():
    schema = {
        "$defs": {"money": strict_object({"amount": {"type": "number"},
                                          "currency": {"enum": ["EUR", "USD"]}})},
        **strict_object({
            "price": {"$ref": "#/$defs/money"},
            "either": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
            "one": {"oneOf": [{"type": "boolean"}, {"type": "null"}]},
            "all": {"allOf": [strict_object({"a": {"type": "string"}}),
                              {"properties": {"a": {"maxLength": 3}}}]},
        }),
    }
    value = check(schema)
    assert set(value["price"]) == {"amount", "currency"}
    assert isinstance(value["either"], int)
    assert isinstance(value["one"], bool)
    assert len(value["all"]["a"]) <= 3


def test_refs_with_escapes_anchors_and_root():
    schema = {
        "$defs": {"a/b": {"type": "integer", "minimum": 3, "maximum": 3},
                  "named": {"$anchor": "thing", "const": "anchored"}},
        **strict_object({"escaped": {"$ref": "#/$defs/a~1b"},
                         "anchor": {"$ref": "#thing"}}),
    }
    assert check(schema) == {"escaped": 3, "anchor": "anchored"}


LINKED_LIST = {
    "$defs": {"node": strict_object({
        "value": {"type": "number"},
        "next": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]},
    })},
    **strict_object({"head": {"$ref": "#/$defs/node"}}),
}
TREE = strict_object({"label": {"type": "string"},
                      "children": {"type": "array", "items": {"$ref": "#"}}})
MUTUAL = {
    "$defs": {
        "a": strict_object({"b": {"anyOf": [{"$ref": "#/$defs/b"}, {"type": "null"}]}}),
        "b": strict_object({"a": {"$ref": "#/$defs/a"}, "n": {"type": ["integer", "null"]}}),
    },
    "$ref": "#/$defs/a",
}
WIDE = {
    "$defs": {"n": strict_object({k: {"anyOf": [{"$ref": "#/$defs/n"}, {"type": "null"}]}
                                  for k in "abcdef"})},
    "$ref": "#/$defs/n",
}


def _depth(value) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


@pytest.mark.parametrize("schema", [LINKED_LIST, TREE, MUTUAL, WIDE],
                         ids=["linked-list", "tree", "mutual", "wide"])
def test_recursive_schemas_end(schema):
    for k in range(5):
        value = check(schema, key=KEY + bytes([k]))
        assert _depth(value) <= structured.MAX_DEPTH + 2


def test_linked_list_follows_the_first_branch_until_the_depth_bound():
    node, length = check(LINKED_LIST)["head"], 1
    while node["next"] is not None:
        node, length = node["next"], length + 1
    assert 3 <= length <= structured.MAX_DEPTH


@pytest.mark.parametrize("schema, message", [
    (strict_object({"self": {"$ref": "#"}}), "deeper than"),
    ({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
     "cycle"),
    (strict_object({"x": {"$ref": "#/$defs/missing"}}), "can't be resolved"),
    (strict_object({"x": {"$ref": "https://example.com/schema.json"}}), "local references"),
    ({"type": "array", "minItems": 10**7}, "more than"),
    ({"type": "string", "minLength": 10**8}, "more than"),
    ({"type": "array", "minItems": 1000,
      "items": {"type": "array", "minItems": 1000, "items": {"type": "integer"}}}, "more than"),
])
def test_unanswerable_schemas(schema, message):
    with pytest.raises(SchemaProblem, match=message):
        document(schema, KEY)


def test_gemini_style_schemas():
    schema = {"type": "OBJECT", "properties": {
        "name": {"type": "STRING", "nullable": True},
        "items": {"type": "ARRAY", "items": {"type": "INTEGER"}, "minItems": "2", "maxItems": "2"},
        "kind": {"type": "STRING", "enum": ["A", "B"]},
    }, "required": ["name", "items", "kind"]}
    value = document(schema, KEY, strict=False)
    assert isinstance(value["name"], str) and len(value["items"]) == 2
    assert all(isinstance(i, int) for i in value["items"]) and value["kind"] in ("A", "B")


def test_enum_values_fit_the_type_and_untyped_schemas_are_inferred():
    assert check({"type": "integer", "enum": ["x", 3, None]}) == 3
    assert isinstance(check({"properties": {"a": {"type": "string"}}}), dict)
    assert isinstance(check({"items": {"type": "string"}}), list)
    assert isinstance(check({"minimum": 2}), int | float)
    assert isinstance(check({}), str)
    assert check({"type": "null"}) is None


def test_min_and_max_properties():
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "minProperties": 3}
    assert len(check(schema, strict=False)) >= 3
    schema = {"type": "object", "properties": {k: {"type": "integer"} for k in "abcd"},
              "required": ["a"], "maxProperties": 2}
    assert "a" in check(schema, strict=True)


# -- hypothesis: random satisfiable schemas ---------------------------------------

_names = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)


@st.composite
def _string_schemas(draw):
    schema = {"type": "string"}
    kind = draw(st.sampled_from(["plain", "lengths", "format", "pattern", "enum"]))
    if kind == "lengths":
        low = draw(st.integers(0, 30))
        schema["minLength"] = low
        if draw(st.booleans()):
            schema["maxLength"] = low + draw(st.integers(0, 30))
    elif kind == "format":
        schema["format"] = draw(st.sampled_from(["date", "email", "ipv4", "ipv6", "uuid", "uri"]))
    elif kind == "pattern":
        schema["pattern"] = draw(st.sampled_from(
            [r"^[a-z]{2,6}$", r"^\d{3}-\d{2}$", r"^(yes|no)$", r"[A-F0-9]+", r"^x+y*z?$"]))
    elif kind == "enum":
        schema["enum"] = draw(st.lists(st.text(max_size=5), min_size=1, max_size=4, unique=True))
    return schema


@st.composite
def _number_schemas(draw):
    kind = draw(st.sampled_from(["integer", "number"]))
    schema = {"type": kind}
    low = draw(st.none() | st.integers(-1000, 1000))
    width = draw(st.integers(4, 1000))
    if low is not None:
        schema["exclusiveMinimum" if draw(st.booleans()) else "minimum"] = low
    if draw(st.booleans()):
        high = (low if low is not None else 0) + width
        schema["exclusiveMaximum" if draw(st.booleans()) else "maximum"] = high
    if draw(st.booleans()):
        schema["multipleOf"] = draw(st.sampled_from([1, 2, 3, 0.5, 0.25] if kind == "integer"
                                                    else [1, 2, 0.5, 0.25, 0.1, 0.01]))
    return schema


_leaves = st.one_of(
    _string_schemas(),
    _number_schemas(),
    st.just({"type": "boolean"}),
    st.just({"type": "null"}),
    st.builds(lambda v: {"const": v}, st.integers() | st.text(max_size=5) | st.booleans()),
)


def _composites(children):
    objects = st.dictionaries(_names, children, max_size=5).map(
        lambda props: strict_object(props))
    loose = st.tuples(st.dictionaries(_names, children, max_size=5), st.data()).map(
        lambda t: {"type": "object", "properties": t[0],
                   "required": t[1].draw(st.lists(st.sampled_from(sorted(t[0])), unique=True))
                   if t[0] else []})
    arrays = st.tuples(children, st.integers(0, 3), st.integers(0, 3)).map(
        lambda t: {"type": "array", "items": t[0], "minItems": t[1], "maxItems": t[1] + t[2]})
    any_of = st.lists(children, min_size=1, max_size=3).map(lambda bs: {"anyOf": bs})
    nullable = children.filter(lambda s: isinstance(s.get("type"), str)).map(
        lambda s: {**s, "type": [s["type"], "null"]} if "enum" not in s else s)
    return st.one_of(objects, loose, arrays, any_of, nullable)


_schemas = st.recursive(_leaves, _composites, max_leaves=12)


@given(schema=_schemas, strict=st.booleans(), words=st.text(max_size=20), choice=st.integers(0, 3))
def test_random_schemas_give_valid_documents(schema, strict, words, choice):
    key = replies.messages_key([{"role": "user", "content": words}])
    value = check(schema, key=key, choice=choice, strict=strict)
    assert document(schema, key, choice, strict=strict) == value  # deterministic


@given(schema=_schemas.map(lambda s: {"$defs": {"d": s}, **strict_object(
    {"x": {"$ref": "#/$defs/d"}, "y": {"type": "array", "items": {"$ref": "#/$defs/d"}}})}))
def test_random_schemas_behind_refs(schema):
    check(schema)


# -- regex walk --------------------------------------------------------------------------


def test_matching_gives_none_when_it_cannot():
    pick = structured._Draws(b"seed").below
    assert matching(r"(?=a)b", pick) is None  # a lookahead it ignores
    assert matching(r"[", pick) is None  # not a regex
    assert matching(r"^a{100000}$", pick) is None  # too long
    assert matching(r"^\d{4}$", pick) is not None


def test_an_unmatchable_pattern_falls_back_to_words():
    value = document({"type": "string", "pattern": r"(?=a)b"}, KEY)
    assert all(w in replies.VOCABULARY for w in value.split())


# -- response_format parameter -----------------------------------------------------------


def test_parse_response_format():
    assert parse_response_format({}) is None
    assert parse_response_format({"response_format": {"type": "text"}}) is None
    fmt = parse_response_format({"response_format": {"type": "json_object"}})
    assert fmt is not None and fmt.schema is None
    assert orjson.loads(fmt.text(KEY, 3)) == {"text": replies.reply_text(
        [{"role": "user", "content": "Summarise the ticket."}], 3)}
    fmt = parse_response_format({"response_format": {"type": "json_schema", "json_schema": {
        "name": "ticket", "schema": TICKET, "strict": True}}})
    assert fmt is not None and fmt.strict and fmt.name == "ticket"
    assert fmt.text(KEY, 12) == structured.dumps(document(TICKET, KEY))


@pytest.mark.parametrize("fmt, param", [
    ("json", "response_format"),
    ({}, "response_format.type"),
    ({"type": "xml"}, "response_format.type"),
    ({"type": "json_schema"}, "response_format.json_schema"),
    ({"type": "json_schema", "json_schema": []}, "response_format.json_schema"),
    ({"type": "json_schema", "json_schema": {}}, "response_format.json_schema.name"),
    ({"type": "json_schema", "json_schema": {"name": 3}}, "response_format.json_schema.name"),
    ({"type": "json_schema", "json_schema": {"name": "a b"}}, "response_format.json_schema.name"),
    ({"type": "json_schema", "json_schema": {"name": "a\n"}}, "response_format.json_schema.name"),
    ({"type": "json_schema", "json_schema": {"name": "x" * 65}},
     "response_format.json_schema.name"),
    ({"type": "json_schema", "json_schema": {"name": "a", "schema": []}},
     "response_format.json_schema.schema"),
    ({"type": "json_schema", "json_schema": {"name": "a", "strict": "yes"}},
     "response_format.json_schema.strict"),
])
def test_parse_response_format_errors(fmt, param):
    with pytest.raises(SimError) as info:
        parse_response_format({"response_format": fmt})
    assert (info.value.status, info.value.param) == (400, param)


def test_an_unanswerable_schema_is_an_openai_400():
    fmt = parse_response_format({"response_format": {"type": "json_schema", "json_schema": {
        "name": "loop", "schema": strict_object({"x": {"$ref": "#/$defs/nope"}})}}})
    with pytest.raises(SimError) as info:
        fmt.text(KEY, 12)
    assert (info.value.status, info.value.param) == (400, "response_format")
    assert info.value.message.startswith("Invalid schema for response_format 'loop': ")


# -- token pieces and echo ---------------------------------------------------------------


@given(st.text(max_size=200))
def test_text_pieces_add_up(text):
    pieces = replies.text_pieces(text)
    assert "".join(pieces) == text
    assert sum(map(replies.count_tokens, pieces)) == replies.count_tokens(text)
    assert all(replies.count_tokens(p) <= 1 for p in pieces)


def test_finish_cuts_like_complete():
    pieces = replies.text_pieces('{"a":"river stone","b":[1,2,3]}')
    whole = replies.finish(pieces)
    assert (whole.text, whole.finish_reason) == ('{"a":"river stone","b":[1,2,3]}', "stop")
    assert whole.tokens == replies.count_tokens(whole.text)
    cut = replies.finish(pieces, max_tokens=5)
    assert (cut.text, cut.tokens, cut.finish_reason) == ('{"a":', 5, "length")
    stopped = replies.finish(pieces, stop=["stone"])
    assert (stopped.text, stopped.finish_reason) == ('{"a":"river ', "stop")


def test_echo_text():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hello "},
                                     {"type": "image_url", "image_url": {"url": "data:,"}},
                                     {"type": "text", "text": "there"}]},
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "user", "content": "line one\nline two"},
    ]
    text = replies.echo_text(messages)
    assert text == ("system: Be brief.\nuser: Hello there\nassistant: \n"
                    "user: line one\nline two")
    done = replies.echo(messages)
    assert (done.text, done.finish_reason, done.tokens) == (
        text, "stop", replies.count_tokens(text))
