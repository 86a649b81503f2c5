"""The embedded policy engine: Rego policies under `policies/`, run by regopy
(Microsoft's rego-cpp) inside the calling process.

Layout of a policy root (default: the repository's `policies/`):

* every `*.rego` file is a module (`*_test.rego` files are tests: loaded only
  by `lockgate.policy_tests.run_policy_tests`);
* every `data.json` must hold a JSON object, mounted in `data` at the path of
  its folder: `policies/lockgate/access/data.json` holding `{"admin_roles": …}`
  becomes `data.lockgate.access.admin_roles` (a `data.json` at the root is
  merged into `data` itself). Two files that set the same key are an error.

Entry points are named `<package path>/<rule>` with the dots of the package
replaced by slashes: rule `decision` of `package lockgate.access` is
`lockgate/access/decision`. Each entry point is compiled once into a regopy
bundle that every later `evaluate` reuses; rules marked `# entrypoint: true`
in their METADATA are compiled when the engine is built, so a policy that does
not compile fails at startup, not on the first request.

A bundle is compiled from only the modules its entry points can reach (their
package, and every package a module refers to through `data.`, transitively):
rego-cpp puts every loaded rule into a bundle and re-verifies the whole bundle
on every query, so one bundle built from all the policies made each access
decision ≈ 30 % slower than one built from the access policy alone
(docs/performance.md). Each declared entry point gets its own bundle, compiled
by a fresh interpreter, since an interpreter's entry points accumulate.

Thread-safety: an engine holds one rego-cpp interpreter, whose input is state
(set, then query), and ctypes releases the GIL during native calls. Every
evaluation therefore runs under a lock: it is safe from any thread, and
evaluations are serialized (each takes a fraction of a millisecond; we call
it from one event-loop thread anyway).

rego-cpp 1.5.2 quirks this module works around (see also policies/README.md):

* strings given through regopy's `Input` API are stored unescaped, so a value
  with `"`, `\\` or a control character compares wrongly (a NUL truncates it);
  such inputs go through JSON text instead (`ensure_ascii=False`: rego-cpp
  compares strings by their JSON spelling, so `\\u00e9` would not equal `é`);
* integers outside int64 wrap silently in the `Input` API: also sent as JSON;
* some errors come back as a successful output whose text is an S-expression
  `(error …)` (even inside an otherwise JSON value), others as a failed output
  whose message is only in the node tree, and compile errors are printed to
  stdout unless logging is off: all become PolicyError here;
* data silently replaces a rule of the same path: refused at load;
* `with input as {…}` in a test crashes the process (SIGSEGV) when the rule
  under test uses another rule or function: `run_policy_tests` runs tests in a
  child process, and tests should override fields (`with input.request as …`).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import math
import os
import re
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import regopy
from regopy import rego_shared as _native

DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "policies"
TEST_SUFFIX = "_test.rego"
DATA_FILE = "data.json"

_lib = _native.rego  # the ctypes library; argtypes/restypes are declared by regopy
_OK = 0
_NODE_ERROR = 1800
_NODE_ERROR_MESSAGE = 1801
_NODE_ERROR_CODE = 1803
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# A string the Input API would store differently from its JSON spelling.
_NEEDS_ESCAPING = re.compile(r'["\\\x00-\x1f]').search

_PACKAGE = re.compile(r"^package[ \t]+([A-Za-z_][\w.]*)", re.MULTILINE)
_TEST_RULE = re.compile(r"^(test_\w+)\b(?![ \t]*\()", re.MULTILINE)
_METADATA = re.compile(r"^# METADATA[ \t]*\n((?:#[^\n]*\n)*)([^\n]*)", re.MULTILINE)
_ENTRYPOINT_TRUE = re.compile(r"^#\s*entrypoint:\s*true\s*$", re.MULTILINE)
_RULE_HEADS = re.compile(r"^(?:default[ \t]+)?([A-Za-z_]\w*)", re.MULTILINE)
#: A reference into `data` (group 1: the path named, `data.a.b` -> ".a.b"; bare
#: `data`, or `data.a[x]`, refer to everything under the path given), outside
#: strings and comments (matched, and skipped, by the other alternatives).
_DATA_REF = re.compile(
    r'"(?:[^"\\\n]|\\.)*"|`[^`]*`|#[^\n]*|\bdata((?:\.[A-Za-z_]\w*)*)\b'
)
_KEYWORDS = frozenset(
    "package import default else not some every with if contains in as true false null".split()
)


class PolicyError(Exception):
    """A policy failed to load, compile or evaluate.

    The message names the file (`path:line:col`) or the entry point, then
    rego-cpp's own message.
    """


class Evaluator(Protocol):
    """What services need of policies: PolicyEngine, LivePolicy (hot reload), or
    RemotePolicy (an OPA server; lockgate/remote_policy.py).

    `evaluate_async` is the call that works with all three: a remote evaluation
    is network I/O and must not block the event loop (RemotePolicy.evaluate
    refuses to run on it), while the embedded engines answer it at once.
    """

    @property
    def revision(self) -> str: ...

    def evaluate(self, entrypoint: str, input: Any) -> Any: ...

    async def evaluate_async(self, entrypoint: str, input: Any) -> Any: ...


class PolicyEngine:
    """Loaded policies and data, with compiled entry points.

    >>> engine = PolicyEngine()
    >>> engine.evaluate("lockgate/access/decision", {"credential": {"present": False}})["code"]
    'missing_api_key'
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        include_tests: bool | Iterable[str | os.PathLike[str]] = False,
    ):
        """Load every module and data file under `root` (default `DEFAULT_ROOT`).

        `include_tests` also loads the `*_test.rego` files: all of them (True)
        or those listed (for the test runner). Raises
        PolicyError when the root is missing, a file does not parse, data is
        not a JSON object or conflicts, or a declared entry point does not compile.
        """
        self.root = Path(root) if root is not None else DEFAULT_ROOT
        if not self.root.is_dir():
            raise PolicyError(f"{self.root}: policy directory not found")
        self._lock = threading.Lock()
        self._interpreter = regopy.Interpreter()
        self._interpreter.log_level = regopy.LogLevel.NONE  # errors are raised, not printed
        self._impl = self._interpreter._impl
        self._bundles: dict[str, tuple[regopy.Bundle, bytes]] = {}
        self._sources: dict[str, str] = {}
        #: What a fresh compiling interpreter is given (see `_compiler`).
        self._data_json = "{}"

        digest = hashlib.sha256()
        if isinstance(include_tests, bool):
            wanted = None if include_tests else set()
        else:
            wanted = {Path(p).resolve() for p in include_tests}
        modules = [
            p
            for p in _files(self.root, "*.rego")
            if not _is_test(p) or wanted is None or p.resolve() in wanted
        ]
        entrypoints: list[str] = []
        for path in modules:
            name = self._name(path)
            source = _read_text(path, name)
            self._sources[name] = source
            if not _is_test(path):
                _hash(digest, "rego", name, source)
                entrypoints.extend(_declared_entrypoints(source))
            try:
                self._interpreter.add_module(name, source)
            except regopy.RegoError as exc:
                raise PolicyError(self._describe(str(exc), name)) from None

        data: dict[str, Any] = {}
        owners: dict[tuple[str, ...], str] = {}
        for path in _files(self.root, DATA_FILE):
            name = self._name(path)
            text = _read_text(path, name)
            _hash(digest, "data", name, text)
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise PolicyError(
                    f"{name}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}"
                ) from None
            if not isinstance(value, dict):
                raise PolicyError(f"{name}: must hold a JSON object, not {type(value).__name__}")
            _mount(data, owners, path.parent.relative_to(self.root).parts, value, name)
        _check_shadowing(data, owners, self._sources)
        self._data_json = json.dumps(data, ensure_ascii=False)
        try:
            self._interpreter.add_data_json(self._data_json)
        except regopy.RegoError as exc:
            raise PolicyError(self._describe(str(exc), DATA_FILE)) from None

        #: The modules (tests excluded) and data files loaded, relative to the root.
        self.files: tuple[str, ...] = tuple(
            n for n in self._sources if not n.endswith(TEST_SUFFIX)
        ) + tuple(self._name(p) for p in _files(self.root, DATA_FILE))
        #: Entry points declared `# entrypoint: true` in METADATA (compiled already).
        self.entrypoints: tuple[str, ...] = tuple(dict.fromkeys(entrypoints))
        #: sha256 (hex, 16 characters) of every loaded policy and data file, with
        #: their paths; tests excluded. Changes when a decision could change.
        self.revision: str = digest.hexdigest()[:16]
        for entrypoint in self.entrypoints:
            self._build((entrypoint,))

    def __repr__(self) -> str:
        return f"PolicyEngine({str(self.root)!r}, revision={self.revision!r})"

    def evaluate(self, entrypoint: str, input: Any) -> Any:
        """The value of `entrypoint` (e.g. "lockgate/access/decision") for this input.

        Returns Python objects (dict, list, str, int, float, bool, None; Rego
        sets become lists), or None when the rule is undefined for this input.
        An entry point naming no rule is undefined too (as in OPA's data API).
        Raises PolicyError when the entry point does not compile, evaluation
        fails (e.g. a complete rule with two values) or the input is not
        JSON-like.
        """
        with self._lock:
            bundle, name = self._bundles.get(entrypoint) or self._build((entrypoint,))[entrypoint]
            self._set_input(input)
            output = _lib.regoBundleQueryEntrypoint(self._impl, bundle._impl, name)
            return self._read_output(output, entrypoint)

    async def evaluate_async(self, entrypoint: str, input: Any) -> Any:
        """`evaluate`, for callers written for any Evaluator (see RemotePolicy).

        Runs on the calling thread: an evaluation takes a fraction of a
        millisecond, less than a hop to a worker thread would.
        """
        return self.evaluate(entrypoint, input)

    # -- internals ---------------------------------------------------------------

    def _name(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _build(self, entrypoints: Iterable[str]) -> dict[str, tuple[regopy.Bundle, bytes]]:
        """Compile entry points into one bundle, from only the modules they reach.

        Any interpreter can query a bundle: `_interpreter` queries them all (it
        holds the input), while each build gets a fresh one (`_compiler`), whose
        entry points are these alone.
        """
        entrypoints = tuple(entrypoints)
        label = ", ".join(entrypoints)
        for entrypoint in entrypoints:
            if not re.fullmatch(r"[A-Za-z_]\w*(/[A-Za-z_]\w*)*", entrypoint):
                raise PolicyError(
                    f"{entrypoint!r}: not an entry point (expected `package/path/rule`)"
                )
        try:
            bundle = self._compiler(entrypoints).build(None, entrypoints)
        except regopy.RegoError as exc:
            raise PolicyError(f"{label}: {self._describe(str(exc))}") from None
        if not bundle.ok():  # querying a bundle that is not ok can crash
            errors = _node_errors(_native.rego_bundle_node(bundle._impl))
            raise PolicyError(f"{label}: does not compile: {errors or 'unknown error'}")
        built = {e: (bundle, e.encode()) for e in entrypoints}
        self._bundles.update(built)
        return built

    def _compiler(self, entrypoints: tuple[str, ...]) -> regopy.Interpreter:
        """A new interpreter holding the data and the modules these entry points
        can reach (all already checked when they were loaded into `_interpreter`)."""
        compiler = regopy.Interpreter()
        compiler.log_level = regopy.LogLevel.NONE
        seeds = [tuple(e.split("/")) for e in entrypoints]
        for name in _reachable(self._sources, seeds):
            compiler.add_module(name, self._sources[name])
        compiler.add_data_json(self._data_json)
        return compiler

    def _set_input(self, value: Any) -> None:
        p_input = _lib.regoNewInput()
        try:
            fast = _put(p_input, value)
            if fast:
                fast = _lib.regoSetInput(self._impl, p_input) == _OK
        finally:
            _lib.regoFreeInput(p_input)
        if fast:
            return
        try:
            term = json.dumps(value, ensure_ascii=False, allow_nan=False, default=_json_default)
            _native.rego_set_input_term(self._impl, term)
        except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
            raise PolicyError(f"input is not a JSON document: {exc}") from None
        except regopy.RegoError as exc:
            raise PolicyError(f"input rejected: {self._describe(str(exc))}") from None

    def _read_output(self, output: int | None, what: str) -> Any:
        if not output:
            raise PolicyError(
                f"{what}: {_native.rego_get_error(self._impl) or 'evaluation failed'}"
            )
        try:
            if not _lib.regoOutputOk(output):
                errors = _node_errors(_lib.regoOutputNode(output))
                raise PolicyError(f"{what}: {errors or 'evaluation failed'}")
            text = _native.rego_output_string(output)
        except regopy.RegoError as exc:
            raise PolicyError(f"{what}: {exc}") from None
        finally:
            _lib.regoFreeOutput(output)
        if text == "undefined":
            return None
        if text.startswith("("):  # an error, as an S-expression
            raise PolicyError(f"{what}: {self._describe(text)}")
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            if "(error" in text:  # an error S-expression inside the value
                raise PolicyError(f"{what}: {self._describe(text)}") from None
            raise PolicyError(f"{what}: unreadable result {text[:200]!r}") from None
        if isinstance(parsed, list):  # several results: only a query can produce them
            if len(parsed) != 1:
                raise PolicyError(f"{what}: {len(parsed)} results, expected one")
            parsed = parsed[0]
        if not isinstance(parsed, dict):
            raise PolicyError(f"{what}: unexpected result {text[:200]!r}")
        expressions = parsed.get("expressions") or [None]
        return expressions[0]

    def _describe(self, text: str, default_file: str = "") -> str:
        """rego-cpp's error S-expressions as `file:line:col: message` lines."""
        errors = []
        for chunk in re.split(r"\(error(?=[\s)])", text)[1:]:
            message = _counted(chunk, "(errormsg ") or chunk.strip()[:200]
            code = _counted(chunk, "(errorcode ")
            where = default_file
            location = _counted(chunk, " ", with_rest=True) if chunk.startswith(" ") else None
            if location:  # ` <n>:<file>|<byte offset>|<length>`
                name, rest = location
                found = re.match(r"\|(\d+)\|", rest)
                where = self._position(name, int(found.group(1))) if found else name
            text_line = f"{where}: {message}" if where else message
            errors.append(f"{text_line} ({code})" if code else text_line)
        if not errors:
            return text.strip()[:500]
        return "; ".join(errors)

    def _position(self, name: str, offset: int) -> str:
        source = self._sources.get(name)
        if source is None:
            return name
        before = source.encode()[:offset].decode(errors="replace")
        line = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
        return f"{name}:{line}:{column}"


# -- input marshalling ------------------------------------------------------------

_new_string = _lib.regoInputString
_new_int = _lib.regoInputInt
_new_float = _lib.regoInputFloat
_new_bool = _lib.regoInputBoolean
_new_null = _lib.regoInputNull
_object_item = _lib.regoInputObjectItem
_new_object = _lib.regoInputObject
_new_array = _lib.regoInputArray


def _put(p: int, value: Any) -> bool:
    """Push `value` onto a regopy input stack; False when it must go as JSON instead."""
    kind = type(value)
    if kind is str:
        return not _NEEDS_ESCAPING(value) and _put_str(p, value)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or _NEEDS_ESCAPING(key) or not _put_str(p, key):
                return False
            if not _put(p, item) or _object_item(p) != _OK:
                return False
        return _new_object(p, len(value)) == _OK
    if kind is list or kind is tuple:
        for item in value:
            if not _put(p, item):
                return False
        return _new_array(p, len(value)) == _OK
    if kind is bool:
        return _new_bool(p, value) == _OK
    if kind is int:
        return _INT64_MIN <= value <= _INT64_MAX and _new_int(p, value) == _OK
    if value is None:
        return _new_null(p) == _OK
    if kind is float:
        return math.isfinite(value) and _new_float(p, value) == _OK
    return False  # subclasses, sets, …: json.dumps decides


def _put_str(p: int, value: str) -> bool:
    try:
        return _new_string(p, value.encode()) == _OK
    except UnicodeEncodeError:  # lone surrogates: let the JSON path report it
        return False


def _json_default(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# -- errors -------------------------------------------------------------------------


def _counted(chunk: str, marker: str, *, with_rest: bool = False) -> Any:
    """`<marker><n>:<n bytes>` in rego-cpp's S-expressions: the n bytes (and the rest)."""
    start = chunk.find(marker)
    if start < 0:
        return None
    found = re.match(r"(\d+):", chunk[start + len(marker) :])
    if not found:
        return None
    body = chunk[start + len(marker) + found.end() :].encode()
    size = int(found.group(1))
    value = body[:size].decode(errors="replace")
    if with_rest:
        return value, body[size:].decode(errors="replace")
    return value


def _node_value(node: int) -> str:
    size = _lib.regoNodeValueSize(node)
    buffer = ctypes.create_string_buffer(size + 1)
    if _lib.regoNodeValue(node, buffer, size + 1) != _OK:
        return ""
    return buffer.value.decode(errors="replace")


def _node_errors(node: int | None, depth: int = 0) -> str:
    """The messages (and codes) of the Error nodes under `node`."""
    if not node or depth > 8:
        return ""
    if _lib.regoNodeType(node) == _NODE_ERROR:
        message = code = ""
        for i in range(_lib.regoNodeSize(node)):
            child = _lib.regoNodeGet(node, i)
            kind = _lib.regoNodeType(child)
            if kind == _NODE_ERROR_MESSAGE:
                message = _node_value(child)
            elif kind == _NODE_ERROR_CODE:
                code = _node_value(child)
        return f"{message} ({code})" if code else message
    found = (
        _node_errors(_lib.regoNodeGet(node, i), depth + 1) for i in range(_lib.regoNodeSize(node))
    )
    return "; ".join(m for m in found if m)


# -- loading ------------------------------------------------------------------------


def _files(root: Path, pattern: str) -> list[Path]:
    """Files under root, sorted, skipping hidden folders and files."""
    return sorted(
        p
        for p in root.rglob(pattern)
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def _is_test(path: Path) -> bool:
    return path.name.endswith(TEST_SUFFIX)


def _read_text(path: Path, name: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{name}: cannot read: {exc}") from None


def _hash(digest: Any, kind: str, name: str, text: str) -> None:
    body = text.encode()
    digest.update(f"{kind}\0{name}\0{len(body)}\0".encode())
    digest.update(body)


def _mount(
    data: dict[str, Any],
    owners: dict[tuple[str, ...], str],
    folder: tuple[str, ...],
    value: dict[str, Any],
    name: str,
) -> None:
    """Merge `value` into `data` at `folder`; a key set twice is an error."""
    node = data
    for i, part in enumerate(folder):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise PolicyError(
                f"{name}: data.{'.'.join(folder[: i + 1])} is already set by {_owner(owners, folder[: i + 1])}"
            )
        node = child
    _merge(node, value, owners, folder, name)


def _merge(into: dict, value: dict, owners: dict, path: tuple[str, ...], name: str) -> None:
    for key, item in value.items():
        here = (*path, key)
        if key not in into:
            into[key] = item
            owners[here] = name
        elif isinstance(into[key], dict) and isinstance(item, dict):
            _merge(into[key], item, owners, here, name)
        else:
            raise PolicyError(
                f"{name}: data.{'.'.join(here)} is already set by {_owner(owners, here)}"
            )


def _owner(owners: dict[tuple[str, ...], str], path: tuple[str, ...]) -> str:
    """The data file that set `path` (or the object holding it)."""
    for end in range(len(path), 0, -1):
        if path[:end] in owners:
            return owners[path[:end]]
    return "another data.json"


def _check_shadowing(
    data: dict[str, Any], owners: dict[tuple[str, ...], str], sources: dict[str, str]
) -> None:
    """rego-cpp lets data silently replace a rule of the same path: refuse it."""
    for module, source in sources.items():
        package = _PACKAGE.search(source)
        if package is None:
            continue
        node: Any = data
        parts = tuple(package.group(1).split("."))
        for part in parts:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue
        for rule in set(_RULE_HEADS.findall(source)) - _KEYWORDS:
            if rule in node:
                path = (*parts, rule)
                raise PolicyError(
                    f"{_owner(owners, path)}: data.{'.'.join(path)} would replace"
                    f" the rule {rule!r} of {module}"
                )


def _reachable(sources: dict[str, str], seeds: list[tuple[str, ...]]) -> list[str]:
    """The modules (by name, in load order) that references to `seeds` can reach.

    A reference to path R reaches every module whose package P is a prefix of R
    (R names one of its rules) or extends R (R is a document holding it). The
    references are read from the text outside strings and comments; a false hit
    only adds a module, never loses one. A module without a readable package
    line is always included.
    """
    packages = {}
    for name, source in sources.items():
        found = _PACKAGE.search(source)
        packages[name] = tuple(found.group(1).split(".")) if found else None
    wanted: list[str] = []
    pending = list(seeds)
    seen: set[tuple[str, ...]] = set()
    while pending:
        ref = pending.pop()
        if ref in seen:
            continue
        seen.add(ref)
        for name, package in packages.items():
            if name in wanted:
                continue
            if package is None or package[: len(ref)] == ref or ref[: len(package)] == package:
                wanted.append(name)
                pending.extend(
                    tuple(m.group(1).split(".")[1:])
                    for m in _DATA_REF.finditer(sources[name])
                    if m.group(1) is not None
                )
    return [name for name in sources if name in wanted]


def _declared_entrypoints(source: str) -> list[str]:
    package = _PACKAGE.search(source)
    if package is None:
        return []
    base = package.group(1).replace(".", "/")
    found = []
    for block in _METADATA.finditer(source):
        if not _ENTRYPOINT_TRUE.search(block.group(1)):
            continue
        head = block.group(2)
        if head.startswith("package"):
            found.append(base)
        elif rule := _RULE_HEADS.match(head):
            found.append(f"{base}/{rule.group(1)}")
    return found
