"""The Rego tests beside every policy (run through regopy), and the engine itself."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from lockgate.policy import DEFAULT_ROOT, PolicyEngine, PolicyError, _reachable
from lockgate.policy_tests import run_policy_tests

DECISION = "lockgate/access/decision"
CHAT = "/lockgate.router.v1.RouterService/OpenAIChatCompletions"

# Collected once: one parametrized test per Rego test rule, named after it.
RESULTS = run_policy_tests(DEFAULT_ROOT)


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    return PolicyEngine()


def access_input(
    *,
    present: bool = True,
    principal: dict | None | str = "developer",
    method: str = CHAT,
    model: str = "demo",
    **principal_fields,
) -> dict:
    if principal == "developer":
        principal = {
            "key_id": "key_1",
            "tenant_id": "ten_1",
            "tenant_name": "default",
            "roles": ["developer"],
            "models": [],
            "status": "active",
        } | principal_fields
    return {
        "principal": principal,
        "request": {
            "method": method,
            "http_method": "POST",
            "path": "/v1/chat/completions",
            "model": model,
        },
        "credential": {"present": present},
    }


def write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# -- the Rego tests -----------------------------------------------------------------


@pytest.mark.parametrize("result", RESULTS, ids=lambda r: r.name)
def test_rego(result):
    assert result.passed, f"{result.file}: {result.message}"


def test_every_policy_has_tests():
    policies = [p for p in DEFAULT_ROOT.rglob("*.rego") if not p.name.endswith("_test.rego")]
    assert policies
    for policy in policies:
        assert policy.with_name(policy.stem + "_test.rego").exists(), f"{policy} has no tests"
    assert len(RESULTS) >= 30
    # Every test file ran (a crashed file would show up as missing here).
    assert {r.file for r in RESULTS} == {
        str(p.relative_to(DEFAULT_ROOT)) for p in DEFAULT_ROOT.rglob("*_test.rego")
    }


def test_runner_reports_failures_and_passes(tmp_path: Path):
    write(tmp_path, "p.rego", "package p\n\nx := 1\n")
    write(
        tmp_path,
        "p_test.rego",
        "package p_test\n\n"
        "test_wrong if data.p.x == 2\n\n"
        "test_right if data.p.x == 1\n\n"
        "test_not_bool := 3\n\n"
        "helper_is_no_test if true\n",
    )
    results = {r.name: r for r in run_policy_tests(tmp_path)}
    assert set(results) == {"p_test.test_wrong", "p_test.test_right", "p_test.test_not_bool"}
    assert results["p_test.test_right"].passed
    assert not results["p_test.test_wrong"].passed
    assert "undefined" in results["p_test.test_wrong"].message
    assert not results["p_test.test_not_bool"].passed
    assert "evaluated to 3" in results["p_test.test_not_bool"].message


def test_runner_fails_every_test_when_the_policy_does_not_load(tmp_path: Path):
    write(tmp_path, "p.rego", "package p\n\nx if {\n")
    write(tmp_path, "p_test.rego", "package p_test\n\ntest_a if data.p.x\n\ntest_b if true\n")
    results = run_policy_tests(tmp_path, isolate=False)
    assert [r.name for r in results] == ["p_test.test_a", "p_test.test_b"]
    assert not any(r.passed for r in results)
    assert all("p.rego:3:6" in r.message for r in results), results[0].message


def test_runner_fails_when_the_policy_does_not_load_even_without_tests(tmp_path: Path):
    write(tmp_path, "p.rego", "package p\n\nx if {\n")
    [result] = run_policy_tests(tmp_path, isolate=False)
    assert not result.passed
    assert "p.rego:3:6: this is unclosed" in result.message


def test_runner_survives_a_rego_cpp_crash(tmp_path: Path):
    # rego-cpp 1.5.2 segfaults on `with input as {…}` over a rule that uses
    # another rule: the crash is reported against that file, the others run.
    write(tmp_path, "p.rego", 'package p\n\n_m := input.m\n\nx if _m == "a"\n')
    write(
        tmp_path,
        "bad_test.rego",
        'package bad_test\n\ntest_crash if data.p.x with input as {"m": "a"}\n',
    )
    write(
        tmp_path,
        "good_test.rego",
        'package good_test\n\ntest_field if data.p.x with input.m as "a"\n',
    )
    results = {r.name: r for r in run_policy_tests(tmp_path)}
    assert results["good_test.test_field"].passed
    crashed = results["bad_test.test_crash"]
    assert not crashed.passed
    assert "crashed" in crashed.message
    assert "with input.request as" in crashed.message  # the hint


def test_runner_rejects_a_missing_root(tmp_path: Path):
    with pytest.raises(PolicyError, match="not found"):
        run_policy_tests(tmp_path / "nope")


# -- decisions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy_input", "status", "code"),
    [
        (access_input(), 200, "ok"),
        (access_input(models=["demo"]), 200, "ok"),
        (access_input(present=False, principal=None), 401, "missing_api_key"),
        (access_input(principal=None), 401, "invalid_api_key"),
        (access_input(status="revoked"), 401, "invalid_api_key"),
        (
            access_input(method="/lockgate.ledger.v1.LedgerService/RecordUsage"),
            403,
            "internal_method",
        ),
        (access_input(method="/grpc.health.v1.Health/Check", model=""), 403, "internal_method"),
        (
            access_input(method="/lockgate.router.v1.RouterAdminService/GetRoutingTable"),
            403,
            "insufficient_role",
        ),
        # The admin API is open at the edge: its own policy (lockgate/admin) decides.
        (access_input(method="/lockgate.auth.v1.AuthService/CreateApiKey"), 200, "ok"),
        (access_input(roles=[]), 403, "no_roles"),
        (access_input(status="expired"), 401, "invalid_api_key"),
        (access_input(models=["other"]), 403, "model_not_allowed"),
        (access_input(models=["other"], model=""), 200, "ok"),
        ({}, 401, "missing_api_key"),
    ],
)
def test_access_decisions(engine, policy_input, status, code):
    decision = engine.evaluate(DECISION, policy_input)
    assert set(decision) == {"allow", "status", "code", "reason"}
    assert (decision["allow"], decision["status"], decision["code"]) == (
        status == 200,
        status,
        code,
    )
    assert isinstance(decision["reason"], str) and decision["reason"]


def test_model_reason_names_the_model(engine):
    decision = engine.evaluate(DECISION, access_input(models=["other"], model="gpt-x"))
    assert decision["reason"] == "This API key may not use the model `gpt-x`."


@pytest.mark.parametrize(
    "model", ['de"mo', "de\\mo", "de\nmo", "dé mo ☃", "demo\x00", "x" * 10_000]
)
def test_awkward_strings_reach_the_policy_intact(engine, model):
    # Strings the regopy Input API would mangle go through JSON instead.
    allowed = engine.evaluate(DECISION, access_input(models=[model], model=model))
    assert allowed["allow"] is True
    denied = engine.evaluate(DECISION, access_input(models=["demo"], model=model))
    assert denied["code"] == "model_not_allowed"
    assert model in denied["reason"]


def test_non_ascii_data_matches_input(tmp_path: Path):
    write(tmp_path, "t/data.json", '{"names": {"é☃": 1, "a\\"b": 2}}')
    write(tmp_path, "t/t.rego", "package t\n\nid := data.t.names[input.name]\n")
    engine = PolicyEngine(tmp_path)
    assert engine.evaluate("t/id", {"name": "é☃"}) == 1
    assert engine.evaluate("t/id", {"name": 'a"b'}) == 2
    assert engine.evaluate("t/id", {"name": "e"}) is None


def test_input_types_round_trip(tmp_path: Path):
    write(tmp_path, "t.rego", "package t\n\necho := input\n")
    engine = PolicyEngine(tmp_path)
    value = {
        "i": -5,
        "big": 2**70,
        "f": 0.25,
        "b": False,
        "n": None,
        "l": [1, "a", [True]],
        "t": (1, 2),
    }
    expected = value | {"t": [1, 2]}
    assert engine.evaluate("t/echo", value) == expected
    assert engine.evaluate("t/echo", {"s": {3, 1}}) == {"s": [1, 3]}
    with pytest.raises(PolicyError, match="JSON"):
        engine.evaluate("t/echo", {"x": object()})
    with pytest.raises(PolicyError, match="JSON"):
        engine.evaluate("t/echo", {"x": float("nan")})


def test_undefined_is_none(tmp_path: Path):
    write(tmp_path, "t.rego", "package t\n\nx := 1 if input.on\n")
    engine = PolicyEngine(tmp_path)
    assert engine.evaluate("t/x", {"on": True}) == 1
    assert engine.evaluate("t/x", {"on": False}) is None
    assert engine.evaluate("t/no_such_rule", {}) is None


def test_bundles_are_built_once_per_entrypoint(engine, monkeypatch):
    calls = []
    original = engine._compiler
    monkeypatch.setattr(engine, "_compiler", lambda *a: calls.append(a) or original(*a))
    for _ in range(3):
        engine.evaluate(DECISION, access_input())
    assert calls == []  # declared `# entrypoint: true`: compiled by the constructor
    assert DECISION in engine.entrypoints
    assert "lockgate/routing/decision" in engine.entrypoints
    engine.evaluate("lockgate/access/_service", access_input())
    engine.evaluate("lockgate/access/_service", access_input())
    assert calls == [(("lockgate/access/_service",),)]  # an undeclared one: on first use


def test_a_bundle_holds_only_the_modules_its_entrypoint_reaches(tmp_path: Path):
    # rego-cpp re-verifies a whole bundle on every query: unrelated policies
    # must stay out of it (docs/performance.md), and what is reachable must not.
    write(tmp_path, "a/a.rego", "package a\n\nimport data.b as lib\n\nx := lib.y + 1\n")
    write(tmp_path, "b/b.rego", "package b\n\ny := data.c.z * 10\n")
    write(tmp_path, "c/c.rego", "package c\n\nz := 2\n")
    write(tmp_path, "c/more.rego", "package c\n\nw := 3\n")
    write(tmp_path, "d/d.rego", '# the data of package a\npackage d\n\nq := "data.a"\n')
    write(tmp_path, "e/e.rego", "package e\n\nany_y := data[input.pkg].y\n")
    write(tmp_path, "f/f.rego", "package f\n\nsome_of := data.c[input.k]\n")
    engine = PolicyEngine(tmp_path)
    sources = engine._sources
    assert _reachable(sources, [("a", "x")]) == ["a/a.rego", "b/b.rego", "c/c.rego", "c/more.rego"]
    assert _reachable(sources, [("d", "q")]) == ["d/d.rego"]  # comments and strings are not references
    assert _reachable(sources, [("f", "some_of")]) == ["c/c.rego", "c/more.rego", "f/f.rego"]
    assert _reachable(sources, [("e", "any_y")]) == sorted(sources)  # `data[…]`: everything
    assert _reachable(sources, [("c",)]) == ["c/c.rego", "c/more.rego"]  # a package document
    assert engine.evaluate("a/x", {}) == 21
    assert engine.evaluate("f/some_of", {"k": "w"}) == 3
    assert engine.evaluate("c", {}) == {"z": 2, "w": 3}
    assert engine.evaluate("e/any_y", {"pkg": "b"}) == 20


def test_evaluate_is_safe_across_threads(engine):
    cases = [(access_input(), "ok"), (access_input(models=["x"]), "model_not_allowed")] * 5
    failures = []

    def hammer(policy_input, code):
        for _ in range(50):
            if engine.evaluate(DECISION, policy_input)["code"] != code:
                failures.append(code)

    threads = [threading.Thread(target=hammer, args=case) for case in cases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


# -- loading, errors and revision -----------------------------------------------------


def test_data_json_is_mounted_at_its_folder(tmp_path: Path):
    write(tmp_path, "data.json", '{"top": 1}')
    write(tmp_path, "org/team/data.json", '{"limits": {"gold": 10}}')
    write(
        tmp_path,
        "org/team/team.rego",
        "package org.team\n\nlimit := data.org.team.limits[input.tier]\n",
    )
    write(tmp_path, "org/team/top.rego", "package org.team\n\ntop := data.top\n")
    engine = PolicyEngine(tmp_path)
    assert engine.evaluate("org/team/limit", {"tier": "gold"}) == 10
    assert engine.evaluate("org/team/limit", {"tier": "none"}) is None
    assert engine.evaluate("org/team/top", {}) == 1
    assert engine.files == (
        "org/team/team.rego",
        "org/team/top.rego",
        "data.json",
        "org/team/data.json",
    )


def test_conflicting_data_names_both_files(tmp_path: Path):
    write(tmp_path, "org/data.json", '{"team": {"limit": 1}}')
    write(tmp_path, "org/team/data.json", '{"limit": 2}')
    with pytest.raises(
        PolicyError,
        match=r"org/team/data.json: data.org.team.limit is already set by org/data.json",
    ):
        PolicyEngine(tmp_path)


def test_data_may_not_replace_a_rule(tmp_path: Path):
    # rego-cpp would silently let data.p.decision win over the rule.
    write(tmp_path, "p/p.rego", "package p\n\ndecision := false\n")
    write(tmp_path, "p/data.json", '{"decision": true}')
    with pytest.raises(PolicyError, match=r"p/data.json: data.p.decision would replace the rule"):
        PolicyEngine(tmp_path)


@pytest.mark.parametrize(
    ("text", "error"),
    [("[1]", "must hold a JSON object"), ("{nope", "data.json:1:2: invalid JSON")],
)
def test_bad_data_json(tmp_path: Path, text, error):
    write(tmp_path, "x/data.json", text)
    with pytest.raises(PolicyError, match=error):
        PolicyEngine(tmp_path)


def test_test_files_are_not_loaded_by_default(tmp_path: Path):
    write(tmp_path, "p.rego", "package p\n\nx := 1\n")
    write(tmp_path, "p_test.rego", "package p_test\n\ntest_x if data.p.x == 1\n")
    assert PolicyEngine(tmp_path).evaluate("p_test/test_x", {}) is None
    assert PolicyEngine(tmp_path, include_tests=True).evaluate("p_test/test_x", {}) is True


def test_broken_module_names_the_file_and_position(tmp_path: Path):
    write(tmp_path, "ok.rego", "package ok\n\nx := 1\n")
    write(tmp_path, "sub/broken.rego", "package broken\n\nallow if {\n")
    with pytest.raises(PolicyError) as err:
        PolicyEngine(tmp_path)
    message = str(err.value)
    assert "sub/broken.rego:3:10: this is unclosed" in message
    assert "rego-errorseq" not in message and len(message) < 500


def test_compile_error_at_startup_names_the_entrypoint(tmp_path: Path):
    write(
        tmp_path,
        "p.rego",
        "package p\n\n# METADATA\n# entrypoint: true\ndefault x := 1\n\ndefault x := 2\n",
    )
    with pytest.raises(PolicyError, match=r"p/x: does not compile: Multiple default rules"):
        PolicyEngine(tmp_path)


@pytest.mark.parametrize(
    ("rule", "error"),
    [
        (
            "x := 1 if input.a\n\nx := 2 if input.a\n",
            "complete rules must not produce multiple outputs",
        ),
        ("x := undefined_fn(1)\n", "Function not found: undefined_fn"),
        # rego-cpp puts a failed built-in inside the value instead of leaving it undefined
        ('x := {"m": concat("", [input.a])}\n', "Not a term"),
    ],
)
def test_evaluation_errors_raise(tmp_path: Path, rule, error):
    write(tmp_path, "p.rego", "package p\n\n" + rule)
    engine = PolicyEngine(tmp_path)
    with pytest.raises(PolicyError, match=f"p/x: {error}"):
        engine.evaluate("p/x", {"a": True})


def test_bad_entrypoint_name(engine):
    with pytest.raises(PolicyError, match="not an entry point"):
        engine.evaluate("data.lockgate.access.decision", {})


def test_missing_root(tmp_path: Path):
    with pytest.raises(PolicyError, match="not found"):
        PolicyEngine(tmp_path / "nope")


def test_revision_follows_policy_and_data(tmp_path: Path):
    root = tmp_path / "policies"
    shutil.copytree(DEFAULT_ROOT, root)
    before = PolicyEngine(root).revision
    assert len(before) == 16 and int(before, 16) >= 0
    assert PolicyEngine(root).revision == before == PolicyEngine(DEFAULT_ROOT).revision

    rego = root / "lockgate" / "access" / "access.rego"
    rego.write_text(rego.read_text().replace("Allowed.", "Allowed!"))
    after_policy = PolicyEngine(root).revision
    assert after_policy != before

    data = root / "lockgate" / "access" / "data.json"
    data.write_text(data.read_text().replace('"inference"', '"chat"'))
    after_data = PolicyEngine(root).revision
    assert after_data not in (before, after_policy)

    tests = root / "lockgate" / "access" / "access_test.rego"
    tests.write_text(tests.read_text() + "\n# a comment\n")
    assert PolicyEngine(root).revision == after_data  # tests do not change decisions
