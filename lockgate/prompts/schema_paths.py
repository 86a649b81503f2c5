"""Which parts of an input schema declare a path: for templates, which check
that every value they use is declared and of a type they can render
(lockgate/prompts/template.py).

Local `$ref`s and allOf/anyOf/oneOf branches are followed, within bounds
(`_MAX_EXPANSION` subschemas, 16 hops), as the schema checks allow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lockgate.prompts.schema import resolve_pointer

#: Path segment meaning "an item of this array".
ITEMS = "[]"
_MAX_EXPANSION = 256


def _expand(schemas: Sequence[Any], root: Any) -> list[dict]:
    """Each schema with its local $refs and allOf/anyOf/oneOf branches, flattened."""
    out: list[dict] = []
    stack = [(s, 0) for s in reversed(schemas)]
    while stack and len(out) < _MAX_EXPANSION:
        node, hops = stack.pop()
        if not isinstance(node, dict):
            continue
        out.append(node)
        if hops >= 16:
            continue
        if isinstance(node.get("$ref"), str):
            try:
                stack.append((resolve_pointer(root, node["$ref"]), hops + 1))
            except KeyError:
                pass
        for key in ("allOf", "anyOf", "oneOf"):
            if isinstance(node.get(key), list):
                stack += [(s, hops + 1) for s in reversed(node[key])]
    return out


def subschemas_at(schema: Any, path: Sequence[str]) -> list[dict]:
    """The subschemas that declare ``path`` (property names, ``ITEMS`` for array items).

    Empty when the path is not declared: a property must be listed in ``properties``
    (possibly through local ``$ref`` or an allOf/anyOf/oneOf branch), an item needs
    ``items``.
    """
    current: list[Any] = [schema]
    for segment in path:
        found: list[Any] = []
        for node in _expand(current, schema):
            if segment == ITEMS:
                if isinstance(node.get("items"), dict | bool):
                    found.append(node["items"])
                elif _allows_type(node, "array"):
                    found.append({})  # an array without "items": items are any value
            elif isinstance(node.get("properties"), dict) and segment in node["properties"]:
                found.append(node["properties"][segment])
        current = [s if isinstance(s, dict) else {} for s in found if s is not False]
        if not current:
            return []
    return _expand(current, schema)


def _allows_type(node: dict, name: str) -> bool:
    declared = node.get("type")
    return declared == name or (isinstance(declared, list) and name in declared)


def declared_types(subschemas: Sequence[dict]) -> set[str] | None:
    """Union of the JSON types the subschemas declare; None when any of them allows all."""
    types: set[str] = set()
    for node in subschemas:
        declared = node.get("type")
        if declared is None:
            if not any(k in node for k in ("$ref", "allOf", "anyOf", "oneOf")):
                return None
            continue
        types.update([declared] if isinstance(declared, str) else declared)
    return types
