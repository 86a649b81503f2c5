"""`lockgate policy test|eval`: run the Rego tests, or answer an ad-hoc query.

Both work on a policy folder on disk (default: the shipped `policies/`), with
the same engine the services use; no running stack is needed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lockgate.cli.errors import CliError


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "policy", help="test policies or evaluate a query",
        description="Work with the Rego policies: run every *_test.rego, or evaluate an "
        "entry point for an input document.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    test = actions.add_parser("test", help="run every policy test (exit 1 when one fails)")
    test.add_argument("--verbose", "-v", action="store_true", help="list passing tests too")
    test.add_argument("--json", action="store_true", help="one JSON object per test")
    test.set_defaults(handler=run_test)
    evaluate = actions.add_parser(
        "eval", help="evaluate an entry point, e.g. lockgate/access/decision",
        description="Print the value of an entry point (`<package path>/<rule>`, e.g. "
        "lockgate/routing/decision) for the input document as JSON.",
    )
    evaluate.add_argument("entrypoint", help="e.g. lockgate/access/decision")
    evaluate.add_argument("--input", required=True, metavar="FILE",
                          help="input document (JSON); - reads standard input")
    evaluate.set_defaults(handler=run_eval)
    for sub in (test, evaluate):
        sub.add_argument("--root", type=Path, default=None, metavar="DIR",
                         help="policy folder (default: the shipped policies/)")


def run_test(args: argparse.Namespace) -> int:
    from lockgate.policy_tests import run_policy_tests

    _check_root(args.root)
    results = run_policy_tests(args.root)
    failed = [r for r in results if not r.passed]
    for r in results:
        if args.json:
            print(json.dumps({"name": r.name, "file": r.file, "passed": r.passed,
                              "message": r.message}))
        elif not r.passed:
            print(f"FAIL {r.file}: {r.name}: {r.message}")
        elif args.verbose:
            print(f"PASS {r.file}: {r.name}")
    if not args.json:
        print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed or not results else 0


def run_eval(args: argparse.Namespace) -> int:
    from lockgate.policy import PolicyEngine, PolicyError

    _check_root(args.root)
    try:
        text = sys.stdin.read() if args.input == "-" else Path(args.input).read_text()
    except OSError as exc:
        raise CliError(f"cannot read {args.input}: {exc.strerror}", 2) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{args.input}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}", 2) from None
    try:
        engine = PolicyEngine(args.root)
        result = engine.evaluate(args.entrypoint, document)
    except PolicyError as exc:
        raise CliError(str(exc), 1) from None
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


def _check_root(root: Path | None) -> None:
    if root is not None and not root.is_dir():
        raise CliError(f"{root}: not a policy folder", 2)
