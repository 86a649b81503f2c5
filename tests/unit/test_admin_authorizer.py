"""Turning admin policy answers into errors: 404 unless the policy says 403,
fail closed on engine errors, and Python's role ranks equal to the policy's."""

from __future__ import annotations

import json

import pytest

from lockgate.errors import NotFound, PermissionDenied, ServiceUnavailable
from lockgate.identity import Identity
from lockgate.policy import DEFAULT_ROOT
from services.auth.admin_policy import SYSTEM, AdminAuthorizer, Grant, Resource
from services.auth.roles import ROLE_RANK, rank, within

CALLER = Identity("ten_a", "key_1", ("developer",), "acme", (), "team_1", "user", "usr_1")


class Answer:
    revision = "rev"

    def __init__(self, result):
        self.result = result
        self.inputs: list = []

    async def evaluate_async(self, entrypoint, policy_input):
        self.inputs.append((entrypoint, policy_input))
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


async def test_allowed_returns_the_scope_and_a_decision_id():
    policy = Answer({"allow": True, "status": 200, "reason": "Allowed.", "scope": "self"})
    allowed = await AdminAuthorizer(policy).authorize(
        CALLER, "keys.create", Resource("key", "ten_a", "team_1", "usr_1"),
        Grant(("developer",), (), ("demo",)),
    )
    assert allowed.scope == "self" and len(allowed.decision_id) == 32
    entrypoint, sent = policy.inputs[0]
    assert entrypoint == "lockgate/admin/decision"
    assert sent["principal"] == {
        "kind": "user", "id": "usr_1", "key_id": "key_1", "tenant_id": "ten_a",
        "team_id": "team_1", "roles": ["developer"], "scopes": [], "models": [],
    }
    assert sent["grant"] == {"roles": ["developer"], "scopes": [], "models": ["demo"]}


@pytest.mark.parametrize(
    ("result", "error"),
    [
        ({"allow": False, "status": 403, "reason": "Your roles do not allow it."},
         PermissionDenied),
        ({"allow": False, "status": 404, "reason": "not found"}, NotFound),
        ({"allow": True, "status": 200, "scope": "everything"}, NotFound),  # unknown scope
        ({"allow": "yes", "scope": "all"}, NotFound),  # not a boolean
        (None, NotFound),
        ("allow", NotFound),
    ],
)
async def test_anything_but_a_clear_allow_is_a_denial(result, error):
    with pytest.raises(error) as raised:
        await AdminAuthorizer(Answer(result)).authorize(CALLER, "teams.get",
                                                        Resource("team", "ten_b"))
    if error is NotFound:
        assert raised.value.message == "team not found"  # same words as a missing team


async def test_engine_failure_fails_closed():
    with pytest.raises(ServiceUnavailable):
        await AdminAuthorizer(Answer(RuntimeError("boom"))).authorize(
            CALLER, "teams.list", Resource("team", "ten_a"))


async def test_internal_calls_skip_the_policy():
    policy = Answer(RuntimeError("must not be asked"))
    allowed = await AdminAuthorizer(policy).authorize(None, "tenants.create", Resource("tenant"))
    assert allowed is SYSTEM


def test_role_ranks_match_the_admin_policy_data():
    data = json.loads((DEFAULT_ROOT / "lockgate" / "admin" / "data.json").read_text())
    assert data["role_rank"] == ROLE_RANK


def test_within_keeps_roles_at_or_below_the_highest_held():
    assert within(["developer", "viewer"], ["team_admin"]) == ["developer", "viewer"]
    assert within(["tenant_admin", "developer"], ["developer"]) == ["developer"]
    assert within(["developer"], []) == []
    assert within(["root"], ["platform_admin"]) == []
    assert rank([]) == 0 and rank(["viewer", "tenant_admin"]) == 4
