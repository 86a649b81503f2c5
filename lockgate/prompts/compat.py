"""Breaking changes between two input schemas, and version numbers.

A change is *breaking* when some input valid under the old schema may be invalid under
the new one; a version whose input schema breaks its predecessor's must be a new major
version. ``breaking_changes`` proves compatibility keyword by keyword and reports
anything it cannot prove, so it may call a harmless change breaking, never the reverse:

- ``type``: a type the old schema accepted is no longer accepted (``["string","null"]``
  → ``"string"``, ``number`` → ``integer``; ``integer`` → ``number`` is fine);
- ``enum``/``const``: a value the old schema accepted is no longer listed (or a list is
  added where there was none);
- bounds tightened: ``minimum``/``exclusiveMinimum`` raised, ``maximum``/
  ``exclusiveMaximum`` lowered, ``multipleOf`` not a divisor of the old one,
  ``minLength``/``minItems``/``minProperties``/``minContains`` raised, their ``max…``
  lowered; ``pattern`` or ``format`` added or changed; ``uniqueItems`` added;
- objects: a property newly ``required``; ``dependentRequired`` added to; each property
  compared with what the old schema allowed for it (its ``properties`` entry, else
  ``additionalProperties``) — so removing a property under ``additionalProperties:
  false``, or constraining a name that used to be a free additional property, breaks;
  ``additionalProperties`` itself compared (``true`` → ``false`` breaks);
  ``propertyNames`` compared; ``patternProperties`` must stay identical;
- arrays: ``items``/``prefixItems`` compared position by position, ``contains`` compared;
- everything is compared recursively, only for the types the old schema accepts (a
  ``minLength`` added to an integer-only schema is not breaking);
- unprovable: ``$ref``, ``allOf``/``anyOf``/``oneOf``/``not``/``if``/``then``/``else``,
  ``dependentSchemas``, ``unevaluated…``: added or changed (anything but identical,
  with identical ``$defs`` for ``$ref``) is reported as breaking, with the reason.
  Removing them only relaxes the new schema and is fine.

Keywords without effect on validity (``title``, ``description``, ``default``,
``examples``…) are ignored.

Versions are ``v<major>[.<minor>]`` (``v1``, ``v2``, ``v1.1``; numbers without leading
zeros, ``v1`` is ``v1.0``); ``is_major_bump`` says whether the major number went up.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from lockgate.errors import FailedPrecondition, InvalidRequest

_TYPES = ("array", "boolean", "integer", "null", "number", "object", "string")
#: Keywords that constrain values in ways not compared structurally.
_UNPROVABLE = ("$ref", "allOf", "anyOf", "oneOf", "not", "if", "then", "else",
               "dependentSchemas", "unevaluatedItems", "unevaluatedProperties",
               "$dynamicRef")
_VERSION = re.compile(r"v(0|[1-9][0-9]{0,5})(?:\.(0|[1-9][0-9]{0,5}))?")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_REASONS = 100


class VersionError(InvalidRequest):
    default_code = "invalid_version"


class BreakingChangeError(FailedPrecondition):
    """A minor version whose input schema breaks the previous version's."""

    default_code = "breaking_change"

    def __init__(self, message: str, reasons: list[str]):
        super().__init__(message, param="input_schema")
        self.reasons = reasons


@dataclass(frozen=True, slots=True, order=True)
class Version:
    major: int
    minor: int = 0

    def __str__(self) -> str:
        return f"v{self.major}" if self.minor == 0 else f"v{self.major}.{self.minor}"


def parse_version(text: str) -> Version:
    """``"v1"`` → Version(1, 0), ``"v1.2"`` → Version(1, 2); ``VersionError`` otherwise."""
    match = _VERSION.fullmatch(text) if isinstance(text, str) else None
    if not match:
        raise VersionError(
            "version must be v<major>[.<minor>], e.g. v1, v2 or v1.1", param="version"
        )
    return Version(int(match.group(1)), int(match.group(2) or 0))


def is_major_bump(old_version: str, new_version: str) -> bool:
    """Whether ``new_version`` has a higher major number than ``old_version``."""
    return parse_version(new_version).major > parse_version(old_version).major


def check_version_bump(
    old_version: str, old_schema: Any, new_version: str, new_schema: Any
) -> list[str]:
    """The breaking changes (possibly none) of publishing ``new_version`` after
    ``old_version``; raises ``VersionError`` unless the new version is higher, and
    ``BreakingChangeError`` when there are breaking changes without a major bump."""
    old, new = parse_version(old_version), parse_version(new_version)
    if new <= old:
        raise VersionError(f"version {new} must be higher than {old}", param="version")
    reasons = breaking_changes(old_schema, new_schema)
    if reasons and new.major == old.major:
        raise BreakingChangeError(
            f"the input schema of {new} breaks {old}, so it must be v{old.major + 1}: "
            + "; ".join(reasons[:5]) + (f" (and {len(reasons) - 5} more)" if len(reasons) > 5
                                         else ""),
            reasons,
        )
    return reasons


def breaking_changes(old: Any, new: Any) -> list[str]:
    """Why an input valid under ``old`` may be invalid under ``new``; empty when the
    new schema accepts everything the old one did (as far as can be proven)."""
    reasons: list[str] = []
    _Compare(old, new, reasons).schema(old, new, "input", depth=0)
    return list(dict.fromkeys(reasons))[:_MAX_REASONS]


def _key(value: Any) -> str:
    """JSON equality: 1 == 1.0, true != 1, key order does not matter."""
    return json.dumps(_normal(value), sort_keys=True, separators=(",", ":"))


def _normal(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    return repr(value)


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if _IDENTIFIER.fullmatch(name) else f"{path}[{json.dumps(name)}]"


class _Compare:
    def __init__(self, old_root: Any, new_root: Any, reasons: list[str]):
        self.old_root = old_root
        self.new_root = new_root
        self.reasons = reasons
        defs = ("$defs", "definitions")
        self.same_defs = all(
            _key(_get(old_root, k)) == _key(_get(new_root, k)) for k in defs
        )

    def add(self, path: str, reason: str) -> None:
        self.reasons.append(f"{path}: {reason}")

    def schema(self, old: Any, new: Any, path: str, depth: int) -> None:
        if len(self.reasons) >= _MAX_REASONS:
            return
        if depth > 64:
            self.add(path, "nested too deeply to compare")
            return
        if old is False or new is True or new == {}:
            return  # old accepts nothing, or new accepts everything
        if old is True:
            old = {}
        if new is False:
            self.add(path, "no longer accepted at all" if path != "input" else
                     "the schema no longer accepts any input")
            return
        if not isinstance(old, dict) or not isinstance(new, dict):
            self.add(path, "cannot compare: not a schema")
            return
        if _key(old) == _key(new) and (self.same_defs or not _has_ref(new)):
            return
        if isinstance(old.get("not"), dict | bool) and old["not"] in ({}, True):
            return  # old accepts nothing
        self.unprovable(old, new, path)
        old_types = _types(old)
        old_values = _allowed_values(old)
        if old_values is not None:  # only these values: only their types matter
            old_types = {t for t in map(_value_type, old_values.values())
                         if _accepts_type(old_types, t)}
        new_types = _types(new)
        lost = [t for t in sorted(old_types) if not _accepts_type(new_types, t)]
        if lost:
            self.add(path, f"type narrowed from {_show_types(old)} to {_show_types(new)}")
        self.values(old, new, path)

        def kept(*kinds: str) -> bool:
            """Whether the old schema accepts any of these types (and the new one too:
            a type already reported as lost needs no further reasons)."""
            return any(k in old_types and _accepts_type(new_types, k) for k in kinds)

        if kept("integer", "number"):
            self.numbers(old, new, path, old_types)
        if kept("string"):
            self.bounds(old, new, path, "minLength", "maxLength")
            for key in ("pattern", "format"):
                if key in new and (key not in old or old[key] != new[key]):
                    self.add(path, f"{key} {'changed' if key in old else 'added'}: "
                                   f"{new[key]!r}")
        if kept("array"):
            self.arrays(old, new, path, depth)
        if kept("object"):
            self.objects(old, new, path, depth)

    def unprovable(self, old: dict, new: dict, path: str) -> None:
        for key in _UNPROVABLE:
            if key not in new:
                continue
            same = key in old and _key(old[key]) == _key(new[key])
            if key == "$ref" and same and not self.same_defs:
                self.add(path, "$ref target changed ($defs differ): cannot prove compatibility")
            elif not same:
                self.add(path, f"{key} {'changed' if key in old else 'added'}: "
                               "cannot prove compatibility")
            elif key != "$ref" and _has_ref(new[key]) and not self.same_defs:
                self.add(path, f"{key} uses $ref and $defs differ: cannot prove compatibility")

    def values(self, old: dict, new: dict, path: str) -> None:
        new_allowed = _allowed_values(new)
        if new_allowed is None:
            return
        old_allowed = _allowed_values(old)
        if old_allowed is None:
            which = "const" if "const" in new and "enum" not in new else "enum"
            self.add(path, f"{which} added: only {_show_values(new_allowed)} accepted")
            return
        removed = {k: v for k, v in old_allowed.items() if k not in new_allowed}
        if removed:
            self.add(path, f"enum values removed: {_show_values(removed)}")

    def numbers(self, old: dict, new: dict, path: str, old_types: set[str]) -> None:
        old_low, new_low = _lower(old), _lower(new)
        if new_low is not None and (old_low is None or _tighter_low(new_low, old_low)):
            self.add(path, f"minimum raised to {_show_bound(new_low, '>')}"
                     if old_low is not None else f"minimum added: {_show_bound(new_low, '>')}")
        old_high, new_high = _upper(old), _upper(new)
        if new_high is not None and (old_high is None or _tighter_high(new_high, old_high)):
            self.add(path, f"maximum lowered to {_show_bound(new_high, '<')}"
                     if old_high is not None else
                     f"maximum added: {_show_bound(new_high, '<')}")
        step = new.get("multipleOf")
        if _number(step):
            was = old.get("multipleOf")
            if was is None and "number" not in old_types:
                was = 1  # integers only: every value is a multiple of 1
            if not (_number(was) and _divides(step, was)):
                self.add(path, f"multipleOf {step} added" if was is None
                         else f"multipleOf changed from {was} to {step}")

    def bounds(self, old: dict, new: dict, path: str, low: str, high: str,
               low_default: int = 0) -> None:
        was, now = old.get(low, low_default), new.get(low, low_default)
        if now > was:
            self.add(path, f"{low} raised from {was} to {now}")
        if high in new and new[high] < old.get(high, math.inf):
            self.add(path, f"{high} lowered from {old.get(high, 'none')} to {new[high]}")

    def arrays(self, old: dict, new: dict, path: str, depth: int) -> None:
        self.bounds(old, new, path, "minItems", "maxItems")
        if new.get("uniqueItems") is True and old.get("uniqueItems") is not True:
            self.add(path, "uniqueItems added")
        old_prefix = old.get("prefixItems", [])
        new_prefix = new.get("prefixItems", [])
        old_rest = old.get("items", True)
        new_rest = new.get("items", True)
        for i in range(max(len(old_prefix), len(new_prefix))):
            before = old_prefix[i] if i < len(old_prefix) else old_rest
            after = new_prefix[i] if i < len(new_prefix) else new_rest
            self.schema(before, after, f"{path}[{i}]", depth + 1)
        self.schema(old_rest, new_rest, f"{path}[]", depth + 1)
        if "contains" not in new:
            return  # minContains/maxContains mean nothing without it
        if "contains" not in old:
            if new.get("minContains", 1) > 0 or "maxContains" in new:
                self.add(path, "contains added")
            return
        if _key(old["contains"]) != _key(new["contains"]) or (
            not self.same_defs and _has_ref(new["contains"])
        ):
            if "maxContains" in new:
                # A wider `contains` counts more items against maxContains.
                self.add(path, "contains changed while maxContains is set: cannot prove "
                               "compatibility")
            else:
                before = len(self.reasons)
                self.schema(old["contains"], new["contains"], f"{path}.<contains>", depth + 1)
                if len(self.reasons) > before:
                    self.add(path, "contains changed")
        self.bounds(old, new, path, "minContains", "maxContains", low_default=1)

    def objects(self, old: dict, new: dict, path: str, depth: int) -> None:
        self.bounds(old, new, path, "minProperties", "maxProperties")
        old_required = set(old.get("required", []))
        for name in new.get("required", []):
            if name not in old_required:
                self.add(_child(path, name), "newly required")
        old_deps = old.get("dependentRequired", {})
        for name, needs in new.get("dependentRequired", {}).items():
            added = [n for n in needs if n not in old_deps.get(name, [])]
            if added:
                self.add(_child(path, name), f"now requires {added} beside it")
        old_patterns = old.get("patternProperties", {})
        new_patterns = new.get("patternProperties", {})
        if _key(old_patterns) != _key(new_patterns):
            self.add(path, "patternProperties changed: cannot prove compatibility")
        if "propertyNames" in new:
            self.schema(old.get("propertyNames", True), new["propertyNames"],
                        f"{path}.<propertyNames>", depth + 1)
        old_props = old.get("properties", {})
        new_props = new.get("properties", {})
        old_extra = old.get("additionalProperties", True)
        new_extra = new.get("additionalProperties", True)
        for name in dict.fromkeys([*old_props, *new_props]):
            # A name matching patternProperties: what the old schema allowed for it is
            # over-approximated as anything (sound: it can only report more).
            matched = any(re.search(p, name) for p in old_patterns)
            before = old_props.get(name, {} if matched else old_extra)
            after = new_props.get(name, new_extra)
            where = _child(path, name)
            if name not in new_props and after is False and before is not False:
                self.add(where, "removed (additionalProperties is false)")
                continue
            if name not in old_props and before is not False and after is not True:
                count = len(self.reasons)
                self.schema(before, after, where, depth + 1)
                if len(self.reasons) > count:
                    self.reasons[count:] = [
                        f"{where}: was allowed as an additional property and is now "
                        "constrained (" + "; ".join(r.split(": ", 1)[-1]
                                                    for r in self.reasons[count:]) + ")"
                    ]
                continue
            self.schema(before, after, where, depth + 1)
        if new_extra is False and old_extra is not False:
            self.add(path, "additionalProperties changed to false: other properties are "
                           "no longer accepted")
        else:
            self.schema(old_extra, new_extra, f"{path}.<additionalProperties>", depth + 1)


def _get(schema: Any, key: str) -> Any:
    return schema.get(key) if isinstance(schema, dict) else None


def _has_ref(node: Any) -> bool:
    if isinstance(node, dict):
        return "$ref" in node or any(_has_ref(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_ref(v) for v in node)
    return False


def _types(schema: dict) -> set[str]:
    declared = schema.get("type")
    if declared is None:
        return set(_TYPES)
    types = {declared} if isinstance(declared, str) else set(declared)
    if "number" in types:
        types.add("integer")
    return types


def _accepts_type(types: set[str], name: str) -> bool:
    return name in types or (name == "integer" and "number" in types)


def _show_types(schema: dict) -> str:
    declared = schema.get("type")
    if declared is None:
        return "any type"
    return json.dumps(declared)


def _allowed_values(schema: dict) -> dict[str, Any] | None:
    """The values ``const``/``enum`` allow (by JSON key), or None when unrestricted."""
    allowed: dict[str, Any] | None = None
    if "enum" in schema and isinstance(schema["enum"], list):
        allowed = {_key(v): v for v in schema["enum"]}
    if "const" in schema:
        const = {_key(schema["const"]): schema["const"]}
        allowed = const if allowed is None else {k: v for k, v in const.items() if k in allowed}
    return allowed


def _value_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return "integer"
    return {float: "number", str: "string", list: "array", dict: "object"}.get(
        type(value), "object"
    )


def _show_values(values: dict) -> str:
    shown = list(values)[:10]
    more = f" and {len(values) - 10} more" if len(values) > 10 else ""
    return ", ".join(shown) + more


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _lower(schema: dict) -> tuple[float, bool] | None:
    """The tightest lower bound as (value, exclusive)."""
    bounds = []
    if _number(schema.get("minimum")):
        bounds.append((schema["minimum"], False))
    if _number(schema.get("exclusiveMinimum")):
        bounds.append((schema["exclusiveMinimum"], True))
    return max(bounds, default=None)


def _upper(schema: dict) -> tuple[float, bool] | None:
    bounds = []
    if _number(schema.get("maximum")):
        bounds.append((schema["maximum"], False))
    if _number(schema.get("exclusiveMaximum")):
        bounds.append((schema["exclusiveMaximum"], True))
    return min(bounds, key=lambda b: (b[0], not b[1]), default=None)


def _tighter_low(new: tuple[float, bool], old: tuple[float, bool]) -> bool:
    return new[0] > old[0] or (new[0] == old[0] and new[1] and not old[1])


def _tighter_high(new: tuple[float, bool], old: tuple[float, bool]) -> bool:
    return new[0] < old[0] or (new[0] == old[0] and new[1] and not old[1])


def _show_bound(bound: tuple[float, bool], sign: str) -> str:
    return f"{sign}{'' if bound[1] else '='} {bound[0]}"


def _divides(step: float, value: float) -> bool:
    """Whether every multiple of ``value`` is a multiple of ``step``."""
    try:
        ratio = Fraction(str(value)) / Fraction(str(step))
    except (ValueError, ZeroDivisionError):
        return False
    return ratio.denominator == 1
