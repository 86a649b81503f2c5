"""Policy hot reload through the real stack: editing the policy folder changes
decisions at the edge (auth) and in routing (router) without a restart; a
broken policy never replaces the working one and the error is reported."""

from __future__ import annotations

import json
import shutil
import time

import openai
import pytest

from lockgate.policy import DEFAULT_ROOT
from lockgate.stack.ephemeral import EphemeralStack
from tests.e2e.test_chat_e2e import MESSAGES, client

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    policies = tmp_path_factory.mktemp("live") / "policies"
    shutil.copytree(DEFAULT_ROOT, policies)
    env = {"LOCKGATE_AUTH_POLICY_DIR": str(policies), "LOCKGATE_ROUTER_POLICY_DIR": str(policies)}
    with EphemeralStack(extra_env=env) as stack:
        yield stack, policies


def eventually(check, seconds: float = 15.0):
    deadline = time.monotonic() + seconds
    while True:
        try:
            return check()
        except (AssertionError, pytest.fail.Exception):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_edits_go_live_and_broken_policies_never_do(live):
    stack, policies = live
    assert client(stack).chat.completions.create(model="demo", messages=MESSAGES)

    # Routing data: tenant `default` may now only use demo-embed.
    (policies / "lockgate/routing/data.json").write_text(json.dumps({
        "tenant_regions": {}, "tenant_labels": {},
        "tenant_aliases": {"default": {"demo-embed": True}},
    }))

    def demo_is_denied():
        with pytest.raises(openai.PermissionDeniedError) as err:
            client(stack).chat.completions.create(model="demo", messages=MESSAGES)
        assert "may not use the model `demo`" in err.value.message
        assert {m.id for m in client(stack).models.list()} == {"demo-embed"}

    eventually(demo_is_denied)

    # Access policy (auth, at the edge): an edit the tests do not expect is
    # refused; once the author updates the test too, it goes live.
    access = policies / "lockgate/access/access.rego"
    tests = policies / "lockgate/access/access_test.rego"
    original = access.read_text()
    access.write_text(original.replace("Incorrect API key provided.", "Unknown API key."))
    eventually(lambda: _assert_in("policy tests failed", stack.logs()))
    assert _wording(stack) == "Incorrect API key provided."  # still the tested policy
    tests.write_text(tests.read_text().replace("Incorrect API key provided.", "Unknown API key."))
    eventually(lambda: _assert_equal(_wording(stack), "Unknown API key."))

    # A file that does not compile: the live policies keep deciding, the error is logged.
    access.write_text(original + "\nthis is { not rego\n")

    def compile_error_reported():
        # Auth and the router both reject it; either may log last, and an earlier
        # rejection (failing tests) may still be in the tail: look for this one.
        rejections = stack.logs().split("policy change rejected")[1:]
        assert any("access.rego" in r for r in rejections), rejections[-3:]

    eventually(compile_error_reported)
    assert _wording(stack) == "Unknown API key."
    demo_is_denied()


def _wording(stack) -> str:
    with pytest.raises(openai.AuthenticationError) as err:
        client(stack, key="lg_nope_nope").models.list()
    return err.value.body["message"]


def _assert_in(needle: str, haystack: str) -> None:
    assert needle in haystack


def _assert_equal(a, b) -> None:
    assert a == b


def test_every_decision_is_in_the_opa_decision_logs(live):
    stack, _ = live
    client(stack).embeddings.create(model="demo-embed", input="x")

    def logged():
        entries = {}
        for service in ("auth", "router"):
            path = stack.data_dir / f"decisions-{service}.jsonl"
            assert path.exists()
            entries[service] = [json.loads(line) for line in path.read_text().splitlines()]
        assert any(e["path"] == "lockgate/access/decision" and e["result"]["allow"]
                   for e in entries["auth"])
        assert any(e["path"] == "lockgate/routing/decision"
                   and e["input"]["alias"] == "demo-embed" for e in entries["router"])
        for e in entries["auth"] + entries["router"]:
            assert {"decision_id", "input", "result", "bundles", "timestamp"} <= set(e)

    eventually(logged)
