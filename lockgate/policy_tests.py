"""Running the Rego tests beside the policies (`*_test.rego`), as `opa test` does.

Tests run in a child process by default: rego-cpp 1.5.2 can crash the process
on some test constructs (see lockgate/policy.py), and a crash must be reported
as failed tests of the file that caused it, not kill the caller.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

# The runner shares the engine's loader and parsing helpers (one subsystem).
from lockgate.policy import (
    _PACKAGE,
    _TEST_RULE,
    DEFAULT_ROOT,
    TEST_SUFFIX,
    PolicyEngine,
    PolicyError,
    _files,
    _lib,
    _read_text,
)


@dataclass(frozen=True, slots=True)
class TestResult:
    """One `test_*` rule: `name` is its data path (`lockgate.access_test.test_x`)."""

    __test__ = False  # not a pytest test class

    name: str
    passed: bool
    message: str = ""
    file: str = ""


def run_policy_tests(
    root: str | os.PathLike[str] | None = None,
    *,
    isolate: bool = True,
    timeout: float = 300.0,
) -> list[TestResult]:
    """Run every `test_*` rule of every `*_test.rego` under `root`.

    Policies, data and all test files are loaded together (as `opa test` does);
    a test passes when its rule is true, and fails when it is false, undefined
    or an error (a policy that does not load fails every test, with the reason).
    With `isolate` (the default) the tests run in a child process, so a
    rego-cpp crash is reported as failures of the tests of the file that
    causes it instead of killing the caller.
    """
    root = Path(root) if root is not None else DEFAULT_ROOT
    if not root.is_dir():
        raise PolicyError(f"{root}: policy directory not found")
    files = _files(root, "*" + TEST_SUFFIX)
    if not isolate:
        return _run_tests(root, files)
    results, crash = _run_tests_in_child(root, files, timeout)
    if crash is None:
        return results
    if len(files) <= 1:
        return _crashed(root, files, crash)
    # Find the file(s) that crash rego-cpp: run each alone.
    results = []
    for path in files:
        alone, crash = _run_tests_in_child(root, [path], timeout)
        results.extend(alone if crash is None else _crashed(root, [path], crash))
    return results


def _run_tests(root: Path, files: list[Path]) -> list[TestResult]:
    tests: list[tuple[str, str, str]] = []  # (name, entrypoint, file)
    for path in files:
        name = path.relative_to(root).as_posix()
        source = _read_text(path, name)
        package = _PACKAGE.search(source)
        if package is None:
            tests.append((name, "", name))  # reported as a failure below
            continue
        for rule in dict.fromkeys(_TEST_RULE.findall(source)):
            tests.append(
                (f"{package.group(1)}.{rule}", f"{package.group(1).replace('.', '/')}/{rule}", name)
            )
    tests = list({test[0]: test for test in tests}.values())  # a package may span files
    try:
        engine = PolicyEngine(root, include_tests=files)
        entrypoints = [entrypoint for _, entrypoint, _ in tests if entrypoint]
        bundles = engine._build(entrypoints) if entrypoints else {}
    except PolicyError as exc:
        if not tests:  # still a failure: the policies do not load
            return [TestResult("(load)", False, str(exc))]
        return [TestResult(name, False, str(exc), file) for name, _, file in tests]
    results = []
    for name, entrypoint, file in tests:
        if not entrypoint:
            results.append(TestResult(name, False, f"{file}: no package declaration", file))
            continue
        bundle, encoded = bundles[entrypoint]
        try:
            with engine._lock:  # no input: tests set what they need with `with`
                output = _lib.regoBundleQueryEntrypoint(engine._impl, bundle._impl, encoded)
                value = engine._read_output(output, name)
        except PolicyError as exc:
            results.append(TestResult(name, False, str(exc), file))
            continue
        if value is True:
            results.append(TestResult(name, True, "", file))
        elif value is None:
            results.append(
                TestResult(name, False, "undefined: a condition of the test failed", file)
            )
        else:
            results.append(
                TestResult(name, False, f"evaluated to {json.dumps(value)}, not true", file)
            )
    return results


def _run_tests_in_child(
    root: Path, files: list[Path], timeout: float
) -> tuple[list[TestResult], str | None]:
    """Run `_run_tests` in a child process: (results, None) or ([], why it crashed)."""
    with tempfile.TemporaryDirectory(prefix="lockgate-policy-tests-") as tmp:
        out = Path(tmp) / "results.json"
        request = {"root": str(root), "files": [str(p) for p in files], "out": str(out)}
        env = dict(os.environ)
        package_parent = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
        code = "import sys, lockgate.policy_tests as t; t._child_main(sys.argv[1])"
        try:
            proc = subprocess.run(
                [sys.executable, "-c", code, json.dumps(request)],
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return [], f"the tests did not finish within {timeout:g} s"
        if proc.returncode == 0 and out.exists():
            return [TestResult(**r) for r in json.loads(out.read_text())], None
        if proc.returncode < 0:
            try:
                why = f"rego-cpp crashed ({signal.Signals(-proc.returncode).name})"
            except ValueError:
                why = f"rego-cpp crashed (signal {-proc.returncode})"
        else:
            why = f"the test process failed (exit {proc.returncode})"
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return [], why + (": " + " | ".join(tail) if tail else "")


def _crashed(root: Path, files: list[Path], crash: str) -> list[TestResult]:
    results = []
    for path in files:
        name = path.relative_to(root).as_posix()
        source = path.read_text(encoding="utf-8", errors="replace")
        hint = ""
        if re.search(r"\bwith\s+input\s+as\b", source):
            hint = (
                "; rego-cpp 1.5.2 crashes on `with input as {…}` when the rule under test uses"
                " other rules: replace the whole input field by field (`with input.request as …`)"
            )
        package = _PACKAGE.search(source)
        rules = list(dict.fromkeys(_TEST_RULE.findall(source))) if package else []
        message = f"{name}: {crash}{hint}"
        if not rules:
            results.append(TestResult(name, False, message, name))
        for rule in rules:
            results.append(TestResult(f"{package.group(1)}.{rule}", False, message, name))
    return results


def _child_main(request_json: str) -> None:
    request = json.loads(request_json)
    root = Path(request["root"])
    results = _run_tests(root, [Path(f) for f in request["files"]])
    Path(request["out"]).write_text(json.dumps([asdict(r) for r in results]))
