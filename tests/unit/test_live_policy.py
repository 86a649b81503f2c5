"""Policy hot reload: a good edit goes live, a broken or failing one never does."""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest

from lockgate.live_policy import LivePolicy
from lockgate.policy import DEFAULT_ROOT

ROUTING = "lockgate/routing/decision"


def routing_input(tenant: str = "acme") -> dict:
    return {
        "caller": {"tenant_id": "ten_1", "tenant_name": tenant, "key_id": "k", "roles": [],
                   "models": []},
        "alias": "chat", "kind": "chat",
        "deployments": [{"name": "us", "provider": "p", "provider_type": "openai", "model": "m",
                         "region": "us-east-1", "labels": {}}],
    }


@pytest.fixture
def root(tmp_path):
    shutil.copytree(DEFAULT_ROOT, tmp_path / "policies")
    return tmp_path / "policies"


def set_routing_data(root, data: dict) -> None:
    base = {"tenant_regions": {}, "tenant_labels": {}, "tenant_aliases": {}}
    (root / "lockgate/routing/data.json").write_text(json.dumps({**base, **data}))


async def test_a_data_edit_changes_decisions_without_a_restart(root):
    live = LivePolicy(root, interval=0.05)
    live.start()
    try:
        assert live.evaluate(ROUTING, routing_input())["alias_allowed"] is True
        before = live.revision
        set_routing_data(root, {"tenant_aliases": {"acme": {"other": True}}})
        for _ in range(200):
            if live.revision != before:
                break
            await asyncio.sleep(0.05)
        assert live.revision != before and live.last_error == ""
        assert live.evaluate(ROUTING, routing_input())["alias_allowed"] is False
    finally:
        await live.close()


async def test_a_policy_that_does_not_compile_keeps_the_previous_one(root):
    live = LivePolicy(root, interval=0)
    before = live.revision
    path = root / "lockgate/routing/routing.rego"
    path.write_text(path.read_text() + "\nthis is not rego {\n")
    assert await live.reload() is False
    assert live.revision == before and "routing.rego" in live.last_error
    assert live.evaluate(ROUTING, routing_input())["alias_allowed"] is True


async def test_a_policy_whose_tests_fail_never_goes_live(root):
    live = LivePolicy(root, interval=0)
    before = live.revision
    path = root / "lockgate/routing/routing.rego"
    # Compiles, but denies everything: routing_test.rego's tests catch it.
    path.write_text(path.read_text().replace('"Allowed."} if {', '"Allowed."} if {\n\tfalse'))
    assert await live.reload() is False
    assert "policy tests failed" in live.last_error
    assert live.revision == before
    assert live.evaluate(ROUTING, routing_input())["alias_allowed"] is True
    path.write_text((DEFAULT_ROOT / "lockgate/routing/routing.rego").read_text())
    assert await live.reload() is True and live.last_error == ""
