"""A logic-less template language for prompts: substitutions, conditions, loops; no code.

Syntax (a small subset of Handlebars/Mustache, so editors and people know it):

    {{ name }}               the input value ``name``
    {{ customer.name }}      a field of an object value (dots only; no indexing)
    {{#if name}}…{{/if}}     the body when ``name`` is truthy: not missing, null, false,
                             "", 0 or [] (an object, even empty, is truthy: Handlebars)
    {{#if name}}…{{else}}…{{/if}}
    {{#unless name}}…{{/unless}}   the body when ``name`` is falsy ({{else}} allowed)
    {{#each list}}…{{/each}} the body once per array item ({{else}}: when empty/missing)
        {{this}}, {{this.field}}     the current item (innermost loop)
        {{@index}}                   its position from 0; {{@first}}, {{@last}}: booleans
    {{! comment }}, {{!-- comment with }} inside --}}   removed
    \\{{                      a literal ``{{`` (``\\\\{{ x }}``: a backslash, then the value)

Values render as: strings as they are; numbers and booleans as JSON (``3``, ``2.5``,
``true``); null or a missing value as nothing; objects and arrays as compact JSON.
Nothing is HTML-escaped (prompts are not HTML). Names are ``[A-Za-z_][A-Za-z0-9_]*``;
``this``, ``else`` and names starting with ``__`` are reserved. A name is always looked
up from the input's top level, inside loops too (only ``this`` is the loop item; there
is no ``../``). A line holding only a block tag (``#if``, ``else``, ``/each``…) or a
comment, plus spaces, is removed whole, as in Mustache, so block tags can sit on their
own lines. Anything else (``{% %}``, ``${}``, a lone ``}}``) is plain text.

Safety: a template is parsed once (``compile_template``) into a tree of text, value
and block nodes; rendering walks that tree and only ever reads JSON data (dict keys,
list items): no attribute access, no calls, no filters. A value is inserted as text and
never parsed again, so input containing ``{{ secret }}`` or ``{% … %}`` renders as
itself. Output size (``MAX_OUTPUT_BYTES``), work (``MAX_RENDER_STEPS``), template size,
tag count, block nesting and path length are bounded.

Why not Jinja2: its expressions reach Python objects, and its SandboxedEnvironment has
been escaped repeatedly through exactly that (CVE-2016-10745 and CVE-2019-10906 via
``str.format``/``format_map``, CVE-2024-56326 via an indirect ``str.format`` call,
CVE-2025-27516 via the ``|attr`` filter). Templates here are written by API publishers
and rendered on the gateway, so the language has no expressions at all.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lockgate.errors import InvalidRequest
from lockgate.prompts.schema_paths import ITEMS, declared_types, subschemas_at

MAX_TEMPLATE_CHARS = 256 * 1024
MAX_TAGS = 10_000
MAX_BLOCK_DEPTH = 16
MAX_PATH_SEGMENTS = 16
MAX_OUTPUT_BYTES = 1024 * 1024
#: Nodes visited while rendering: bounds loops whose bodies output little or nothing.
MAX_RENDER_STEPS = 500_000

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_PATH = re.compile(rf"(?:this|{_NAME})(?:\.{_NAME})*|@index|@first|@last")
_BLOCK = re.compile(r"#(\w+)(?:\s+(.*))?", re.DOTALL)
_CLOSE = re.compile(r"/\s*(\w+)")
_BLOCKS = ("if", "unless", "each")
_META = ("@index", "@first", "@last")


class TemplateError(InvalidRequest):
    """A template refused at publish time, with the 1-based line and column."""

    default_code = "invalid_template"

    def __init__(self, reason: str, line: int, column: int, *, param: str = "template"):
        super().__init__(f"{param}: line {line}, column {column}: {reason}", param=param)
        self.reason = reason
        self.line = line
        self.column = column


class RenderError(InvalidRequest):
    """Rendering went over a bound (the input makes the prompt too large)."""

    default_code = "prompt_too_large"

    def __init__(self, message: str):
        super().__init__(message, param="input")


@dataclass(frozen=True, slots=True)
class Reference:
    """One use of an input value: its path from the input's top level (``ITEMS``,
    ``"[]"``, for "an item of"), how it is used, and where."""

    path: tuple[str, ...]
    usage: str  # "value", "if", "unless" or "each"
    line: int
    column: int

    @property
    def dotted(self) -> str:
        """``customer.name``, ``items[].title``."""
        return ".".join(self.path).replace(".[]", "[]")


# --- tree ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Text:
    text: str


@dataclass(frozen=True, slots=True)
class _Value:
    scope: str  # "root", "this" (innermost loop item) or "meta" (@index…)
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Block:
    kind: str
    value: _Value
    body: tuple
    otherwise: tuple


_MISSING = object()


class Template:
    """A parsed template: immutable, safe to share between requests."""

    __slots__ = ("source", "references", "variables", "_nodes")

    def __init__(self, source: str, nodes: tuple, references: tuple[Reference, ...]):
        self.source = source
        self._nodes = nodes
        #: Every use of an input value, in template order.
        self.references = references
        #: Top-level input names the template uses, in order of first use.
        self.variables: tuple[str, ...] = tuple(dict.fromkeys(r.path[0] for r in references))

    def __repr__(self) -> str:
        return f"Template(variables={self.variables!r})"

    def check_schema(self, schema: Mapping[str, Any], *, param: str = "template") -> None:
        """Raise ``TemplateError`` at the first use of a name the schema does not declare,
        or a loop over something the schema declares as not an array."""
        for ref in self.references:
            found = subschemas_at(schema, ref.path)
            if not found:
                raise TemplateError(
                    f"{ref.dotted!r} is not declared in the input schema",
                    ref.line, ref.column, param=param,
                )
            types = declared_types(found)
            if ref.usage == "each" and types is not None and "array" not in types:
                raise TemplateError(
                    f"#each needs an array, but {ref.dotted!r} is declared as "
                    + " or ".join(sorted(types)),
                    ref.line, ref.column, param=param,
                )

    def render(self, data: Mapping[str, Any], *, max_bytes: int = MAX_OUTPUT_BYTES) -> str:
        """The text for one input (already validated); ``RenderError`` past the bounds."""
        out = _Output(max_bytes)
        _render(self._nodes, data, (), out)
        return "".join(out.parts)


class _Output:
    __slots__ = ("parts", "size", "limit", "steps")

    def __init__(self, limit: int):
        self.parts: list[str] = []
        self.size = 0
        self.limit = limit
        self.steps = 0

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_RENDER_STEPS:
            raise RenderError(f"rendering the prompt took over {MAX_RENDER_STEPS} steps")

    def write(self, text: str) -> None:
        if not text:
            return
        self.size += len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
        if self.size > self.limit:
            raise RenderError(f"the rendered prompt is over the limit of {self.limit} bytes")
        self.parts.append(text)


def _lookup(value: _Value, data: Any, frames: tuple) -> Any:
    if value.scope == "meta":
        index, length = frames[-1][1], frames[-1][2]
        name = value.names[0]
        return index if name == "@index" else index == 0 if name == "@first" else (
            index == length - 1
        )
    current = frames[-1][0] if value.scope == "this" else data
    for name in value.names:
        # JSON data only: dict keys, never attributes.
        if isinstance(current, dict) and name in current:
            current = current[name]
        else:
            return _MISSING
    return current


def _truthy(value: Any) -> bool:
    if value is _MISSING or value is None or value is False:
        return False
    if isinstance(value, str | list):
        return len(value) > 0
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value != 0
    return True


def to_text(value: Any) -> str:
    """How a value is inserted: strings as they are, everything else as compact JSON."""
    if value is _MISSING or value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    raise TypeError("template values must be JSON values")


def _render(nodes: tuple, data: Any, frames: tuple, out: _Output) -> None:
    for node in nodes:
        out.step()
        if type(node) is _Text:
            out.write(node.text)
        elif type(node) is _Value:
            out.write(to_text(_lookup(node, data, frames)))
        else:
            value = _lookup(node.value, data, frames)
            if node.kind == "each":
                if isinstance(value, list) and value:
                    length = len(value)
                    for index, item in enumerate(value):
                        out.step()
                        _render(node.body, data, (*frames, (item, index, length)), out)
                else:
                    _render(node.otherwise, data, frames, out)
            elif _truthy(value) == (node.kind == "if"):
                _render(node.body, data, frames, out)
            else:
                _render(node.otherwise, data, frames, out)


# --- parsing -------------------------------------------------------------------------

@dataclass(slots=True)
class _Tag:
    kind: str  # "value", "open", "close", "else", "comment"
    name: str  # block name for open/close; path for value/open
    start: int  # offset of "{{"
    line: int
    column: int


class _Positions:
    def __init__(self, text: str):
        self.newlines = [i for i, ch in enumerate(text) if ch == "\n"]

    def at(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_left(self.newlines, offset)
        start = self.newlines[line - 1] + 1 if line else 0
        return line + 1, offset - start + 1


def _tokenize(text: str, positions: _Positions, param: str) -> list:
    """Text strings and ``_Tag``s, in order."""
    tokens: list = []
    buffer: list[str] = []
    pos = 0
    tags = 0

    def fail(reason: str, offset: int) -> TemplateError:
        return TemplateError(reason, *positions.at(offset), param=param)

    while True:
        start = text.find("{{", pos)
        if start < 0:
            buffer.append(text[pos:])
            break
        chunk = text[pos:start]
        if chunk.endswith("\\") and not chunk.endswith("\\\\"):
            buffer.append(chunk[:-1] + "{{")  # \{{ is a literal {{
            pos = start + 2
            continue
        # \\{{ is one backslash, then a tag.
        buffer.append(chunk[:-1] if chunk.endswith("\\\\") else chunk)
        if text.startswith("{{!--", start):
            end = text.find("--}}", start + 5)
            if end < 0:
                raise fail("unclosed comment: '{{!--' needs '--}}'", start)
            stop = end + 4
            content = "!"
        else:
            end = text.find("}}", start + 2)
            if end < 0:
                raise fail("unclosed tag: '{{' needs '}}'", start)
            stop = end + 2
            content = text[start + 2:end]
            if content.startswith("!"):
                content = "!"
            elif "{{" in content:
                raise fail("unclosed tag: '{{' needs '}}' before the next '{{'", start)
        tags += 1
        if tags > MAX_TAGS:
            raise fail(f"more than {MAX_TAGS} tags", start)
        tokens.append("".join(buffer))
        buffer = []
        tokens.append(_parse_tag(content, start, positions, fail))
        pos = stop
    tokens.append("".join(buffer))
    return tokens


def _parse_tag(content: str, start: int, positions: _Positions, fail) -> _Tag:
    line, column = positions.at(start)
    if content == "!":
        return _Tag("comment", "", start, line, column)
    body = content.strip()
    shown = body if len(body) <= 40 else body[:37] + "..."
    if not body:
        raise fail("empty tag '{{}}'", start)
    if body.startswith("{"):
        raise fail("triple braces are not supported: values are never escaped, "
                   "write {{ name }}", start)
    if body == "else":
        return _Tag("else", "", start, line, column)
    if body.startswith("#"):
        match = _BLOCK.fullmatch(body)
        if not match or match.group(1) not in _BLOCKS:
            raise fail(f"unknown block {{{{{shown}}}}}: blocks are #if, #unless and #each",
                       start)
        argument = (match.group(2) or "").strip()
        if not argument:
            raise fail(f"#{match.group(1)} needs a name: {{{{#{match.group(1)} name}}}}",
                       start)
        _check_path(argument, start, fail)
        return _Tag("open", f"{match.group(1)} {argument}", start, line, column)
    if body.startswith("/"):
        match = _CLOSE.fullmatch(body)
        if not match or match.group(1) not in _BLOCKS:
            raise fail(f"unknown closing tag {{{{{shown}}}}}", start)
        return _Tag("close", match.group(1), start, line, column)
    _check_path(body, start, fail)
    return _Tag("value", body, start, line, column)


def _check_path(path: str, start: int, fail) -> None:
    shown = path if len(path) <= 40 else path[:37] + "..."
    if not _PATH.fullmatch(path):
        raise fail(
            f"unknown syntax {{{{{shown}}}}}: expected a name such as {{{{ customer.name }}}} "
            "(letters, digits and _; only {{#if}}, {{#unless}}, {{#each}}, {{else}} "
            "and {{! comments }} are tags)",
            start,
        )
    parts = path.split(".")
    if len(parts) > MAX_PATH_SEGMENTS:
        raise fail(f"a name has more than {MAX_PATH_SEGMENTS} parts", start)
    if any(p.startswith("__") for p in parts):
        raise fail("names starting with '__' are reserved", start)
    if "this" in parts[1:]:
        raise fail("'this' can only start a name", start)


def _standalone(tokens: list) -> None:
    """Remove lines that hold only a block tag or comment, as Mustache does."""
    trims: dict[int, list[bool]] = {}
    last = len(tokens) - 1
    for i in range(1, last, 2):
        tag = tokens[i]
        if tag.kind not in ("open", "close", "else", "comment"):
            continue
        before, after = tokens[i - 1], tokens[i + 1]
        head = before.rsplit("\n", 1)[-1]
        tail = after.split("\n", 1)[0]
        alone_before = not head.strip(" \t") and ("\n" in before or i == 1)
        alone_after = not tail.strip(" \t\r") and ("\n" in after or i + 1 == last)
        if alone_before and alone_after:
            trims.setdefault(i - 1, [False, False])[1] = True
            trims.setdefault(i + 1, [False, False])[0] = True
    for index, (cut_head, cut_tail) in trims.items():
        text = tokens[index]
        begin = text.find("\n") + 1 if cut_head and "\n" in text else (
            len(text) if cut_head else 0
        )
        end = text.rfind("\n") + 1 if cut_tail else len(text)
        tokens[index] = text[begin:end] if begin <= end else ""


def _build(tokens: list, positions: _Positions, param: str) -> tuple[tuple, list[Reference]]:
    references: list[Reference] = []
    # Open blocks: (tag, kind, value, body, otherwise, loop path or None, else seen)
    stack: list[list] = []
    loops: list[tuple[str, ...]] = []  # absolute paths of enclosing #each lists
    root: list = []

    def fail(reason: str, tag: _Tag) -> TemplateError:
        return TemplateError(reason, tag.line, tag.column, param=param)

    def current() -> list:
        if not stack:
            return root
        return stack[-1][4] if stack[-1][6] else stack[-1][3]

    def resolve(path: str, tag: _Tag, usage: str) -> _Value:
        names = tuple(path.split("."))
        if names[0] in _META:
            if not loops:
                raise fail(f"{names[0]} is only available inside {{{{#each}}}}", tag)
            return _Value("meta", names)
        if names[0] == "this":
            if not loops:
                raise fail("'this' is only available inside {{#each}}", tag)
            absolute = (*loops[-1], ITEMS, *names[1:])
            references.append(Reference(absolute, usage, tag.line, tag.column))
            return _Value("this", names[1:])
        references.append(Reference(names, usage, tag.line, tag.column))
        return _Value("root", names)

    for token in tokens:
        if isinstance(token, str):
            if token:
                current().append(_Text(token))
            continue
        tag = token
        if tag.kind == "comment":
            continue
        if tag.kind == "value":
            value = resolve(tag.name, tag, "value")
            current().append(value)
        elif tag.kind == "open":
            kind, path = tag.name.split(" ", 1)
            if len(stack) >= MAX_BLOCK_DEPTH:
                raise fail(f"blocks nest deeper than {MAX_BLOCK_DEPTH} levels", tag)
            value = resolve(path, tag, kind)
            loop = None
            if kind == "each":
                if value.scope == "meta":
                    raise fail(f"#each needs a list, not {path}", tag)
                loop = references[-1].path
            stack.append([tag, kind, value, [], [], loop, False])
            if loop is not None:
                loops.append(loop)
        elif tag.kind == "else":
            if not stack:
                raise fail("{{else}} outside of a block", tag)
            if stack[-1][6]:
                raise fail(f"a second {{{{else}}}} in the {{{{#{stack[-1][1]}}}}} block", tag)
            stack[-1][6] = True
            if stack[-1][5] is not None:
                loops.pop()  # {{else}} of #each renders outside the loop
        else:
            if not stack:
                raise fail(f"{{{{/{tag.name}}}}} closes nothing", tag)
            opened, kind, value, body, otherwise, loop, seen_else = stack.pop()
            if kind != tag.name:
                raise fail(
                    f"{{{{/{tag.name}}}}} does not match {{{{#{kind}}}}} "
                    f"opened at line {opened.line}, column {opened.column}", tag
                )
            if loop is not None and not seen_else:
                loops.pop()
            current().append(_Block(kind, value, tuple(body), tuple(otherwise)))
    if stack:
        opened = stack[-1][0]
        raise fail(f"{{{{#{stack[-1][1]}}}}} is never closed with {{{{/{stack[-1][1]}}}}}",
                   opened)
    return tuple(root), references


def compile_template(
    text: str, *, input_schema: Mapping[str, Any] | None = None, param: str = "template"
) -> Template:
    """Parse ``text`` once (at publish time); with ``input_schema``, also check that every
    name it uses is declared there. Raises ``TemplateError`` with line and column."""
    if not isinstance(text, str):
        raise TemplateError("must be a string", 1, 1, param=param)
    if len(text) > MAX_TEMPLATE_CHARS:
        raise TemplateError(f"is over {MAX_TEMPLATE_CHARS} characters", 1, 1, param=param)
    positions = _Positions(text)
    tokens = _tokenize(text, positions, param)
    _standalone(tokens)
    nodes, references = _build(tokens, positions, param)
    template = Template(text, nodes, tuple(references))
    if input_schema is not None:
        template.check_schema(input_schema, param=param)
    return template
