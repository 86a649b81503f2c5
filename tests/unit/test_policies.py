"""Every Rego test beside every policy, run through regopy, plus the engine itself."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lockgate.policy import DEFAULT_ROOT, PolicyEngine, PolicyError, run_policy_tests

RESULTS = run_policy_tests(DEFAULT_ROOT)


def test_every_policy_has_tests():
    policies = [p for p in DEFAULT_ROOT.rglob("*.rego") if not p.name.endswith("_test.rego")]
    assert policies
    for policy in policies:
        assert policy.with_name(policy.stem + "_test.rego").exists(), f"{policy} has no tests"
    assert len(RESULTS) >= 10


@pytest.mark.parametrize("result", RESULTS, ids=lambda r: r.name)
def test_rego(result):
    assert result.passed, result.message


def test_a_failing_rego_test_is_reported(tmp_path: Path):
    (tmp_path / "p.rego").write_text("package p\n\nx := 1\n")
    (tmp_path / "p_test.rego").write_text(
        "package p_test\n\ntest_wrong if data.p.x == 2\n\ntest_right if data.p.x == 1\n"
    )
    results = {r.name: r.passed for r in run_policy_tests(tmp_path)}
    assert results == {"p_test.test_wrong": False, "p_test.test_right": True}


def test_data_json_is_mounted_at_its_folder(tmp_path: Path):
    folder = tmp_path / "org" / "team"
    folder.mkdir(parents=True)
    (folder / "data.json").write_text('{"limits": {"gold": 10}}')
    (folder / "team.rego").write_text("package org.team\n\nlimit := data.org.team.limits[input.tier]\n")
    engine = PolicyEngine(tmp_path)
    assert engine.evaluate("org/team/limit", {"tier": "gold"}) == 10
    assert engine.evaluate("org/team/limit", {"tier": "none"}) is None


def test_revision_follows_policy_text(tmp_path: Path):
    shutil.copytree(DEFAULT_ROOT, tmp_path / "policies")
    before = PolicyEngine(tmp_path / "policies").revision
    assert PolicyEngine(tmp_path / "policies").revision == before
    data = tmp_path / "policies" / "lockgate" / "access" / "data.json"
    data.write_text(data.read_text().replace('"tenant_admin": true', '"tenant_admin": false'))
    assert PolicyEngine(tmp_path / "policies").revision != before


def test_broken_policy_names_the_file(tmp_path: Path):
    (tmp_path / "broken.rego").write_text("package broken\n\nallow if {\n")
    with pytest.raises(PolicyError) as err:
        PolicyEngine(tmp_path)
    assert "broken.rego" in str(err.value)
    assert len(str(err.value)) < 1000
