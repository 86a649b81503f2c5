"""Strings that match a regular expression, for ``pattern`` in structured outputs.

:func:`matching` walks the parse tree of the pattern (Python's own regex
parser, which reads the ECMA-262 subset JSON schemas use alike) and builds a
string the pattern matches: literals as written, a class's member (chosen by
``pick``), a repeat between its minimum and a few more, the chosen branch of an
alternation, a back reference as its group's text; anchors and lookarounds add
nothing. The result is then checked with :func:`re.search` (a JSON schema
``pattern`` is not anchored): None when the pattern cannot be parsed, uses
what the walk does not know, or the built string does not match (e.g. a
lookahead it ignored).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

try:  # Python 3.11+: the parser behind `re`
    from re import _constants as _c
    from re import _parser as _p
except ImportError:  # pragma: no cover - older Pythons
    import sre_constants as _c  # type: ignore[no-redef]
    import sre_parse as _p  # type: ignore[no-redef]

#: Extra repetitions beyond a repeat's minimum (``*``, ``+``, ``{2,}``…).
MAX_EXTRA_REPEATS = 3
#: Longest string built; a pattern needing more gives None.
MAX_CHARS = 10_000

_CATEGORY_CHARS = {
    _c.CATEGORY_DIGIT: "0123456789",
    _c.CATEGORY_NOT_DIGIT: "abcxyz",
    _c.CATEGORY_WORD: "abcxyz0123_",
    _c.CATEGORY_NOT_WORD: "-. ",
    _c.CATEGORY_SPACE: " ",
    _c.CATEGORY_NOT_SPACE: "abcxyz0123",
    _c.CATEGORY_LINEBREAK: "\n",
    _c.CATEGORY_NOT_LINEBREAK: "abcxyz",
}
#: Characters tried for a negated class or '.', in order.
_FALLBACK = "abcxyzABC0123_-. "


class _Unsupported(Exception):
    pass


def matching(pattern: str, pick: Callable[[int], int], attempts: int = 4) -> str | None:
    """A string ``pattern`` matches (``pick(n)`` chooses in ``range(n)``), or None."""
    try:
        compiled = re.compile(pattern)
        tree = _p.parse(pattern)
    except (re.error, RecursionError, OverflowError, ValueError):
        return None
    for _ in range(attempts):
        try:
            text = _Walk(pick).build(tree)
        except (_Unsupported, RecursionError):
            return None
        if compiled.search(text):
            return text
    return None


class _Walk:
    def __init__(self, pick: Callable[[int], int]):
        self.pick = pick
        self.groups: dict[int, str] = {}
        self.size = 0

    def build(self, items: Any) -> str:
        return "".join(self.item(op, av) for op, av in items)

    def item(self, op: Any, av: Any) -> str:
        if op is _c.LITERAL:
            return self.emit(chr(av))
        if op is _c.NOT_LITERAL:
            return self.emit(next(ch for ch in _FALLBACK if ord(ch) != av))
        if op is _c.ANY:
            return self.emit(_FALLBACK[self.pick(6)])
        if op is _c.IN:
            return self.emit(self.member(av))
        if op is _c.BRANCH:
            branches = av[1]
            return self.build(branches[self.pick(len(branches))])
        if op is _c.SUBPATTERN:
            group, _, _, items = av
            text = self.build(items)
            if group is not None:
                self.groups[group] = text
            return text
        if op is _c.ATOMIC_GROUP:
            return self.build(av)
        if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", None)):
            low, high, items = av
            if high is _c.MAXREPEAT:
                high = low + MAX_EXTRA_REPEATS
            count = low + self.pick(min(high, low + MAX_EXTRA_REPEATS) - low + 1)
            return "".join(self.build(items) for _ in range(count))
        if op is _c.GROUPREF:
            return self.emit(self.groups.get(av, ""))
        if op in (_c.AT, _c.ASSERT, _c.ASSERT_NOT):
            return ""
        raise _Unsupported(op)

    def emit(self, text: str) -> str:
        self.size += len(text)
        if self.size > MAX_CHARS:
            raise _Unsupported("too long")
        return text

    def member(self, items: list[tuple[Any, Any]]) -> str:
        """A character of a class ``[...]``."""
        if items and items[0][0] is _c.NEGATE:
            rest = items[1:]
            for ch in _FALLBACK:
                if not any(_in(ch, op, av) for op, av in rest):
                    return ch
            raise _Unsupported("negated class")
        op, av = items[self.pick(len(items))]
        if op is _c.LITERAL:
            return chr(av)
        if op is _c.RANGE:
            low, high = av
            return chr(low + self.pick(min(high - low + 1, 26)))
        if op is _c.CATEGORY and av in _CATEGORY_CHARS:
            chars = _CATEGORY_CHARS[av]
            return chars[self.pick(len(chars))]
        raise _Unsupported(op)


def _word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


_CATEGORY_TESTS: dict[Any, Callable[[str], bool]] = {
    _c.CATEGORY_DIGIT: str.isdigit,
    _c.CATEGORY_NOT_DIGIT: lambda ch: not ch.isdigit(),
    _c.CATEGORY_WORD: _word,
    _c.CATEGORY_NOT_WORD: lambda ch: not _word(ch),
    _c.CATEGORY_SPACE: str.isspace,
    _c.CATEGORY_NOT_SPACE: lambda ch: not ch.isspace(),
}


def _in(ch: str, op: Any, av: Any) -> bool:
    """Whether ``ch`` is in one item of a class (unknown items: assumed so)."""
    if op is _c.LITERAL:
        return ord(ch) == av
    if op is _c.RANGE:
        return av[0] <= ord(ch) <= av[1]
    if op is _c.CATEGORY:
        test = _CATEGORY_TESTS.get(av)
        return test is None or test(ch)
    return True
