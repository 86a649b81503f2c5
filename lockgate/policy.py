"""The embedded policy engine (regopy, Microsoft's rego-cpp) over policies/.

Every `*.rego` file under the policy root is loaded (tests, `*_test.rego`,
only by `run_policy_tests`); every `data.json` is merged into `data` at the
path of its folder, so `policies/lockgate/access/data.json` becomes
`data.lockgate.access`. Entry points are named `<package path>/<rule>`, e.g.
`lockgate/access/decision`, and are compiled once into a bundle that every
evaluation reuses.

The engine is not thread-safe: call it from one thread (a service's event
loop). A remote OPA server can replace it later behind the same `evaluate`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import regopy

DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "policies"
_TEST_RULE = re.compile(r"^(test_[A-Za-z0-9_]+)\s*(?:if\b|:=|\{)", re.MULTILINE)
_PACKAGE = re.compile(r"^package\s+([A-Za-z0-9_.]+)", re.MULTILINE)


class PolicyError(Exception):
    """A policy cannot be loaded or evaluated; the message names the file or entry point."""


@dataclass(frozen=True, slots=True)
class TestResult:
    name: str
    passed: bool
    message: str = ""


def _short(exc: Exception) -> str:
    """rego-cpp errors end with a full AST dump: keep the human part."""
    text = str(exc)
    head = text.split("(rego-errorseq", 1)[0].split("~~~~", 1)[0]
    return (head.strip() or text[:500]).replace("\n", " ")


def _data_for(root: Path, data_file: Path) -> dict:
    try:
        value = json.loads(data_file.read_text())
    except json.JSONDecodeError as exc:
        raise PolicyError(f"{data_file}: invalid JSON: {exc}") from None
    for part in reversed(data_file.parent.relative_to(root).parts):
        value = {part: value}
    return value


def _merge(into: dict, value: dict) -> None:
    for key, item in value.items():
        if isinstance(item, dict) and isinstance(into.get(key), dict):
            _merge(into[key], item)
        else:
            into[key] = item


def _parse_output(output: regopy.Output, what: str) -> Any:
    text = str(output)
    if text.strip() == "undefined":
        return None
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        raise PolicyError(f"{what}: {text.strip()}") from None
    if isinstance(parsed, dict) and "expressions" in parsed:
        expressions = parsed["expressions"]
        return expressions[0] if expressions else None
    return None  # undefined


class PolicyEngine:
    def __init__(self, root: Path | None = None, *, include_tests: bool = False):
        self.root = Path(root or DEFAULT_ROOT)
        self._interpreter = regopy.Interpreter()
        digest = hashlib.sha256()
        data: dict = {}
        files = sorted(self.root.rglob("*.rego"))
        for path in files:
            if path.name.endswith("_test.rego") and not include_tests:
                continue
            source = path.read_text()
            digest.update(str(path.relative_to(self.root)).encode() + b"\0" + source.encode())
            try:
                self._interpreter.add_module(str(path.relative_to(self.root)), source)
            except regopy.RegoError as exc:
                raise PolicyError(f"{path}: {_short(exc)}") from None
        for data_file in sorted(self.root.rglob("data.json")):
            digest.update(data_file.read_bytes())
            _merge(data, _data_for(self.root, data_file))
        self._interpreter.add_data_json(json.dumps(data))
        self.test_files = [p for p in files if p.name.endswith("_test.rego")]
        #: Changes whenever a policy or its data changes (for decision-cache keys).
        self.revision = digest.hexdigest()[:16]
        self._bundles: dict[str, regopy.Bundle] = {}

    def _bundle(self, entrypoint: str) -> regopy.Bundle:
        bundle = self._bundles.get(entrypoint)
        if bundle is None:
            try:
                bundle = self._interpreter.build(None, [entrypoint])
            except regopy.RegoError as exc:
                raise PolicyError(f"{entrypoint}: {_short(exc)}") from None
            if not bundle.ok():
                raise PolicyError(f"{entrypoint}: the policy does not compile")
            self._bundles[entrypoint] = bundle
        return bundle

    def evaluate(self, entrypoint: str, input: Any) -> Any:
        """The value of `entrypoint` for this input, or None when it is undefined."""
        bundle = self._bundle(entrypoint)
        self._interpreter.set_input_term(json.dumps(input))
        try:
            output = self._interpreter.query_bundle_entrypoint(bundle, entrypoint)
        except (regopy.RegoError, ValueError) as exc:  # regopy fails to parse its error text
            raise PolicyError(f"{entrypoint}: {_short(exc)}") from None
        return _parse_output(output, entrypoint)

    def query(self, query: str, input: Any = None) -> Any:
        """An ad-hoc query (slower: compiled each time); for tools and tests."""
        self._interpreter.set_input_term(json.dumps(input if input is not None else {}))
        try:
            return _parse_output(self._interpreter.query(query), query)
        except (regopy.RegoError, ValueError) as exc:  # regopy fails to parse its error text
            raise PolicyError(f"{query}: {_short(exc)}") from None


def run_policy_tests(root: Path | None = None) -> list[TestResult]:
    """Run every `test_*` rule of every `*_test.rego` (true passes; false or undefined fails)."""
    engine = PolicyEngine(root, include_tests=True)
    results = []
    for path in engine.test_files:
        source = path.read_text()
        package = _PACKAGE.search(source)
        if package is None:
            results.append(TestResult(str(path), False, "no package declaration"))
            continue
        for rule in dict.fromkeys(_TEST_RULE.findall(source)):
            name = f"{package.group(1)}.{rule}"
            try:
                value = engine.query(f"data.{name}")
            except PolicyError as exc:
                results.append(TestResult(name, False, str(exc)))
                continue
            passed = value is True
            results.append(TestResult(name, passed, "" if passed else f"evaluated to {value!r}"))
    return results
