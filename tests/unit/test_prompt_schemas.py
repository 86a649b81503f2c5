"""Prompt API schemas: publish-time checks, input validation, regex guard, breaking changes."""

from __future__ import annotations

import copy
import time
from collections import Counter

import jsonschema
import pytest
import referencing.exceptions
from hypothesis import given, settings
from hypothesis import strategies as st

from lockgate.prompts import schema as schema_module
from lockgate.prompts.compat import (
    BreakingChangeError,
    Version,
    VersionError,
    breaking_changes,
    check_version_bump,
    is_major_bump,
    parse_version,
)
from lockgate.prompts.schema import (
    SUPPORTED_FORMATS,
    FieldError,
    InputError,
    InputSchema,
    InputTooLarge,
    SchemaError,
    check_input_schema,
    check_output_schema,
    format_path,
)


def obj(properties: dict | None = None, **extra) -> dict:
    out: dict = {"type": "object"}
    if properties is not None:
        out["properties"] = properties
    out.update(extra)
    return out


# --- publish-time schema checks ------------------------------------------------------

def test_a_typical_schema_is_accepted():
    check_input_schema({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://example.com/support.json",
        "title": "Support question",
        "type": "object",
        "properties": {
            "question": {"type": "string", "minLength": 1, "maxLength": 2000},
            "customer": {"$ref": "#/$defs/customer"},
            "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True,
                     "maxItems": 10},
            "when": {"type": "string", "format": "date-time"},
            "code": {"type": "string", "pattern": "^[A-Z]{2}-[0-9]+$"},
        },
        "required": ["question"],
        "additionalProperties": False,
        "$defs": {"customer": {"type": "object", "properties": {"name": {"type": "string"}}}},
    })


@pytest.mark.parametrize(
    ("schema", "location", "fragment"),
    [
        ([], "", "must be a JSON object"),
        ("{}", "", "must be a JSON object"),
        ({"type": "array"}, "/type", '"type": "object"'),
        ({"properties": {}}, "/type", '"type": "object"'),
        (obj({"a": {"type": "integr"}}), "/properties/a/type", "is not valid"),
        (obj({"a": {"minLength": -1}}), "/properties/a/minLength", ""),
        (obj(required="a"), "/required", "is not of type 'array'"),
        (obj({"a": {"pattern": "("}}), "/properties/a/pattern", "is not a 'regex'"),
        ({"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"}, "/$schema",
         "Draft 2020-12"),
        ({"$schema": 5, "type": "object"}, "/$schema", "Draft 2020-12"),
        (obj({"a": {"$ref": "https://evil.example/schema.json"}}), "/properties/a/$ref",
         "local JSON pointer"),
        (obj({"a": {"$ref": "other.json#/x"}}), "/properties/a/$ref", "local JSON pointer"),
        (obj({"a": {"$ref": "#/$defs/missing"}}), "/properties/a/$ref", "exists in this schema"),
        (obj({"a": {"$ref": "#anchor"}}), "/properties/a/$ref", "local JSON pointer"),
        (obj({"a": {"$dynamicRef": "#meta"}}), "/properties/a/$dynamicRef", "not supported"),
        (obj({"a": {"$id": "https://example.com/a", "type": "string"}}), "/properties/a/$id",
         "only allowed at the root"),
        (obj({"a": {"type": "string", "format": "credit-card"}}), "/properties/a/format",
         "not supported"),
        (obj({"a": {"type": "string", "pattern": "a" * 1001}}), "/properties/a/pattern",
         "longer than 1000 characters"),
        (obj(patternProperties={"^x": {}}), "/patternProperties", "use propertyNames"),
        (obj({"a": obj(patternProperties={"^x": {}})}), "/properties/a/patternProperties",
         "not supported"),
        (obj({"a": {"type": "array", "uniqueItems": True}}), "/properties/a/uniqueItems",
         "maxItems"),
        (obj({"a": {"type": "array", "uniqueItems": True, "maxItems": 5000}}),
         "/properties/a/uniqueItems", "maxItems"),
        (obj({"a": {"items": {"not": {"format": "nope"}}}}),
         "/properties/a/items/not/format", "not supported"),
        (obj({"a": {"type": "string"}}, **{"$defs": {"x": {"pattern": "a" * 1001}}}),
         "/$defs/x/pattern", "longer than"),
    ],
)
def test_bad_schemas_are_refused_with_a_location(schema, location, fragment):
    with pytest.raises(SchemaError) as caught:
        check_input_schema(schema)
    error = caught.value
    assert error.location == location
    assert fragment in error.message
    assert error.param == "input_schema"
    assert error.code == "invalid_schema"
    assert error.status.http == 400
    if location:
        assert error.message.startswith(f"input_schema at {location}: ")


def test_every_supported_format_is_accepted_and_listed_in_the_error():
    for name in SUPPORTED_FORMATS:
        check_input_schema(obj({"a": {"type": "string", "format": name}}))
    with pytest.raises(SchemaError) as caught:
        check_input_schema(obj({"a": {"format": "uri-reference"}}))
    assert ", ".join(SUPPORTED_FORMATS) in caught.value.message


def test_schema_size_limit(monkeypatch):
    monkeypatch.setattr(schema_module, "MAX_SCHEMA_BYTES", 200)
    check_input_schema(obj({"a": {"description": "x" * 100}}))
    with pytest.raises(SchemaError, match="over the limit of 200"):
        check_input_schema(obj({"a": {"description": "x" * 200}}))


def test_schema_depth_limit():
    node: dict = {"type": "string"}
    for _ in range(31):
        node = obj({"a": node})
    check_input_schema(node)  # 63 levels of JSON
    node = obj({"a": node})
    with pytest.raises(SchemaError, match="nests deeper than 64"):
        check_input_schema(node)


def test_schema_must_be_json():
    with pytest.raises(SchemaError, match="must be JSON"):
        check_input_schema(obj({"a": {"const": {1, 2}}}))


def test_recursive_local_refs_are_fine():
    schema = obj({"tree": {"$ref": "#/$defs/node"}}, **{"$defs": {"node": obj(
        {"value": {"type": "integer"}, "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}
    )}})
    validator = InputSchema(schema)
    validator.validate({"tree": {"value": 1, "children": [{"value": 2, "children": []}]}})
    assert [str(e) for e in validator.errors(
        {"tree": {"value": 1, "children": [{"value": "x"}]}}
    )] == ["input.tree.children[0].value: 'x' is not of type 'integer'"]


def test_a_remote_ref_is_never_fetched(monkeypatch):
    """Even past the publish check, the validator has no way to retrieve documents."""
    import urllib.request

    def refuse(*args, **kwargs):  # pragma: no cover - must never be called
        raise AssertionError("network access")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    validator = jsonschema.Draft202012Validator(
        {"$ref": "https://example.com/x.json"}, registry=schema_module._NO_REMOTE
    )
    with pytest.raises(referencing.exceptions.Unresolvable):
        validator.validate({})


@pytest.mark.parametrize(
    ("schema", "fragment", "location"),
    [
        ({"type": "array"}, "root must", "/type"),
        (obj({"a": {"type": "string"}}, anyOf=[{}]), "root must", "/type"),
        (obj({"a": {"type": "string"}}), "additionalProperties", "/"),
        (obj({"a": {"type": "string"}}, additionalProperties=False), "not required: ['a']",
         "/required"),
        (obj({"a": obj({"b": {"type": "string"}}, required=["b"])}, required=["a"],
             additionalProperties=False), "additionalProperties", "/properties/a"),
        (obj({"a": {"type": "array", "items": obj({"b": {"type": "string"}},
                                                 additionalProperties=False)}},
             required=["a"], additionalProperties=False), "not required", "/properties/a/items/required"),
        (obj({"a": {"type": "strin"}}), "is not valid", "/properties/a/type"),
    ],
)
def test_output_schemas_must_suit_strict_mode(schema, fragment, location):
    with pytest.raises(SchemaError) as caught:
        check_output_schema(schema)
    assert fragment in caught.value.message
    assert caught.value.location == location
    assert caught.value.param == "output_schema"


def test_strict_output_schema_is_accepted():
    check_output_schema(obj(
        {"answer": {"type": "string"},
         "sources": {"type": "array", "items": obj({"url": {"type": "string"}}, required=["url"],
                                                   additionalProperties=False)},
         "mood": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
        required=["answer", "sources", "mood"], additionalProperties=False,
    ))


# --- input validation: errors name the field -----------------------------------------

CUSTOMER = InputSchema(obj(
    {
        "customer": obj({"name": {"type": "integer"}, "email": {"type": "string",
                                                                "format": "email"}},
                        required=["name"], additionalProperties=False),
        "items": {"type": "array", "items": obj({"sku": {"type": "string", "maxLength": 5}}),
                  "maxItems": 3},
        "mode": {"enum": ["fast", "careful"]},
        "odd key": {"type": "boolean"},
        "contact": {"oneOf": [obj({"phone": {"type": "string", "pattern": "^[0-9]+$"}},
                                  required=["phone"]),
                              obj({"email": {"type": "string", "format": "email"}},
                                  required=["email"])]},
        "long": {"type": "string", "maxLength": 3},
    },
    required=["customer"],
))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"customer": {"name": "x"}}, [("input.customer.name", "'x' is not of type 'integer'")]),
        ({}, [("input.customer", "is required")]),
        ({"customer": {}}, [("input.customer.name", "is required")]),
        ({"customer": {"name": 1, "nmae": 2, "zz": 3}},
         [("input.customer.nmae", "is not an allowed property"),
          ("input.customer.zz", "is not an allowed property")]),
        ({"customer": {"name": 1, "email": "nope"}},
         [("input.customer.email", "'nope' is not a valid email")]),
        ({"customer": {"name": 1}, "items": [{"sku": "ok"}, {"sku": "toolong"}]},
         [("input.items[1].sku", "'toolong' is too long")]),
        ({"customer": {"name": 1}, "items": [{}, {}, {}, {}]},
         [("input.items", "is too long")]),
        ({"customer": {"name": 1}, "mode": "slow"},
         [("input.mode", "'slow' is not one of ['fast', 'careful']")]),
        ({"customer": {"name": 1}, "odd key": "yes"},
         [('input["odd key"]', "'yes' is not of type 'boolean'")]),
        ({"customer": {"name": 1.5}}, [("input.customer.name", "1.5 is not of type 'integer'")]),
        ({"customer": {"name": True}}, [("input.customer.name", "True is not of type 'integer'")]),
    ],
)
def test_field_errors(value, expected):
    errors = CUSTOMER.errors(value)
    assert len(errors) == len(expected), errors
    for error, (path, message) in zip(errors, expected, strict=True):
        assert error.path == path
        assert message in error.message


def test_input_error_is_a_400_with_param_the_first_path():
    with pytest.raises(InputError) as caught:
        CUSTOMER.validate({"customer": {"name": "x"}, "mode": "slow"})
    error = caught.value
    assert error.message == "input.customer.name: 'x' is not of type 'integer' (and 1 more)"
    assert error.param == "input.customer.name"
    assert error.code == "invalid_input"
    assert error.status.http == 400
    assert error.errors == (
        FieldError("input.customer.name", "'x' is not of type 'integer'"),
        FieldError("input.mode", "'slow' is not one of ['fast', 'careful']"),
    )


def test_errors_under_one_of_name_the_deepest_field():
    errors = CUSTOMER.errors({"customer": {"name": 1}, "contact": {"phone": "12a"}})
    assert errors[0].path == "input.contact.phone"
    assert "does not match" in errors[0].message


def test_long_values_are_shortened_in_messages():
    errors = CUSTOMER.errors({"customer": {"name": 1}, "long": "x" * 100_000})
    assert errors[0].path == "input.long"
    assert errors[0].message.endswith("…' is too long")
    assert len(errors[0].message) < 100


def test_error_count_is_bounded():
    schema = InputSchema(obj({"xs": {"type": "array", "items": {"type": "string"}}}))
    errors = schema.errors({"xs": list(range(1000))})
    assert len(errors) == schema_module.MAX_FIELD_ERRORS
    assert errors[0] == FieldError("input.xs[0]", "0 is not of type 'string'")


def test_valid_input_passes():
    CUSTOMER.validate({"customer": {"name": 1, "email": "a@b.c"}, "items": [{"sku": "a"}],
                       "mode": "fast", "odd key": True, "contact": {"email": "x@y.z"}})


@pytest.mark.parametrize(
    ("fmt", "good", "bad"),
    [
        ("date", ["2024-02-29"], ["2023-02-29", "2024-2-1", "24-01-01", "2024-01-01T00:00:00Z"]),
        ("date-time", ["2024-01-31T23:59:59Z", "2024-01-31t10:00:00.123+02:00"],
         ["2024-01-31", "2024-01-31T24:00:00Z", "2024-01-31T10:00:00", "2024-13-01T00:00:00Z"]),
        ("time", ["10:20:30Z", "23:59:60+01:00"], ["10:20", "25:00:00Z", "10:20:30"]),
        ("email", ["a@b", "first.last@example.com"], ["no-at", "a@b@c", "a b@c"]),
        ("hostname", ["example.com", "a-b.c", "localhost"], ["-a.com", "a..b", "a_b.com",
                                                            "x" * 64 + ".com"]),
        ("ipv4", ["192.168.0.1"], ["256.0.0.1", "1.2.3", "01.2.3.4"]),
        ("ipv6", ["::1", "2001:db8::8a2e:370:7334"], ["::g", "1.2.3.4"]),
        ("uri", ["https://example.com/x?y=1", "urn:isbn:123"], ["example.com", "http://a b"]),
        ("uuid", ["123e4567-e89b-12d3-a456-426614174000"], ["123e4567e89b12d3a456426614174000"]),
    ],
)
def test_formats_are_asserted(fmt, good, bad):
    schema = InputSchema(obj({"v": {"type": "string", "format": fmt}}))
    for value in good:
        assert schema.errors({"v": value}) == [], value
    for value in bad:
        errors = schema.errors({"v": value})
        assert errors and errors[0].path == "input.v" and f"is not a valid {fmt}" in \
            errors[0].message, value


def test_formats_constrain_strings_only():
    InputSchema(obj({"v": {"format": "email"}})).validate({"v": 5})


# --- input bounds --------------------------------------------------------------------

def test_input_must_be_an_object():
    for value in ([], "x", None, 1):
        with pytest.raises(InputError) as caught:
            CUSTOMER.validate(value)
        assert caught.value.param == "input"


def test_input_depth_limit():
    schema = InputSchema(obj())
    deep: dict = {}
    node = deep
    for _ in range(schema_module.MAX_INPUT_DEPTH - 1):
        node["a"] = {}
        node = node["a"]
    schema.validate(deep)
    node["a"] = {}
    with pytest.raises(InputError, match="nests deeper than 32") as caught:
        schema.validate(deep)
    assert caught.value.param.startswith("input.a.a.a")


def test_input_size_limit_is_a_413():
    schema = InputSchema(obj())
    schema.validate({"a": "x" * (1024 * 1024 - 20)})
    with pytest.raises(InputTooLarge) as caught:
        schema.validate({"a": "x" * (1024 * 1024)})
    assert caught.value.status.http == 413
    assert caught.value.param == "input"
    with pytest.raises(InputTooLarge):
        schema.validate({"a": ["é" * 1000] * 600})


def test_input_node_limit():
    schema = InputSchema(obj())
    with pytest.raises(InputTooLarge, match="more than 100000 values"):
        schema.validate({"a": [None] * 100_001})


@pytest.mark.parametrize(
    ("value", "path", "fragment"),
    [
        ({"a": float("nan")}, "input.a", "finite"),
        ({"a": [1, float("inf")]}, "input.a[1]", "finite"),
        ({"a": {1: "x"}}, "input.a", "keys must be strings"),
        ({"a": (1, 2)}, "input.a", "not a JSON value"),
        ({"a": b"bytes"}, "input.a", "not a JSON value"),
    ],
)
def test_only_json_values_are_accepted(value, path, fragment):
    with pytest.raises(InputError) as caught:
        InputSchema(obj()).validate(value)
    assert caught.value.param == path
    assert fragment in caught.value.message


def test_unique_items_on_a_bounded_array_is_fast():
    schema = InputSchema(obj({"xs": {"type": "array", "uniqueItems": True, "maxItems": 1000}}))
    started = time.perf_counter()
    errors = schema.errors({"xs": [{"k": i % 7} for i in range(20_000)]})
    assert time.perf_counter() - started < 5
    assert errors[0].path == "input.xs"


@pytest.mark.parametrize(
    ("pattern", "subject"),
    [
        ("^(a|aa)+$", "a" * 5000 + "!"),
        ("^(a+)+b$", "a" * 5000),
        (r"\d+\d+\d+x", "1" * 5000),
        (r"(\w|\d)+$", "1" * 5000 + "!"),
        (".*a.*b.*c", "a" * 5000 + "b" * 5000),
        ("(.*,){20}x", "a," * 3000),
    ],
)
def test_catastrophic_patterns_cost_bounded_time(pattern, subject):
    schema = InputSchema(obj({"s": {"type": "string", "pattern": pattern},
                              "t": {"type": "string", "pattern": pattern}}))
    started = time.perf_counter()
    errors = schema.errors({"s": subject, "t": subject})
    elapsed = time.perf_counter() - started
    # Unbounded, these take minutes; the slack absorbs a busy machine.
    assert elapsed < schema_module.MAX_PATTERN_SECONDS + 2.0
    assert [e.path for e in errors] == ["input.s", "input.t"]
    assert all(e.message.endswith(f"could not be checked against {pattern!r} in time")
               or "does not match" in e.message for e in errors)


def test_the_pattern_budget_is_per_validation():
    schema = InputSchema(obj({"s": {"type": "string", "pattern": "^(a|aa)+$"}}))
    for _ in range(2):
        errors = schema.errors({"s": "a" * 5000 + "!"})
        assert errors[0].path == "input.s"
    assert schema.errors({"s": "aaaa"}) == []  # a later validation has a fresh budget


def test_patterns_match_as_search_and_report_the_field():
    schema = InputSchema(obj({"code": {"type": "string", "pattern": "[0-9]{3}"},
                              "slug": {"type": "string", "pattern": "^[a-z0-9]+(-[a-z0-9]+)*$"},
                              "names": obj(propertyNames={"pattern": "^[a-z]+$"})}))
    assert schema.errors({"code": "ab123cd", "slug": "my-api-2", "names": {"ok": 1}}) == []
    assert [str(e) for e in schema.errors({"code": "12", "slug": "-x",
                                           "names": {"Bad": 1}})] == [
        "input.code: '12' does not match '[0-9]{3}'",
        "input.slug: '-x' does not match '^[a-z0-9]+(-[a-z0-9]+)*$'",
        "input.names: 'Bad' does not match '^[a-z]+$'",
    ]


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ([], "input"),
        (["a", "b_c"], "input.a.b_c"),
        (["items", 0, "name"], "input.items[0].name"),
        (["a b", "c.d", "1x", "é"], 'input["a b"]["c.d"]["1x"]["é"]'),
        (['q"uote'], 'input["q\\"uote"]'),
    ],
)
def test_format_path(parts, expected):
    assert format_path(parts) == expected


# --- breaking changes: every rule ----------------------------------------------------

BASE = obj(
    {
        "name": {"type": ["string", "null"], "minLength": 1, "maxLength": 50,
                 "description": "who"},
        "age": {"type": "number", "minimum": 0, "maximum": 150},
        "score": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 10,
                  "multipleOf": 2},
        "mode": {"enum": ["fast", "careful", "thorough"]},
        "kind": {"const": "ticket"},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 20},
                 "minItems": 0, "maxItems": 10},
        "pair": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]},
        "meta": obj({"source": {"type": "string"}}, additionalProperties=True),
        "address": obj({"city": {"type": "string"}, "zip": {"type": "string",
                                                            "pattern": "^[0-9]+$"}},
                       required=["city"], additionalProperties=False),
        "labels": obj(additionalProperties={"type": "string"}, maxProperties=5),
    },
    required=["name"],
    additionalProperties=False,
)


def mutate(path: str, **changes) -> dict:
    """BASE with the changes applied at a dotted path of property names ("" = root);
    a value of ... deletes the keyword."""
    new = copy.deepcopy(BASE)
    node = new
    for name in filter(None, path.split(".")):
        node = node["properties"][name]
    for key, value in changes.items():
        key = key.rstrip("_")
        if value is ...:
            node.pop(key, None)
        else:
            node[key] = value
    return new


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        # required
        (mutate("", required=["name", "age"]), "input.age: newly required"),
        (mutate("address", required=["city", "zip"]), "input.address.zip: newly required"),
        # properties removed under additionalProperties false
        (mutate("", properties={k: v for k, v in BASE["properties"].items() if k != "age"}),
         "input.age: removed (additionalProperties is false)"),
        (mutate("address", properties={"city": {"type": "string"}}),
         "input.address.zip: removed"),
        # type narrowed
        (mutate("name", type="string"), 'input.name: type narrowed from ["string", "null"] to '
                                        '"string"'),
        (mutate("age", type="integer"), 'input.age: type narrowed from "number" to "integer"'),
        (mutate("mode", type="integer"), "input.mode: type narrowed"),
        (mutate("meta", type="string"), "input.meta: type narrowed"),
        # enum / const
        (mutate("mode", enum=["fast", "careful"]), 'input.mode: enum values removed: "thorough"'),
        (mutate("kind", const="issue"), 'input.kind: enum values removed: "ticket"'),
        (mutate("name", enum=["a", "b"]), "input.name: enum added"),
        (mutate("age", const=3), "input.age: const added"),
        # numeric bounds
        (mutate("age", minimum=1), "input.age: minimum raised to >= 1"),
        (mutate("age", minimum=..., exclusiveMinimum=0), "input.age: minimum raised to > 0"),
        (mutate("age", maximum=100), "input.age: maximum lowered to <= 100"),
        (mutate("age", maximum=..., exclusiveMaximum=150), "input.age: maximum lowered to < 150"),
        (mutate("score", exclusiveMinimum=1), "input.score: minimum raised"),
        (mutate("score", exclusiveMaximum=..., maximum=9), "input.score: maximum lowered"),
        (mutate("score", multipleOf=4), "input.score: multipleOf changed from 2 to 4"),
        (mutate("age", multipleOf=0.5), "input.age: multipleOf 0.5 added"),
        # string bounds
        (mutate("name", minLength=2), "input.name: minLength raised from 1 to 2"),
        (mutate("name", maxLength=49), "input.name: maxLength lowered from 50 to 49"),
        (mutate("address.city", maxLength=10), "input.address.city: maxLength lowered from none"),
        (mutate("address.zip", pattern="^[0-9]{5}$"), "input.address.zip: pattern changed"),
        (mutate("address.city", pattern="^[A-Z]"), "input.address.city: pattern added"),
        (mutate("address.city", format="email"), "input.address.city: format added"),
        # arrays
        (mutate("tags", minItems=1), "input.tags: minItems raised from 0 to 1"),
        (mutate("tags", maxItems=5), "input.tags: maxItems lowered from 10 to 5"),
        (mutate("tags", uniqueItems=True), "input.tags: uniqueItems added"),
        (mutate("tags", items={"type": "string", "maxLength": 10}),
         "input.tags[]: maxLength lowered from 20 to 10"),
        (mutate("tags", items={"type": "integer"}), "input.tags[]: type narrowed"),
        (mutate("pair", prefixItems=[{"type": "string", "minLength": 1}, {"type": "integer"}]),
         "input.pair[0]: minLength raised"),
        (mutate("pair", prefixItems=[{"type": "string"}, {"type": "integer"},
                                     {"type": "string"}]),
         "input.pair[2]: type narrowed"),
        (mutate("pair", items=False), "input.pair[]: no longer accepted"),
        (mutate("tags", contains={"const": "x"}), "input.tags: contains added"),
        # objects
        (mutate("meta", additionalProperties=False),
         "input.meta: additionalProperties changed to false"),
        (mutate("meta", properties={"source": {"type": "string"}, "extra": {"type": "integer"}}),
         "input.meta.extra: was allowed as an additional property and is now constrained"),
        (mutate("labels", additionalProperties={"type": "string", "maxLength": 3}),
         "input.labels.<additionalProperties>: maxLength lowered"),
        (mutate("labels", maxProperties=4), "input.labels: maxProperties lowered from 5 to 4"),
        (mutate("labels", minProperties=1), "input.labels: minProperties raised from 0 to 1"),
        (mutate("labels", propertyNames={"maxLength": 5}),
         "input.labels.<propertyNames>: maxLength lowered"),
        (mutate("labels", dependentRequired={"a": ["b"]}), "input.labels.a: now requires ['b']"),
        (mutate("labels", patternProperties={"^x": {"type": "string"}}),
         "input.labels: patternProperties changed"),  # refused at publish, still compared
        # nested recursion through objects and arrays
        (mutate("tags", items={"type": "array", "items": {"type": "string"}}),
         "input.tags[]: type narrowed"),
        (mutate("address", properties={"city": {"type": "string"}, "zip": {"type": "integer"}}),
         'input.address.zip: type narrowed from "string" to "integer"'),
        # unprovable
        (mutate("age", anyOf=[{"type": "integer"}, {"type": "number"}]),
         "input.age: anyOf added: cannot prove compatibility"),
        (mutate("age", oneOf=[{"minimum": 0}]), "input.age: oneOf added"),
        (mutate("age", allOf=[{"minimum": 0}]), "input.age: allOf added"),
        (mutate("age", not_={"const": 3}), "input.age: not added"),
        (mutate("age", if_={"minimum": 1}, then={"maximum": 2}), "input.age: if added"),
        (mutate("age", **{"$ref": "#/properties/score"}), "input.age: $ref added"),
        (mutate("labels", unevaluatedProperties=False), "input.labels: unevaluatedProperties added"),
        (mutate("tags", unevaluatedItems=False), "input.tags: unevaluatedItems added"),
        (mutate("labels", dependentSchemas={"a": {"required": ["b"]}}),
         "input.labels: dependentSchemas added"),
        # the whole schema
        (False, "input: the schema no longer accepts any input"),
        (mutate("", type="array"), "input: type narrowed"),
    ],
)
def test_breaking_rules(new, expected):
    reasons = breaking_changes(BASE, new)
    assert any(r.startswith(expected) for r in reasons), reasons


@pytest.mark.parametrize(
    "new",
    [
        BASE,
        copy.deepcopy(BASE),
        mutate("name", description="changed", title="Name", examples=["x"], default="y"),
        mutate("", required=[]),
        mutate("address", required=[]),
        mutate("name", type=["string", "null", "integer"]),
        mutate("name", type=...),
        mutate("age", type=["number", "string"]),
        mutate("score", type="number"),
        mutate("mode", enum=["fast", "careful", "thorough", "new"]),
        mutate("mode", enum=...),
        mutate("kind", const=..., enum=["ticket", "issue"]),
        mutate("age", minimum=-1, maximum=200),
        mutate("age", minimum=..., maximum=...),
        mutate("score", exclusiveMinimum=-5, exclusiveMaximum=11),
        mutate("score", multipleOf=1),
        mutate("score", multipleOf=...),
        mutate("name", minLength=0, maxLength=100),
        mutate("address.zip", pattern=...),
        mutate("tags", maxItems=11, items={"type": ["string", "null"]}),
        mutate("tags", items=...),
        mutate("pair", prefixItems=[{"type": "string"}]),
        mutate("meta", properties={}),
        mutate("", additionalProperties=True),
        mutate("", properties=dict(BASE["properties"], new={"type": "string"})),
        mutate("address", additionalProperties=...),
        mutate("labels", additionalProperties=True, maxProperties=...),
        # type-specific keywords on types the old schema never accepted
        mutate("age", minLength=5, maxItems=0, pattern="x", required=["q"]),
        mutate("mode", minimum=0),  # the enum holds strings only
    ],
)
def test_compatible_changes(new):
    assert breaking_changes(BASE, new) == []


def test_contains_rules():
    old = {"type": "array", "contains": {"type": "string"}, "minContains": 1, "maxContains": 2}
    assert breaking_changes(old, dict(old, contains={"type": ["string", "null"]})) == [
        "input: contains changed while maxContains is set: cannot prove compatibility"]
    assert breaking_changes(old, dict(old, minContains=2)) == [
        "input: minContains raised from 1 to 2"]
    assert breaking_changes(old, dict(old, maxContains=1)) == [
        "input: maxContains lowered from 2 to 1"]
    assert breaking_changes(dict(old, minContains=0), old) == [
        "input: minContains raised from 0 to 1"]
    wider = {"type": "array", "contains": {"type": ["string", "null"]}}
    assert breaking_changes({"type": "array", "contains": {"type": "string"}}, wider) == []
    assert breaking_changes(wider, {"type": "array", "contains": {"type": "string"}}) == [
        'input.<contains>: type narrowed from ["string", "null"] to "string"',
        "input: contains changed",
    ]
    assert breaking_changes({"type": "array"}, {"type": "array", "contains": {},
                                                "minContains": 0}) == []


def test_removing_unprovable_keywords_is_compatible():
    old = obj({"a": {"anyOf": [{"type": "string"}, {"type": "integer"}], "not": {"const": 1}}})
    assert breaking_changes(old, obj({"a": {}})) == []
    assert breaking_changes(old, old) == []


def test_identical_refs_need_identical_defs():
    old = obj({"a": {"$ref": "#/$defs/x"}}, **{"$defs": {"x": {"type": "string"}}})
    assert breaking_changes(old, copy.deepcopy(old)) == []
    new = obj({"a": {"$ref": "#/$defs/x"}}, **{"$defs": {"x": {"type": "integer"}}})
    reasons = breaking_changes(old, new)
    assert reasons and "$defs differ" in reasons[0]
    widened = obj({"a": {"$ref": "#/$defs/x"}, "b": {}}, **{"$defs": {"x": {"type": "string"}}})
    assert breaking_changes(old, widened) == []


def test_adding_an_optional_property_breaks_only_when_extra_properties_were_free():
    closed = obj({"a": {"type": "string"}}, additionalProperties=False)
    assert breaking_changes(closed, obj({"a": {"type": "string"}, "b": {"type": "string"}},
                                        additionalProperties=False)) == []
    open_ = obj({"a": {"type": "string"}})
    reasons = breaking_changes(open_, obj({"a": {"type": "string"}, "b": {"type": "string"}}))
    assert reasons == ['input.b: was allowed as an additional property and is now constrained '
                       '(type narrowed from any type to "string")']
    assert breaking_changes(open_, obj({"a": {"type": "string"}, "b": {}})) == []


def test_pattern_properties_over_approximate_the_old_schema():
    old = obj(patternProperties={"^x": {}}, additionalProperties=False)
    new = obj({"xa": {"type": "string"}}, patternProperties={"^x": {}}, additionalProperties=False)
    assert breaking_changes(old, new) == [
        'input.xa: was allowed as an additional property and is now constrained (type narrowed '
        'from any type to "string")'
    ]


def test_bounds_added_where_there_were_none():
    assert breaking_changes({"type": "number"}, {"type": "number", "minimum": 0}) == [
        "input: minimum added: >= 0"]
    assert breaking_changes({}, {"exclusiveMaximum": 1}) == ["input: maximum added: < 1"]
    assert breaking_changes({"type": "string"}, {"minLength": 1}) == [
        "input: minLength raised from 0 to 1"]
    # Keywords of types the old schema never accepted do not matter.
    assert breaking_changes({"type": "string"}, {"type": ["string", "integer"], "minimum": 0}) \
        == []


def test_enum_values_and_integer_floats_compare_as_json():
    assert breaking_changes({"enum": [1, "a"]}, {"enum": [1.0, "a"]}) == []
    assert breaking_changes({"enum": [True]}, {"enum": [1]}) == ["input: enum values removed: true"]
    assert breaking_changes({"enum": [1, 2]}, {"type": "integer"}) == []
    assert breaking_changes({"enum": [1, 2.5]}, {"type": "integer"})


def test_boolean_schemas():
    assert breaking_changes(True, {}) == []
    assert breaking_changes({}, True) == []
    assert breaking_changes(False, {"type": "string"}) == []
    assert breaking_changes(True, {"type": "string"}) == ['input: type narrowed from any type '
                                                          'to "string"']
    assert breaking_changes({"not": {}}, {"type": "string"}) == []


def test_reasons_are_unique_and_bounded():
    old = obj({f"p{i}": {"type": "string"} for i in range(300)})
    new = obj({f"p{i}": {"type": "integer"} for i in range(300)})
    reasons = breaking_changes(old, new)
    assert len(reasons) == 100 and len(set(reasons)) == 100


# --- versions ------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "version"),
    [("v1", Version(1, 0)), ("v0", Version(0, 0)), ("v2.3", Version(2, 3)),
     ("v1.0", Version(1, 0)), ("v10.20", Version(10, 20))],
)
def test_parse_version(text, version):
    assert parse_version(text) == version


@pytest.mark.parametrize(
    "text", ["1", "V1", "v", "v01", "v1.01", "v1.2.3", "v-1", "v1.", " v1", "v1\n", "va",
             "v1234567", None, 1],
)
def test_bad_versions(text):
    with pytest.raises(VersionError) as caught:
        parse_version(text)
    assert caught.value.param == "version"


def test_version_order_and_text():
    assert parse_version("v1.10") > parse_version("v1.9") > parse_version("v1")
    assert str(parse_version("v1.0")) == "v1" and str(parse_version("v1.2")) == "v1.2"


@pytest.mark.parametrize(
    ("old", "new", "major"),
    [("v1", "v2", True), ("v1.3", "v2", True), ("v1", "v3.1", True), ("v1", "v1.1", False),
     ("v1.1", "v1.2", False), ("v2", "v1", False), ("v2", "v2", False), ("v0.9", "v1", True)],
)
def test_is_major_bump(old, new, major):
    assert is_major_bump(old, new) is major


def test_check_version_bump():
    old = obj({"a": {"type": "string"}}, additionalProperties=False)
    wider = obj({"a": {"type": ["string", "null"]}}, additionalProperties=False)
    narrower = obj({"a": {"type": "string"}}, required=["a"], additionalProperties=False)
    assert check_version_bump("v1", old, "v1.1", wider) == []
    assert check_version_bump("v1", old, "v2", narrower) == ["input.a: newly required"]
    with pytest.raises(BreakingChangeError) as caught:
        check_version_bump("v1.1", old, "v1.2", narrower)
    error = caught.value
    assert error.message == ("the input schema of v1.2 breaks v1.1, so it must be v2: "
                             "input.a: newly required")
    assert error.reasons == ["input.a: newly required"]
    assert error.code == "breaking_change" and error.param == "input_schema"
    with pytest.raises(VersionError, match="must be higher"):
        check_version_bump("v2", old, "v1.5", old)
    with pytest.raises(VersionError):
        check_version_bump("v1", old, "v1.0", old)


# --- breaking changes: property-based soundness ---------------------------------------

KEYS = ["a", "b", "c"]
SCALAR_TYPES = ["string", "integer", "number", "boolean", "null"]
SMALL_VALUES = st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from([0.5, -1.5, 2.0]) \
    | st.text(alphabet="ab", max_size=3)
INSTANCES = st.recursive(
    SMALL_VALUES,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(KEYS + ["d"]), inner, max_size=3),
    max_leaves=8,
)
TYPE = st.sampled_from(SCALAR_TYPES) | st.lists(st.sampled_from(SCALAR_TYPES), min_size=1,
                                                max_size=3, unique=True)
SCALAR_SCHEMAS = st.fixed_dictionaries({}, optional={
    "type": TYPE,
    "minimum": st.integers(-2, 2),
    "maximum": st.integers(-2, 2),
    "exclusiveMinimum": st.integers(-2, 2),
    "exclusiveMaximum": st.integers(-2, 2),
    "multipleOf": st.sampled_from([1, 2, 0.5]),
    "minLength": st.integers(0, 3),
    "maxLength": st.integers(0, 3),
    "pattern": st.sampled_from(["^a", "b$"]),
    "enum": st.lists(SMALL_VALUES, min_size=1, max_size=4),
    "const": SMALL_VALUES,
})


def _containers(inner):
    objects = st.fixed_dictionaries(
        {"type": st.just("object")},
        optional={
            "properties": st.dictionaries(st.sampled_from(KEYS), inner, max_size=3),
            "required": st.lists(st.sampled_from(KEYS), max_size=3, unique=True),
            "additionalProperties": st.booleans() | inner,
            "minProperties": st.integers(0, 2),
            "maxProperties": st.integers(0, 3),
            "propertyNames": st.fixed_dictionaries({}, optional={
                "maxLength": st.integers(0, 1),
                "enum": st.lists(st.sampled_from(KEYS), max_size=3),
            }),
            "dependentRequired": st.dictionaries(
                st.sampled_from(KEYS), st.lists(st.sampled_from(KEYS), max_size=2, unique=True),
                max_size=2,
            ),
            "patternProperties": st.sampled_from([{"^a": {"type": "string"}}, {"b": {}}]),
        },
    )
    arrays = st.fixed_dictionaries(
        {"type": st.just("array")},
        optional={
            "items": inner,
            "prefixItems": st.lists(inner, max_size=2),
            "minItems": st.integers(0, 2),
            "maxItems": st.integers(0, 3),
            "uniqueItems": st.booleans(),
            "contains": inner,
            "minContains": st.integers(0, 2),
            "maxContains": st.integers(0, 2),
        },
    )
    combined = st.fixed_dictionaries({}, optional={
        "anyOf": st.lists(inner, min_size=1, max_size=2),
        "not": inner,
        "type": TYPE,
    })
    return objects | arrays | combined | st.booleans()


SCHEMAS = st.recursive(SCALAR_SCHEMAS, _containers, max_leaves=6)


def _relax(schema, draw_choice):
    """A copy of ``schema`` with some keywords dropped or widened (often compatible)."""
    if not isinstance(schema, dict):
        return True if draw_choice() else schema
    out = {}
    for key, value in schema.items():
        choice = draw_choice()
        if choice == 0 and key != "type":
            continue  # dropped
        if key in ("properties", "patternProperties"):
            out[key] = {k: _relax(v, draw_choice) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "contains", "propertyNames") and \
                isinstance(value, dict | bool):
            out[key] = _relax(value, draw_choice)
        elif key == "prefixItems":
            out[key] = [_relax(v, draw_choice) for v in value]
        elif key == "type" and choice == 1:
            types = [value] if isinstance(value, str) else list(value)
            out[key] = list(dict.fromkeys(types + ["null", "number"]))
        elif key == "enum" and choice == 1:
            out[key] = value + ["b"]
        elif key in ("maximum", "maxLength", "maxItems", "maxProperties", "maxContains") \
                and choice == 1:
            out[key] = value + 1
        elif key == "required" and choice == 1:
            out[key] = value[1:]
        else:
            out[key] = value
    return out


@st.composite
def schema_pairs(draw):
    old = draw(SCHEMAS)
    how = draw(st.sampled_from(["relaxed", "relaxed", "independent", "same"]))
    if how == "same":
        return old, copy.deepcopy(old)
    if how == "independent":
        return old, draw(SCHEMAS)
    return old, _relax(old, lambda: draw(st.integers(0, 3)))


def test_compatible_means_every_old_input_stays_valid():
    stats: Counter = Counter()

    @settings(max_examples=600, deadline=None)
    @given(schema_pairs(), st.lists(INSTANCES, min_size=1, max_size=12))
    def check(pair, instances):
        old, new = pair
        if breaking_changes(old, new):
            stats["breaking"] += 1
            return
        stats["compatible"] += 1
        old_validator = jsonschema.Draft202012Validator(old)
        new_validator = jsonschema.Draft202012Validator(new)
        for instance in instances:
            if old_validator.is_valid(instance):
                stats["valid under old"] += 1
                assert new_validator.is_valid(instance), (old, new, instance)

    check()
    # The property is only meaningful if it was exercised.
    assert stats["compatible"] > 150, stats
    assert stats["breaking"] > 50, stats
    assert stats["valid under old"] > 200, stats


@settings(max_examples=200, deadline=None)
@given(SCHEMAS)
def test_a_schema_never_breaks_itself(schema):
    assert breaking_changes(schema, copy.deepcopy(schema)) == []


@settings(max_examples=200, deadline=None)
@given(SCHEMAS, st.lists(INSTANCES, min_size=1, max_size=8))
def test_replacing_by_false_breaks_unless_nothing_was_accepted(schema, instances):
    validator = jsonschema.Draft202012Validator(schema)
    reasons = breaking_changes(schema, False)
    if any(validator.is_valid(i) for i in instances):
        assert reasons
