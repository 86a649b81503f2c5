r"""JSON Schema (Draft 2020-12) for prompt APIs: schema checks at publish, input validation.

Publish time (``check_input_schema``, ``check_output_schema``) refuses, with a
``SchemaError`` naming where in the schema:

- anything that is not a valid Draft 2020-12 schema (``$schema``, if set, must be
  ``https://json-schema.org/draft/2020-12/schema``);
- a schema over ``MAX_SCHEMA_BYTES`` (compact JSON) or ``MAX_SCHEMA_DEPTH`` nesting levels;
- ``$ref`` other than a local JSON pointer (``#`` or ``#/…``) that resolves in the same
  document, ``$dynamicRef``, and ``$id`` below the root: nothing is ever fetched;
- for input schemas: a root that is not ``"type": "object"``; a ``format`` outside
  ``SUPPORTED_FORMATS`` (formats are *asserted*: an author who writes
  ``"format": "email"`` gets email checking, and an unknown name is an error rather
  than a silently ignored annotation); a ``pattern`` that is not a valid regular
  expression or is over ``MAX_PATTERN_LENGTH``; ``patternProperties`` (its regexes would
  run outside the time bound below: use ``propertyNames`` with a ``pattern``);
  ``uniqueItems`` without a ``maxItems`` of at most ``MAX_UNIQUE_ITEMS`` (uniqueness of
  objects is quadratic, so it is only computed within that bound);
- for output schemas: what OpenAI's strict structured outputs refuse: a root that is not
  an object, an object without ``"additionalProperties": false`` or not listing every
  property in ``required``.

Invocation (``InputSchema.validate``) first bounds the input (``MAX_INPUT_BYTES``,
``MAX_INPUT_DEPTH``, ``MAX_INPUT_NODES``, JSON values only), then validates it and
raises ``InputError``, whose ``errors`` name each field by its path from ``input``:
``input.customer.name: 'x' is not of type 'integer'``.

``pattern`` runs on the ``regex`` engine with a time limit: one validation spends at
most ``MAX_PATTERN_SECONDS`` matching patterns, so a pattern that backtracks
catastrophically (``^(a|aa)+$``, ``\d+\d+\d+x``) on a hostile string costs a bounded
time and makes that field invalid ("could not be checked … in time") instead of
stalling the process. (Python's ``re``, which jsonschema uses by default, cannot be
interrupted.)
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import math
import re
import time
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import unquote

import jsonschema
import orjson
import referencing
import regex
from jsonschema.exceptions import ValidationError, best_match

from lockgate.errors import InvalidRequest, PayloadTooLarge

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
MAX_SCHEMA_BYTES = 64 * 1024
MAX_SCHEMA_DEPTH = 64
MAX_UNIQUE_ITEMS = 1000
MAX_PATTERN_LENGTH = 1000
#: Time one validation may spend matching ``pattern``s, in seconds.
MAX_PATTERN_SECONDS = 0.25
MAX_INPUT_BYTES = 1024 * 1024
MAX_INPUT_DEPTH = 32
MAX_INPUT_NODES = 100_000
#: Field errors kept per validation (the first is the one in the message).
MAX_FIELD_ERRORS = 20
#: Values quoted in error messages are cut to this many characters.
MAX_QUOTED_VALUE = 60

#: Keywords whose value is one subschema, a list of them, or a name → subschema map.
_SUBSCHEMA = ("additionalProperties", "items", "contains", "propertyNames", "not", "if",
              "then", "else", "unevaluatedItems", "unevaluatedProperties", "contentSchema")
_SUBSCHEMA_LIST = ("allOf", "anyOf", "oneOf", "prefixItems")
_SUBSCHEMA_MAP = ("properties", "patternProperties", "$defs", "dependentSchemas")

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SchemaError(InvalidRequest):
    """A schema refused at publish time; ``param`` names the schema field."""

    default_code = "invalid_schema"

    def __init__(self, message: str, *, param: str, location: str = ""):
        where = f" at {location}" if location else ""
        super().__init__(f"{param}{where}: {message}", param=param)
        #: JSON pointer of the offending part inside the schema ("" for the root).
        self.location = location


@dataclass(frozen=True, slots=True)
class FieldError:
    """One invalid field: ``path`` from ``input`` (``input.items[0].name``) and why."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class InputError(InvalidRequest):
    """The invocation input is invalid; ``param`` is the first field's path."""

    default_code = "invalid_input"

    def __init__(self, errors: Sequence[FieldError]):
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"{first}{more}", param=first.path)
        self.errors: tuple[FieldError, ...] = tuple(errors)


class InputTooLarge(PayloadTooLarge):
    """The invocation input is over a size bound."""

    def __init__(self, message: str):
        super().__init__(message, param="input")


def format_path(parts: Sequence[str | int], root: str = "input") -> str:
    """``input.customer.name``, ``input.items[0]``, ``input["odd key"]``."""
    out = [root]
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _IDENTIFIER.fullmatch(part):
            out.append(f".{part}")
        else:
            out.append(f"[{orjson.dumps(part).decode()}]")
    return "".join(out)


def _pointer(parts: Sequence[str | int]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts) or "/"


# --- formats -------------------------------------------------------------------------

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_TIME = r"\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})"
_FULL_TIME = re.compile(_TIME, re.ASCII)
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]" + _TIME, re.ASCII)
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s]*")
_HOSTNAME_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)", re.ASCII)


def _is_date(value: str) -> bool:
    if not _DATE.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_time(value: str) -> bool:
    if not _FULL_TIME.fullmatch(value):
        return False
    h, m, s = int(value[0:2]), int(value[3:5]), int(value[6:8])
    return h < 24 and m < 60 and s < 61  # 60: a leap second


def _is_date_time(value: str) -> bool:
    if not _DATE_TIME.fullmatch(value):
        return False
    return _is_date(value[:10]) and _is_time(value[11:])


def _is_ip(kind: type) -> Any:
    def check(value: str) -> bool:
        try:
            kind(value)
        except ValueError:
            return False
        return True

    return check


def _is_hostname(value: str) -> bool:
    name = value[:-1] if value.endswith(".") else value
    return 0 < len(name) <= 253 and all(_HOSTNAME_LABEL.fullmatch(p) for p in name.split("."))


#: Format names asserted on input strings, each with a check that needs no optional
#: package (so the same input is accepted on every machine).
_FORMATS = {
    "date": _is_date,
    "date-time": _is_date_time,
    "time": _is_time,
    "email": lambda v: bool(_EMAIL.fullmatch(v)),
    "hostname": _is_hostname,
    "ipv4": _is_ip(ipaddress.IPv4Address),
    "ipv6": _is_ip(ipaddress.IPv6Address),
    "uri": lambda v: bool(_URI.fullmatch(v)),
    "uuid": lambda v: bool(_UUID.fullmatch(v)),
}
SUPPORTED_FORMATS: tuple[str, ...] = tuple(sorted(_FORMATS))


def _format_checker() -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker(formats=())
    for name, check in _FORMATS.items():
        # Non-strings pass: `format` constrains strings only.
        checker.checks(name)(lambda v, check=check: not isinstance(v, str) or check(v))
    return checker


_FORMAT_CHECKER = _format_checker()
_UNIQUE_ITEMS = jsonschema.Draft202012Validator.VALIDATORS["uniqueItems"]
#: When the current validation must stop matching patterns (time.monotonic()).
_PATTERN_DEADLINE: ContextVar[float | None] = ContextVar("pattern_deadline", default=None)


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> regex.Pattern:
    return regex.compile(pattern)


def _bounded_pattern(validator, pattern, instance, schema):
    """``pattern`` on the ``regex`` engine, within the validation's time budget."""
    if not isinstance(instance, str):
        return
    deadline = _PATTERN_DEADLINE.get()
    remaining = MAX_PATTERN_SECONDS if deadline is None else deadline - time.monotonic()
    try:
        if remaining <= 0:
            raise TimeoutError
        found = _compiled(pattern).search(instance, timeout=remaining)
    except TimeoutError:
        yield ValidationError(
            f"{_quote(instance)} could not be checked against {pattern!r} in time"
        )
        return
    if found is None:
        yield ValidationError(f"{_quote(instance)} does not match {pattern!r}")


def _bounded_unique_items(validator, unique, instance, schema):
    """uniqueItems (quadratic for objects) only on arrays within the sibling maxItems,
    which publishing requires; a longer array already fails maxItems."""
    if isinstance(instance, list) and len(instance) > schema.get("maxItems", MAX_UNIQUE_ITEMS):
        return
    yield from _UNIQUE_ITEMS(validator, unique, instance, schema)


_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    {"uniqueItems": _bounded_unique_items, "pattern": _bounded_pattern},
)
#: No retrieval: a $ref outside the document is unresolvable, never fetched.
_NO_REMOTE = referencing.Registry()


# --- schema walking ------------------------------------------------------------------

def iter_subschemas(
    schema: Any, path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    """Every subschema position of a Draft 2020-12 schema (itself first), with its path."""
    stack = [(path, schema)]
    while stack:
        where, node = stack.pop()
        yield where, node
        if not isinstance(node, dict):
            continue
        children = []
        for key in _SUBSCHEMA:
            if key in node:
                children.append(((*where, key), node[key]))
        for key in _SUBSCHEMA_LIST:
            if isinstance(node.get(key), list):
                children += [((*where, key, i), s) for i, s in enumerate(node[key])]
        for key in (*_SUBSCHEMA_MAP, "definitions"):
            if isinstance(node.get(key), dict):
                children += [((*where, key, name), s) for name, s in node[key].items()]
        stack.extend(reversed(children))


def _json_depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(node, dict):
            stack += [(v, depth + 1) for v in node.values()]
        elif isinstance(node, list):
            stack += [(v, depth + 1) for v in node]
    return deepest


def resolve_pointer(root: Any, ref: str) -> Any:
    """The subschema a local ``$ref`` (``#`` or ``#/a/b``) names; KeyError if none."""
    if ref == "#":
        return root
    if not ref.startswith("#/"):
        raise KeyError(ref)
    node = root
    for raw in ref[2:].split("/"):
        token = unquote(raw).replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise KeyError(ref)
    return node


def _check_common(schema: Any, param: str) -> None:
    if not isinstance(schema, dict):
        raise SchemaError("must be a JSON object", param=param)
    try:
        size = len(orjson.dumps(schema))
    except (TypeError, orjson.JSONEncodeError):
        raise SchemaError("must be JSON (objects, arrays, strings, numbers)", param=param) from None
    if size > MAX_SCHEMA_BYTES:
        raise SchemaError(f"is {size} bytes, over the limit of {MAX_SCHEMA_BYTES}", param=param)
    if _json_depth(schema) > MAX_SCHEMA_DEPTH:
        raise SchemaError(f"nests deeper than {MAX_SCHEMA_DEPTH} levels", param=param)
    declared = schema.get("$schema", DRAFT_2020_12)
    if not isinstance(declared, str) or declared.rstrip("#") != DRAFT_2020_12:
        raise SchemaError(
            f"$schema must be {DRAFT_2020_12!r} (Draft 2020-12) or absent",
            param=param, location="/$schema",
        )
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise SchemaError(
            _short_message(exc.message), param=param, location=_pointer(list(exc.absolute_path))
        ) from None
    for where, node in iter_subschemas(schema):
        if not isinstance(node, dict):
            continue
        if "$dynamicRef" in node:
            raise SchemaError("$dynamicRef is not supported", param=param,
                              location=_pointer([*where, "$dynamicRef"]))
        if "$id" in node and where:
            raise SchemaError("$id is only allowed at the root", param=param,
                              location=_pointer([*where, "$id"]))
        ref = node.get("$ref")
        if ref is not None:
            try:
                resolve_pointer(schema, ref)
            except KeyError:
                raise SchemaError(
                    f"$ref {ref!r} must be a local JSON pointer ('#' or '#/…') that exists "
                    "in this schema", param=param, location=_pointer([*where, "$ref"]),
                ) from None


def check_input_schema(schema: Any, *, param: str = "input_schema") -> None:
    """Raise ``SchemaError`` unless ``schema`` is acceptable as a version's input schema."""
    _check_common(schema, param)
    if schema.get("type") != "object":
        raise SchemaError('the root must have "type": "object" (the input is a JSON object)',
                          param=param, location="/type")
    for where, node in iter_subschemas(schema):
        if not isinstance(node, dict):
            continue
        fmt = node.get("format")
        if fmt is not None and fmt not in _FORMATS:
            raise SchemaError(
                f"format {fmt!r} is not supported; supported formats: "
                + ", ".join(SUPPORTED_FORMATS), param=param, location=_pointer([*where, "format"]),
            )
        if "patternProperties" in node:
            raise SchemaError(
                "patternProperties is not supported in input schemas; use propertyNames "
                "with a pattern", param=param, location=_pointer([*where, "patternProperties"]),
            )
        pattern = node.get("pattern")
        if isinstance(pattern, str):
            problem = None
            if len(pattern) > MAX_PATTERN_LENGTH:
                problem = f"is longer than {MAX_PATTERN_LENGTH} characters"
            else:
                try:
                    _compiled(pattern)
                except (regex.error, RecursionError, OverflowError) as exc:
                    problem = f"is not a valid regular expression ({exc})"
            if problem:
                raise SchemaError(f"pattern {_quote(pattern)} {problem}", param=param,
                                  location=_pointer([*where, "pattern"]))
        if node.get("uniqueItems") is True and not (
            isinstance(node.get("maxItems"), int) and node["maxItems"] <= MAX_UNIQUE_ITEMS
        ):
            raise SchemaError(
                f"uniqueItems needs maxItems of at most {MAX_UNIQUE_ITEMS} beside it",
                param=param, location=_pointer([*where, "uniqueItems"]),
            )


def check_output_schema(schema: Any, *, param: str = "output_schema") -> None:
    """Raise ``SchemaError`` unless ``schema`` suits OpenAI's strict structured outputs."""
    _check_common(schema, param)
    if schema.get("type") != "object" or "anyOf" in schema:
        raise SchemaError('the root must have "type": "object" and no anyOf',
                          param=param, location="/type")
    for where, node in iter_subschemas(schema):
        if not isinstance(node, dict):
            continue
        types = node.get("type")
        is_object = types == "object" or (isinstance(types, list) and "object" in types)
        if not (is_object or "properties" in node):
            continue
        if node.get("additionalProperties") is not False:
            raise SchemaError('every object needs "additionalProperties": false (strict mode)',
                              param=param, location=_pointer(where))
        missing = [p for p in node.get("properties", {}) if p not in node.get("required", [])]
        if missing:
            raise SchemaError(
                f"every property must be required in strict mode; not required: {missing}",
                param=param, location=_pointer([*where, "required"]),
            )


# --- input validation ----------------------------------------------------------------

def _quote(value: Any) -> str:
    text = repr(value)
    if len(text) > MAX_QUOTED_VALUE:
        text = text[: MAX_QUOTED_VALUE - 4] + "…" + text[-1:] if isinstance(value, str) else (
            text[: MAX_QUOTED_VALUE - 1] + "…"
        )
    return text


def _short_message(message: str) -> str:
    return message if len(message) <= 500 else message[:499] + "…"


def check_input_shape(value: Any) -> None:
    """Bound the input before validating it: JSON values only, size, depth, node count."""
    if not isinstance(value, dict):
        raise InputError([FieldError("input", "must be a JSON object")])
    size = nodes = 0
    stack: list[tuple[Any, int, tuple]] = [(value, 1, ())]
    while stack:
        node, depth, where = stack.pop()
        nodes += 1
        if nodes > MAX_INPUT_NODES:
            raise InputTooLarge(f"input has more than {MAX_INPUT_NODES} values")
        if depth > MAX_INPUT_DEPTH:
            raise InputError([FieldError(format_path(where),
                                         f"nests deeper than {MAX_INPUT_DEPTH} levels")])
        if isinstance(node, str):
            size += len(node.encode("utf-8", "surrogatepass")) + 2
        elif node is None or isinstance(node, bool):
            size += 5
        elif isinstance(node, int):
            size += 20
        elif isinstance(node, float):
            if not math.isfinite(node):
                raise InputError([FieldError(format_path(where), "must be a finite number")])
            size += 24
        elif isinstance(node, dict):
            size += 2
            for key, item in node.items():
                if not isinstance(key, str):
                    raise InputError([FieldError(format_path(where), "keys must be strings")])
                size += len(key.encode("utf-8", "surrogatepass")) + 4
                stack.append((item, depth + 1, (*where, key)))
        elif isinstance(node, list):
            size += 2 + len(node)
            stack += [(item, depth + 1, (*where, i)) for i, item in enumerate(node)]
        else:
            raise InputError([FieldError(format_path(where), "is not a JSON value")])
        if size > MAX_INPUT_BYTES:
            raise InputTooLarge(f"input is over the limit of {MAX_INPUT_BYTES} bytes")


def _field_errors(error: jsonschema.ValidationError) -> list[FieldError]:
    where = list(error.absolute_path)
    instance = error.instance
    if error.validator == "required" and isinstance(instance, dict):
        missing = [p for p in error.validator_value
                   if p not in instance and error.message == f"{p!r} is a required property"]
        return [FieldError(format_path([*where, p]), "is required") for p in missing[:1]]
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        schema = error.schema if isinstance(error.schema, dict) else {}
        known = schema.get("properties", {})  # no patternProperties in input schemas
        extra = [k for k in instance if k not in known]
        if extra:
            return [FieldError(format_path([*where, k]), "is not an allowed property")
                    for k in extra]
    if error.validator == "format":
        return [FieldError(format_path(where), f"{_quote(instance)} is not a valid "
                           f"{error.validator_value}")]
    message = error.message
    if not isinstance(instance, (dict, list)):
        full = repr(instance)
        if len(full) > MAX_QUOTED_VALUE and full in message:
            message = message.replace(full, _quote(instance))
    return [FieldError(format_path(where), _short_message(message))]


class InputSchema:
    """A version's input schema, checked once (publish), used for every invocation."""

    def __init__(self, schema: Any, *, param: str = "input_schema"):
        check_input_schema(schema, param=param)
        self.schema: dict = schema
        self._validator = _Validator(
            schema, format_checker=_FORMAT_CHECKER, registry=_NO_REMOTE
        )

    def errors(self, value: Any) -> list[FieldError]:
        """The input's field errors in the schema's order (empty when valid); an error
        under anyOf/oneOf names the most relevant field inside. Bounds raise."""
        check_input_shape(value)
        token = _PATTERN_DEADLINE.set(time.monotonic() + MAX_PATTERN_SECONDS)
        try:
            raw = list(itertools.islice(self._validator.iter_errors(value), MAX_FIELD_ERRORS))
        finally:
            _PATTERN_DEADLINE.reset(token)
        out: list[FieldError] = []
        for error in raw:
            deepest = best_match([error]) if error.context else error
            for field in _field_errors(deepest):
                if field not in out:
                    out.append(field)
        return out[:MAX_FIELD_ERRORS]

    def validate(self, value: Any) -> None:
        """Raise ``InputError`` (400, ``param`` = first field path) or ``InputTooLarge``."""
        errors = self.errors(value)
        if errors:
            raise InputError(errors)

