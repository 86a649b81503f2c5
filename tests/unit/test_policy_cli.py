"""`lockgate policy test|eval` on real policy folders."""

from __future__ import annotations

import json
import shutil

from lockgate.cli.main import main
from lockgate.policy import DEFAULT_ROOT


def test_policy_test_passes_on_the_shipped_policies(capsys):
    assert main(["policy", "test"]) == 0
    assert capsys.readouterr().out.strip().endswith("passed, 0 failed")


def test_policy_test_fails_and_names_the_failing_test(tmp_path, capsys):
    root = tmp_path / "policies"
    shutil.copytree(DEFAULT_ROOT, root)
    path = root / "lockgate/routing/routing.rego"
    path.write_text(path.read_text().replace('"Allowed."} if {', '"Allowed."} if {\n\tfalse'))
    assert main(["policy", "test", "--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "FAIL lockgate/routing/routing_test.rego: lockgate.routing_test.test_" in out


def test_policy_test_json_lines(capsys):
    assert main(["policy", "test", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines and all(line["passed"] for line in lines)


def test_policy_eval_answers_an_ad_hoc_query(tmp_path, capsys):
    document = tmp_path / "input.json"
    document.write_text(json.dumps({"credential": {"present": False}}))
    assert main(["policy", "eval", "lockgate/access/decision", "--input", str(document)]) == 0
    assert json.loads(capsys.readouterr().out)["code"] == "missing_api_key"


def test_policy_eval_bad_input_is_one_clear_line(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    assert main(["policy", "eval", "lockgate/access/decision", "--input", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "invalid JSON" in err and "Traceback" not in err
    assert main(["policy", "eval", "x/y", "--input", str(bad), "--root", "/nope"]) == 2
