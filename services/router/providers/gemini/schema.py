"""JSON Schema -> Gemini's OpenAPI-subset Schema (`gemini_schema`), for tool parameters.

Types upper-cased, `["T", "null"]` -> `nullable`, several types -> `anyOf`,
`oneOf` -> `anyOf`, `const` -> one-value `enum`, local `$ref`s (`#/$defs/…`,
`#/definitions/…`) inlined, a one-element `allOf` merged. Annotation and
loosening-only keywords Gemini has no field for are dropped (`$schema`, `$id`,
`$comment`, `additionalProperties`, `examples`, `readOnly`, `writeOnly`,
`deprecated`, `uniqueItems`, `multipleOf`, `exclusiveMinimum`,
`exclusiveMaximum`, `strict`, …), as are unknown keywords (JSON Schema ignores
those too). Keywords that change the shape of valid values are rejected with
400: `not`, several-element `allOf`, `if`/`then`/`else`, `patternProperties`,
`prefixItems`, tuple `items`, `dependentSchemas`, `contains`, `propertyNames`,
recursive or non-local `$ref`, non-string `enum`.
"""

from __future__ import annotations

from typing import Any

from lockgate.errors import InvalidRequest

_SCHEMA_COPIED = frozenset({
    "format", "title", "description", "nullable", "minItems", "maxItems", "minProperties",
    "maxProperties", "minLength", "maxLength", "pattern", "minimum", "maximum", "default",
    "example", "propertyOrdering",
})  # fmt: skip
_SCHEMA_REJECTED = frozenset({
    "not", "if", "then", "else", "patternProperties", "prefixItems", "dependentSchemas",
    "dependentRequired", "contains", "minContains", "maxContains", "propertyNames",
    "$dynamicRef", "$recursiveRef",
})  # fmt: skip
_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object", "null"})
_MAX_SCHEMA_DEPTH = 32


def gemini_schema(schema: Any, param: str) -> dict:
    """A JSON Schema converted to Gemini's Schema object (see the module docstring)."""
    return _SchemaConverter(schema, param).convert(schema, "", 0, ())


class _SchemaConverter:
    def __init__(self, root: Any, param: str):
        self.root = root
        self.param = param

    def fail(self, where: str, why: str) -> InvalidRequest:
        at = f"{self.param}{where}" if where else self.param
        return InvalidRequest(f"'{at}': {why} (not supported by Gemini)", param=self.param)

    def convert(self, schema: Any, where: str, depth: int, refs: tuple[str, ...]) -> dict:
        if not isinstance(schema, dict):
            if schema is True or schema == {}:
                return {}
            raise self.fail(where, "a schema must be an object")
        if depth > _MAX_SCHEMA_DEPTH:
            raise self.fail(where, "the schema is nested too deeply")
        if "$ref" in schema:
            return self.resolve(schema, where, depth, refs)
        for keyword in schema:
            if keyword in _SCHEMA_REJECTED:
                raise self.fail(where, f"JSON Schema keyword '{keyword}'")
        kinds, nullable = self.types(schema.get("type"), where)
        if len(kinds) > 1:  # several types: one branch per type, each with the other keywords
            out: dict[str, Any] = {"anyOf": [
                self.convert({**schema, "type": k}, f"{where}.type[{n}]", depth + 1, refs)
                for n, k in enumerate(kinds)
            ]}
            if nullable:
                out["nullable"] = True
            return out
        out = {}
        all_of = schema.get("allOf")
        if all_of is not None:
            if not isinstance(all_of, list) or len(all_of) != 1:
                raise self.fail(where, "'allOf' with several schemas")
            out.update(self.convert(all_of[0], f"{where}.allOf[0]", depth + 1, refs))
        if kinds:
            out["type"] = kinds[0].upper()
        elif nullable:
            out["type"] = "NULL"
        if nullable and kinds:
            out["nullable"] = True
        for keyword in _SCHEMA_COPIED:
            if keyword in schema:
                out[keyword] = schema[keyword]
        if "const" in schema:
            if not isinstance(schema["const"], str):
                raise self.fail(where, "a non-string 'const'")
            out["enum"] = [schema["const"]]
        if "enum" in schema:
            enum = schema["enum"]
            if not isinstance(enum, list) or not all(isinstance(v, str) for v in enum):
                raise self.fail(where, "an 'enum' of non-string values")
            out["enum"] = enum
        properties = schema.get("properties")
        if properties is not None:
            if not isinstance(properties, dict):
                raise self.fail(where, "'properties' must be an object")
            out["properties"] = {
                str(name): self.convert(sub, f"{where}.properties.{name}", depth + 1, refs)
                for name, sub in properties.items()
            }
            out.setdefault("type", "OBJECT")
        required = schema.get("required")
        if required is not None:
            if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
                raise self.fail(where, "'required' must be an array of strings")
            out["required"] = required
        items = schema.get("items")
        if items is not None:
            if not isinstance(items, dict | bool):
                raise self.fail(where, "tuple-form 'items'")
            out["items"] = self.convert(items, f"{where}.items", depth + 1, refs)
            out.setdefault("type", "ARRAY")
        for combinator in ("anyOf", "oneOf"):
            options = schema.get(combinator)
            if options is None:
                continue
            if not isinstance(options, list) or not options:
                raise self.fail(where, f"'{combinator}' must be a non-empty array")
            out["anyOf"] = out.get("anyOf", []) + [
                self.convert(o, f"{where}.{combinator}[{k}]", depth + 1, refs)
                for k, o in enumerate(options)
            ]
        return out

    def types(self, kind: Any, where: str) -> tuple[list[str], bool]:
        """(the non-null types of a `type` keyword, lower-cased; whether null is one)."""
        if kind is None:
            return [], False
        kinds = kind if isinstance(kind, list) else [kind]
        if not kinds or not all(isinstance(k, str) and k.lower() in _TYPES for k in kinds):
            raise self.fail(where, f"'type' {str(kind)[:60]}")
        lowered = list(dict.fromkeys(k.lower() for k in kinds))
        return [k for k in lowered if k != "null"], "null" in lowered

    def resolve(self, schema: dict, where: str, depth: int, refs: tuple[str, ...]) -> dict:
        ref = schema["$ref"]
        if not isinstance(ref, str) or not ref.startswith(("#/$defs/", "#/definitions/")):
            raise self.fail(where, f"'$ref' {str(ref)[:80]!r} (only local #/$defs refs)")
        if ref in refs:
            raise self.fail(where, f"recursive '$ref' {ref[:80]!r}")
        target: Any = self.root
        for token in ref[2:].split("/"):
            token = token.replace("~1", "/").replace("~0", "~")
            target = target.get(token) if isinstance(target, dict) else None
        if target is None:
            raise self.fail(where, f"unresolvable '$ref' {ref[:80]!r}")
        resolved = self.convert(target, f"{where}.$ref", depth + 1, (*refs, ref))
        siblings = {k: v for k, v in schema.items() if k != "$ref"}
        if siblings:
            resolved.update(self.convert(siblings, where, depth + 1, refs))
        return resolved
