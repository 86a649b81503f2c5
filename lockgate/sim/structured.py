"""Structured outputs: ``response_format`` on the simulator's chat completions.

``{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}``
    The reply is a compact JSON document valid against ``schema`` (as OpenAI's
    strict structured outputs guarantee), built by :func:`document`.
``{"type": "json_object"}`` (and ``json_schema`` without a ``schema``)
    ``{"text": <the reply words>}``.
``{"type": "text"}``
    The plain reply.

The document is deterministic: a function of the schema, the conversation's
:func:`~lockgate.sim.replies.messages_key` and the choice index (``n``), drawn
from a BLAKE2 byte stream seeded by them. Same request, same document, streamed
or not. How each schema is answered:

* ``$ref`` (a local JSON pointer such as ``#/$defs/node`` or ``#``, or an
  ``$anchor``) is followed, its sibling keywords applied on top; ``allOf`` is
  merged; ``anyOf`` / ``oneOf`` take their first branch.
* ``const``, then ``enum`` (a value drawn among those fitting ``type``).
* ``type``: the first non-null type of a list; ``["T", "null"]`` and
  ``nullable: true`` (Gemini) are nullable; no ``type``: inferred from the
  keywords (``properties`` -> object, ``items`` -> array…), else a string.
  Gemini's upper-case types and string-valued integers are read too.
* object: every property when ``strict`` (else the ``required`` ones, all of
  them when none are marked), in schema order; required names without a
  property schema follow ``additionalProperties``; ``minProperties`` /
  ``maxProperties`` are met with optional or extra properties.
* array: 1-3 items (``prefixItems`` / ``items``) within ``minItems`` /
  ``maxItems``; ``uniqueItems`` is honoured as far as fresh draws allow.
* string: 1-3 words of the reply vocabulary (:data:`replies.VOCABULARY`),
  padded to ``minLength``, cut to ``maxLength``; a ``format`` (date-time,
  date, time, duration, email, hostname, ipv4, ipv6, uuid, uri…) gives a
  well-formed value; a ``pattern`` a string matching it when
  :mod:`lockgate.sim.regex_strings` can build one.
* integer / number: within ``minimum`` / ``maximum`` / ``exclusiveMinimum`` /
  ``exclusiveMaximum`` (draft 4 booleans too) and a multiple of
  ``multipleOf``; unbounded ones in 0..100. boolean: drawn. null: null.

Recursion is bounded: from :data:`MAX_DEPTH` levels deep (or after
:data:`SOFT_NODES` values) the smallest valid value is built instead (a null
branch or type when there is one, ``minItems`` items, required properties
only), so a recursive schema with a way out (``anyOf`` with null, an optional
or empty-able array) ends. A schema that cannot end (deeper than
:data:`HARD_DEPTH`), needs more than :data:`MAX_NODES` values or
:data:`MAX_CHARS` characters, or has a ``$ref`` that does not resolve, is a 400
``Invalid schema for response_format '<name>': …`` (param ``response_format``).

Not honoured (the document may then fail validation): ``not``,
``if``/``then``/``else``, ``contains``, ``dependentRequired`` /
``dependentSchemas``, ``patternProperties`` beyond choosing a subschema, and
patterns the regex walk cannot satisfy.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from fractions import Fraction
from typing import Any
from urllib.parse import unquote

import orjson

from lockgate.sim import replies
from lockgate.sim.regex_strings import matching
from lockgate.sim.schema_numbers import bounds, multiple_ok, step_of, window

#: From this nesting depth on, the smallest valid value is built.
MAX_DEPTH = 10
#: Deeper than this the schema has no way out: a 400.
HARD_DEPTH = 64
#: After this many values, the smallest valid value is built.
SOFT_NODES = 2_000
#: More values than this in one document: a 400.
MAX_NODES = 100_000
#: More string characters than this in one document: a 400.
MAX_CHARS = 1_000_000
#: References followed in a row without building a value (a `$ref` cycle).
_MAX_HOPS = 64

_VOCABULARY = replies.VOCABULARY
#: Types preferred for the smallest value, cheapest first.
_SMALL_ORDER = ("null", "boolean", "integer", "number", "string", "array", "object")
_OBJECT_KEYS = ("properties", "required", "additionalProperties", "minProperties",
                "maxProperties", "patternProperties")
_ARRAY_KEYS = ("items", "prefixItems", "minItems", "maxItems", "uniqueItems")
_STRING_KEYS = ("minLength", "maxLength", "pattern", "format")
_NUMBER_KEYS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")


class SchemaProblem(Exception):
    """A schema the simulator cannot answer (a 400 for the request)."""


# -- documents ----------------------------------------------------------------


def dumps(value: Any) -> str:
    """Compact JSON, as OpenAI sends structured outputs."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # an integer beyond 64 bits
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def document(schema: Any, key: bytes, choice: int = 0, *, strict: bool = True) -> Any:
    """The value of one choice for ``schema`` (see the module docstring); raises
    :class:`SchemaProblem` for a schema that cannot be answered."""
    seed = hashlib.blake2b(key + b"\x00json" + choice.to_bytes(4, "little")).digest()
    return _Builder(schema, _Draws(seed), strict).value(schema, 0)


def structured_text(schema: Any, messages: Any, choice: int = 0, *, strict: bool = True) -> str:
    """The JSON text the simulator answers to ``messages`` with this schema."""
    return dumps(document(schema, replies.messages_key(messages), choice, strict=strict))


class _Draws:
    """A deterministic stream of choices: BLAKE2b of the seed and a block counter."""

    __slots__ = ("seed", "block", "buffer", "pos")

    def __init__(self, seed: bytes):
        self.seed = seed
        self.block = 0
        self.buffer = b""
        self.pos = 0

    def below(self, n: int) -> int:
        """A number in ``range(n)`` (0 when ``n`` <= 1)."""
        if n <= 1:
            return 0
        if self.pos + 8 > len(self.buffer):
            self.buffer = hashlib.blake2b(self.seed + self.block.to_bytes(8, "little")).digest()
            self.block += 1
            self.pos = 0
        raw = int.from_bytes(self.buffer[self.pos : self.pos + 8], "little")
        self.pos += 8
        return raw % n

    def word(self) -> str:
        return _VOCABULARY[self.below(len(_VOCABULARY))]


def _count(value: Any) -> int | None:
    """A count keyword's value (Gemini sends int64 fields as strings)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _types(schema: dict[str, Any]) -> list[str]:
    """The schema's types, lower case; inferred from its keywords when unset."""
    kind = schema.get("type")
    if isinstance(kind, str):
        types = [kind.lower()]
    elif isinstance(kind, list):
        types = [k.lower() for k in kind if isinstance(k, str)]
    else:
        types = []
    types = [t for t in types if t != "type_unspecified"]
    if not types:
        if any(k in schema for k in _OBJECT_KEYS):
            types = ["object"]
        elif any(k in schema for k in _ARRAY_KEYS):
            types = ["array"]
        elif any(k in schema for k in _STRING_KEYS):
            types = ["string"]
        elif any(k in schema for k in _NUMBER_KEYS):
            types = ["number"]
    if schema.get("nullable") is True and "null" not in types:
        types.append("null")
    return types


def _fits(value: Any, types: list[str]) -> bool:
    """Whether a value (of an enum) has one of the types (any when none)."""
    if not types:
        return True
    for t in types:
        if (
            (t == "null" and value is None)
            or (t == "boolean" and isinstance(value, bool))
            or (t == "string" and isinstance(value, str))
            or (t == "object" and isinstance(value, dict))
            or (t == "array" and isinstance(value, list))
        ):
            return True
        if isinstance(value, bool):
            continue
        if t == "integer" and (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        ):
            return True
        if t == "number" and isinstance(value, int | float):
            return True
    return False


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` applied on ``base``: properties merged, required joined, types
    intersected (``over``'s when they do not meet), any other keyword ``over``'s."""
    out = dict(base)
    for k, v in over.items():
        old = out.get(k)
        if k == "properties" and isinstance(old, dict) and isinstance(v, dict):
            out[k] = {**old, **v}
        elif k == "required" and isinstance(old, list) and isinstance(v, list):
            out[k] = list(dict.fromkeys([*old, *v]))
        elif k == "type" and old is not None:
            a, b = _types({"type": old}), _types({"type": v})
            both = [t for t in b if t in a or (t == "integer" and "number" in a)]
            both += [t for t in a if t == "integer" and "number" in b and t not in both]
            out[k] = both or v
        else:
            out[k] = v
    return out


class _Builder:
    def __init__(self, root: Any, draws: _Draws, strict: bool):
        self.root = root
        self.draws = draws
        self.strict = strict
        self.nodes = 0
        self.chars = 0
        self.anchors: dict[str, Any] | None = None

    # -- schema plumbing --

    def resolve(self, ref: str) -> Any:
        if ref == "#" or ref == "":
            return self.root
        if ref.startswith("#/"):
            node = self.root
            for raw in ref[2:].split("/"):
                part = unquote(raw).replace("~1", "/").replace("~0", "~")
                if isinstance(node, dict) and part in node:
                    node = node[part]
                elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                    node = node[int(part)]
                else:
                    raise SchemaProblem(f"reference {ref[:200]!r} can't be resolved.")
            return node
        if ref.startswith("#"):
            if self.anchors is None:
                self.anchors = {}
                _collect_anchors(self.root, self.anchors, 0)
            if ref[1:] in self.anchors:
                return self.anchors[ref[1:]]
        raise SchemaProblem(f"reference {ref[:200]!r} can't be resolved (local references only).")

    def flatten(self, schema: dict[str, Any], small: bool) -> dict[str, Any]:
        """The schema with ``$ref``, ``allOf``, ``anyOf`` and ``oneOf`` applied."""
        for _ in range(_MAX_HOPS):
            if "$ref" in schema and isinstance(schema["$ref"], str):
                target = self.resolve(schema["$ref"])
                rest = {k: v for k, v in schema.items() if k != "$ref"}
                schema = _merge(target, rest) if isinstance(target, dict) else rest
                continue
            all_of = schema.get("allOf")
            if isinstance(all_of, list):
                merged = {k: v for k, v in schema.items() if k != "allOf"}
                for part in all_of:
                    if isinstance(part, dict):
                        merged = _merge(merged, self.flatten(part, small))
                schema = merged
                continue
            for combinator in ("anyOf", "oneOf"):
                branches = schema.get(combinator)
                if isinstance(branches, list):
                    rest = {k: v for k, v in schema.items() if k != combinator}
                    branch = self.branch([b for b in branches if isinstance(b, dict)], small)
                    schema = _merge(rest, branch) if branch is not None else rest
                    break
            else:
                return schema
        raise SchemaProblem("'$ref' cycle: the references never reach a schema.")

    def branch(self, branches: list[dict[str, Any]], small: bool) -> dict[str, Any] | None:
        """The first branch; when building small, the cheapest one."""
        if not branches:
            return None
        if not small:
            return branches[0]

        def cost(b: dict[str, Any]) -> int:
            peek = b
            if isinstance(b.get("$ref"), str):
                try:
                    target = self.resolve(b["$ref"])
                except SchemaProblem:
                    return len(_SMALL_ORDER)
                peek = target if isinstance(target, dict) else {}
            types = _types(peek)
            if any(k in peek for k in ("anyOf", "oneOf", "allOf", "$ref")) and not types:
                return len(_SMALL_ORDER) - 1
            return min((_SMALL_ORDER.index(t) for t in types if t in _SMALL_ORDER), default=4)

        return min(branches, key=cost)

    # -- values --

    def value(self, schema: Any, depth: int) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise SchemaProblem(f"the document would need more than {MAX_NODES} values.")
        if depth > HARD_DEPTH:
            raise SchemaProblem(
                f"the document would nest deeper than {HARD_DEPTH} levels (a recursive "
                "schema without a way out?)."
            )
        if schema is True or not isinstance(schema, dict):
            return self.words(0, None, depth >= MAX_DEPTH)
        small = depth >= MAX_DEPTH or self.nodes > SOFT_NODES
        schema = self.flatten(schema, small)
        if "const" in schema:
            return schema["const"]
        types = _types(schema)
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            fitting = [v for v in enum if _fits(v, types)] or enum
            return fitting[self.draws.below(len(fitting))]
        kind = self.pick_type(types, small)
        if kind == "object":
            return self.object(schema, depth, small)
        if kind == "array":
            return self.array(schema, depth, small)
        if kind == "integer":
            return self.integer(schema)
        if kind == "number":
            return self.number(schema)
        if kind == "boolean":
            return self.draws.below(2) == 0
        if kind == "null":
            return None
        return self.string(schema, small)

    def pick_type(self, types: list[str], small: bool) -> str:
        if small:
            known = [t for t in _SMALL_ORDER if t in types]
            if known:
                return known[0]
        return next((t for t in types if t != "null"), types[0] if types else "string")

    def object(self, schema: dict[str, Any], depth: int, small: bool) -> dict[str, Any]:
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        required = schema.get("required")
        required = [r for r in dict.fromkeys(required) if isinstance(r, str)] if isinstance(
            required, list) else []
        if self.strict:
            names = [*properties, *(r for r in required if r not in properties)]
        elif small:
            names = list(required)
        else:
            names = list(required or properties)
        low = _count(schema.get("minProperties")) or 0
        high = _count(schema.get("maxProperties"))
        if len(names) < low:  # optional properties, then extra ones
            names += [p for p in properties if p not in names][: low - len(names)]
            if schema.get("additionalProperties") is not False:
                extra = [w for w in _VOCABULARY if w not in names and w not in properties]
                names += extra[: low - len(names)]
        if high is not None and len(names) > high:  # drop optional ones, last first
            optional = [n for n in names if n not in required]
            drop = set(optional[max(len(optional) - (len(names) - high), 0) :])
            names = [n for n in names if n not in drop]
        out = {}
        for name in names:
            sub = properties[name] if name in properties else self.extra_schema(schema, name)
            out[name] = self.value(sub, depth + 1)
        return out

    def extra_schema(self, schema: dict[str, Any], name: str) -> Any:
        """The schema of a property not in ``properties``."""
        patterns = schema.get("patternProperties")
        if isinstance(patterns, dict):
            for pattern, sub in patterns.items():
                try:
                    if re.search(pattern, name):
                        return sub
                except re.error:
                    continue
        extra = schema.get("additionalProperties")
        return extra if isinstance(extra, dict) else True

    def array(self, schema: dict[str, Any], depth: int, small: bool) -> list[Any]:
        prefix = schema.get("prefixItems")
        items = schema.get("items")
        if isinstance(items, list):  # draft 4-2019 tuple form
            prefix, items = items, schema.get("additionalItems", True)
        prefix = prefix if isinstance(prefix, list) else []
        low = _count(schema.get("minItems")) or 0
        high = _count(schema.get("maxItems"))
        if items is False:
            high = len(prefix) if high is None else min(high, len(prefix))
        if low > MAX_NODES:
            raise SchemaProblem(f"the document would need more than {MAX_NODES} values.")
        size = low if small else max(low, 1 + self.draws.below(3 if depth < 4 else 1))
        if high is not None:
            size = max(min(size, high), min(low, high))
        unique = schema.get("uniqueItems") is True
        out: list[Any] = []
        seen: set[str] = set()
        tries = 0
        while len(out) < size:
            i = len(out)
            sub = prefix[i] if i < len(prefix) else (True if items is None else items)
            value = self.value(sub, depth + 1)
            if unique:
                mark = dumps(value)
                if mark in seen:
                    tries += 1
                    if tries > 4 * size + 8:
                        break  # no more distinct values to draw
                    continue
                seen.add(mark)
            out.append(value)
        return out

    def string(self, schema: dict[str, Any], small: bool) -> str:
        low = _count(schema.get("minLength")) or 0
        high = _count(schema.get("maxLength"))
        if low > MAX_CHARS:
            raise SchemaProblem(f"the document would need more than {MAX_CHARS} characters.")
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            text = matching(pattern, self.draws.below)
            if text is not None and low <= len(text) <= (high if high is not None else len(text)):
                return self.counted(text)
        fmt = schema.get("format")
        if isinstance(fmt, str):
            text = self.formatted(fmt.lower())
            if text is not None and low <= len(text) <= (high if high is not None else len(text)):
                return self.counted(text)
        return self.words(low, high, small)

    def words(self, low: int, high: int | None, small: bool) -> str:
        draw = self.draws.word
        parts = [draw() for _ in range(1 if small else 1 + self.draws.below(3))]
        size = sum(map(len, parts)) + len(parts) - 1
        while size < low:
            parts.append(draw())
            size += len(parts[-1]) + 1
        if high is not None:  # whole words while they fit, else cut the first
            while len(parts) > 1 and size > high and size - len(parts[-1]) - 1 >= low:
                size -= len(parts.pop()) + 1
        text = " ".join(parts)
        if high is not None and len(text) > high:
            text = text[:high]
            if len(text.rstrip()) >= low:
                text = text.rstrip()
        return self.counted(text)

    def counted(self, text: str) -> str:
        self.chars += len(text)
        if self.chars > MAX_CHARS:
            raise SchemaProblem(f"the document would need more than {MAX_CHARS} characters.")
        return text

    def formatted(self, fmt: str) -> str | None:
        below = self.draws.below
        if fmt in ("date-time", "date", "time"):
            date = f"{2020 + below(10):04d}-{1 + below(12):02d}-{1 + below(28):02d}"
            time = f"{below(24):02d}:{below(60):02d}:{below(60):02d}Z"
            return {"date-time": f"{date}T{time}", "date": date, "time": time}[fmt]
        if fmt == "duration":
            return f"P{1 + below(30)}DT{below(24)}H"
        if fmt in ("email", "idn-email"):
            return f"{self.draws.word()}@example.com"
        if fmt in ("hostname", "idn-hostname"):
            return f"{self.draws.word()}.example.com"
        if fmt == "ipv4":
            return f"192.0.2.{1 + below(254)}"
        if fmt == "ipv6":
            return f"2001:db8::{1 + below(0xFFFF):x}"
        if fmt == "uuid":
            raw = bytearray(below(256) for _ in range(16))
            raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
            raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
            h = raw.hex()
            return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        if fmt in ("uri", "iri", "uri-reference", "iri-reference", "url", "uri-template"):
            return f"https://example.com/{self.draws.word()}"
        if fmt == "json-pointer":
            return f"/{self.draws.word()}"
        if fmt == "relative-json-pointer":
            return f"0/{self.draws.word()}"
        if fmt == "regex":
            return self.draws.word()
        return None

    def integer(self, schema: dict[str, Any]) -> int | float:
        low, high, xlow, xhigh = bounds(schema)
        if low is not None:
            low = math.floor(low) + 1 if xlow else math.ceil(low)
        if high is not None:
            high = math.ceil(high) - 1 if xhigh else math.floor(high)
        low, high = window(low, high)
        step = step_of(schema)
        if step is not None:
            # the integers that are multiples of p/q are the multiples of p
            return self.multiple(Fraction(step.numerator), low, high, schema["multipleOf"],
                                 lambda v: True)
        return low + self.draws.below(high - low + 1)

    def number(self, schema: dict[str, Any]) -> int | float:
        low, high, xlow, xhigh = bounds(schema)
        lo, hi = window(low, high)

        def inside(v: float) -> bool:
            return (low is None or (v > low if xlow else v >= low)) and (
                high is None or (v < high if xhigh else v <= high)
            )

        step = step_of(schema)
        if step is not None:
            return self.multiple(step, lo, hi, schema["multipleOf"], inside)
        if lo == hi:
            return lo
        raw = lo + (hi - lo) * (1 + self.draws.below(255)) / 256
        for v in (round(raw, 2), round(raw, 6), raw, (lo + hi) / 2):
            if inside(v):
                return v
        return lo

    def multiple(
        self, step: Fraction, lo: Any, hi: Any, multiple: Any, inside: Callable[[Any], bool]
    ) -> int | float:
        """A multiple of ``step`` in ``lo..hi`` that validators accept as a
        multiple of ``multiple`` (float division can say no: 0.3 / 0.1)."""
        first, last = math.ceil(Fraction(lo) / step), math.floor(Fraction(hi) / step)
        start = first + self.draws.below(last - first + 1) if first <= last else first
        for k in (*range(start, start + 32), *range(first, first + 32), 0):
            exact = k * step
            v: int | float = int(exact) if exact.denominator == 1 else float(exact)
            if first <= k <= last and inside(v) and multiple_ok(v, multiple):
                return v
        return lo  # no multiple in range: the schema cannot be met


def _collect_anchors(node: Any, out: dict[str, Any], depth: int) -> None:
    if depth > HARD_DEPTH:
        return
    if isinstance(node, dict):
        anchor = node.get("$anchor")
        if isinstance(anchor, str):
            out.setdefault(anchor, node)
        for v in node.values():
            _collect_anchors(v, out, depth + 1)
    elif isinstance(node, list):
        for v in node:
            _collect_anchors(v, out, depth + 1)
