"""Remote mode: an OPA server decides with the same policies.

The server is tests/fakes/opa_server.py (OPA's documented REST answers,
decided by the embedded engine on the same policy folder). Decisions equal the
embedded engine's; the revision follows the server's policies; every failure
is a RemotePolicyError (fail closed) within the timeout; the bearer token is
sent, and never appears in a log line, an error message or a traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import time
import traceback

import pytest

from lockgate.identity import Identity
from lockgate.live_policy import LivePolicy
from lockgate.policy import DEFAULT_ROOT, PolicyEngine, PolicyError
from lockgate.remote_policy import RemoteDecision, RemotePolicy, RemotePolicyError
from services.auth.admin_policy import AdminAuthorizer, Resource
from services.auth.check import Checker
from services.router.routing_policy import RoutingPolicy
from tests.conftest import free_port
from tests.fakes.opa_server import INTERNAL_ERROR, INVALID_PARAMETER, FakeOpa

ACCESS = "lockgate/access/decision"
ROUTING = "lockgate/routing/decision"
ADMIN = "lockgate/admin/decision"
TOKEN = "opa-s3cret-T0KEN-5f2c9a"
CHAT = "/lockgate.router.v1.RouterService/OpenAIChatCompletions"


def principal(**changes) -> dict:
    base = {"key_id": "key_1", "tenant_id": "ten_a", "tenant_name": "acme", "team_id": "team_1",
            "kind": "user", "id": "usr_1", "roles": ["developer"], "models": [], "scopes": [],
            "status": "active"}
    return {**base, **changes}


def access(p: dict | None, method: str = CHAT, model: str = "chat", present: bool = True,
           error: str = "") -> dict:
    return {"principal": p, "credential": {"present": present, "error": error},
            "request": {"method": method, "http_method": "POST", "path": "/v1/chat/completions",
                        "model": model}}


ACCESS_INPUTS = {
    "no-credential": access(None, present=False),
    "bad-jwt": access(None, error="token expired"),
    "unknown-key": access(None),
    "ok": access(principal()),
    "disabled": access(principal(status="disabled")),
    "expired": access(principal(status="expired")),
    "no-roles": access(principal(roles=[])),
    "internal-method": access(principal(), "/lockgate.ledger.v1.LedgerService/RecordUsage", ""),
    "admin-service": access(principal(), "/lockgate.auth.v1.AuthService/ListKeys", ""),
    "platform-service": access(principal(roles=["tenant_admin"]),
                               "/lockgate.router.v1.RouterAdminService/GetRoutingTable", ""),
    "model-scope": access(principal(models=["embed"])),
    "api-scope": access(principal(scopes=["usage"])),
    "quoted-unicode-model": access(principal(models=['gpt "4" é\\']), model='gpt "4" é\\'),
    "malformed": {"request": {"method": 7}},
}


def deployment(name: str, region: str, **labels: str) -> dict:
    return {"name": name, "provider": "p", "provider_type": "openai", "model": "m",
            "region": region, "labels": labels}


def routing(tenant: str, alias: str = "chat", models: tuple = (), roles: tuple = ("developer",)
            ) -> dict:
    return {
        "caller": {"tenant_id": f"ten_{tenant}", "tenant_name": tenant, "key_id": "key_1",
                   "roles": list(roles), "models": list(models)},
        "alias": alias, "kind": "chat",
        "deployments": [deployment("eu", "eu-west-1", residency="eu"),
                        deployment("eu-plain", "eu-west-1"), deployment("us", "us-east-1")],
    }


ROUTING_INPUTS = {
    "region-and-labels": routing("acme"),
    "alias-allowed": routing("globex"),
    "alias-not-allowed": routing("globex", alias="embed"),
    "unrestricted": routing("initech"),
    "key-model-scope": routing("initech", models=("other",)),
}


def admin(roles: list[str], action: str, resource: dict, grant: dict | None = None,
          **who) -> dict:
    document = {"principal": {"kind": "user", "id": "usr_1", "key_id": "key_1",
                              "tenant_id": "ten_a", "team_id": "team_1", "roles": roles,
                              "scopes": [], "models": [], **who},
                "action": action,
                "resource": {"type": "key", "tenant_id": "ten_a", "team_id": "team_1",
                             "owner_id": "usr_1", "roles": ["developer"], **resource}}
    if grant is not None:
        document["grant"] = grant
    return document


ADMIN_INPUTS = {
    "own-key": admin(["developer"], "keys.revoke", {}),
    "colleague-key": admin(["developer"], "keys.revoke", {"owner_id": "usr_2"}),
    "other-tenant": admin(["tenant_admin"], "keys.get", {"tenant_id": "ten_b"}),
    "platform-list": admin(["platform_admin"], "tenants.list", {"type": "tenant",
                                                               "tenant_id": ""}),
    "grant-above": admin(["team_admin"], "keys.create", {},
                         {"roles": ["tenant_admin"], "scopes": [], "models": []}),
    "viewer-create": admin(["viewer"], "tenants.create", {"type": "tenant", "tenant_id": ""}),
    "malformed": {"action": "keys.get"},
}

CASES = {ACCESS: ACCESS_INPUTS, ROUTING: ROUTING_INPUTS, ADMIN: ADMIN_INPUTS}


def set_routing_data(root, **data) -> None:
    base = {"tenant_regions": {}, "tenant_labels": {}, "tenant_aliases": {}}
    (root / "lockgate/routing/data.json").write_text(json.dumps({**base, **data}))


@pytest.fixture
def root(tmp_path):
    """The shipped policies, with routing data that makes routing decisions differ."""
    shutil.copytree(DEFAULT_ROOT, tmp_path / "policies")
    root = tmp_path / "policies"
    set_routing_data(
        root,
        tenant_regions={"acme": {"eu-west-1": True}},
        tenant_labels={"acme": {"residency": "eu"}},
        tenant_aliases={"globex": {"chat": True}},
    )
    return root


@pytest.fixture
def engine(root):
    return PolicyEngine(root)


@pytest.fixture
async def opa(root):
    fake = FakeOpa(root, token=TOKEN, decision_logs=True)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def remote(opa):
    # A generous timeout: these tests check answers, not the timeout (the
    # fail-closed tests build their own with short ones). The fake decides in
    # this event loop, one decision after another: 56 at once took over 0.5 s
    # on a loaded machine.
    policy = RemotePolicy(opa.url, token=TOKEN, timeout=5.0, poll_interval=0)
    yield policy
    await policy.close()


def data_requests(opa: FakeOpa) -> list:
    return [r for r in opa.requests if r.path.startswith("/v1/data/")]


# -- the same decisions both ways -------------------------------------------------------


@pytest.mark.parametrize("entrypoint", CASES)
async def test_the_server_decides_as_the_embedded_engine(remote, engine, entrypoint):
    for case, policy_input in CASES[entrypoint].items():
        embedded = engine.evaluate(entrypoint, policy_input)
        assert embedded is not None, case
        assert await remote.evaluate_async(entrypoint, policy_input) == embedded, case


def test_the_cases_cover_different_answers(engine):
    answers = {json.dumps(engine.evaluate(e, i), sort_keys=True)
               for e, inputs in CASES.items() for i in inputs.values()}
    assert len(answers) >= 15
    allowed = [engine.evaluate(ACCESS, i)["allow"] for i in ACCESS_INPUTS.values()]
    assert True in allowed and False in allowed


async def test_what_is_sent_is_opas_data_api_request(remote, opa):
    await remote.evaluate_async(ACCESS, ACCESS_INPUTS["ok"])
    [request] = data_requests(opa)
    assert request.method == "POST" and request.path == "/v1/data/lockgate/access/decision"
    assert request.body == {"input": ACCESS_INPUTS["ok"]}
    assert request.headers["Content-Type"].startswith("application/json")


async def test_query_returns_opas_decision_id(remote, opa, engine):
    decision = await remote.query(ROUTING, ROUTING_INPUTS["region-and-labels"])
    assert isinstance(decision, RemoteDecision)
    assert decision.result == engine.evaluate(ROUTING, ROUTING_INPUTS["region-and-labels"])
    assert decision.result["deployments"] == ["eu"]
    assert re.fullmatch(r"[0-9a-f-]{36}", decision.decision_id)
    opa.decision_logs = False  # OPA without decision logs sends none
    assert (await remote.query(ACCESS, ACCESS_INPUTS["ok"])).decision_id == ""


async def test_sets_and_tuples_are_sent_as_the_embedded_engine_reads_them(remote, engine):
    policy_input = access(principal(roles=("developer",), models={"chat"}))
    assert await remote.evaluate_async(ACCESS, policy_input) == engine.evaluate(
        ACCESS, policy_input)


async def test_concurrent_calls_share_one_client(remote, opa, engine):
    inputs = list(ACCESS_INPUTS.values()) * 4
    answers = await asyncio.gather(*(remote.evaluate_async(ACCESS, i) for i in inputs))
    assert answers == [engine.evaluate(ACCESS, i) for i in inputs]


async def test_connections_are_kept_alive(remote, opa):
    for _ in range(20):
        await remote.evaluate_async(ACCESS, ACCESS_INPUTS["ok"])
    assert len({r.peer for r in data_requests(opa)}) == 1


async def test_the_embedded_engines_answer_evaluate_async_too(root, engine):
    live = LivePolicy(root, interval=0)
    for policy_input in ACCESS_INPUTS.values():
        expected = engine.evaluate(ACCESS, policy_input)
        assert await engine.evaluate_async(ACCESS, policy_input) == expected
        assert await live.evaluate_async(ACCESS, policy_input) == expected


# -- synchronous evaluate ------------------------------------------------------------------


async def test_sync_evaluate_works_from_a_worker_thread(remote, engine):
    remote.start()  # binds the loop the calls run on
    policy_input = ADMIN_INPUTS["colleague-key"]
    answer = await asyncio.to_thread(remote.evaluate, ADMIN, policy_input)
    assert answer == engine.evaluate(ADMIN, policy_input)


async def test_sync_evaluate_on_the_event_loop_refuses_without_blocking(remote, opa):
    opa.delay = 5
    started = time.monotonic()
    with pytest.raises(RemotePolicyError, match="evaluate_async"):
        remote.evaluate(ACCESS, ACCESS_INPUTS["ok"])
    assert time.monotonic() - started < 0.05
    assert data_requests(opa) == []


async def test_sync_evaluate_before_start_fails_closed(remote):
    with pytest.raises(RemotePolicyError, match="not started"):
        await asyncio.to_thread(remote.evaluate, ACCESS, ACCESS_INPUTS["ok"])


async def test_the_services_decide_through_the_remote_engine(remote, engine):
    """Auth's admin policy, Check and the router's routing policy all await
    evaluate_async: the remote answers are the embedded engine's."""
    caller = Identity("ten_a", "key_1", ("tenant_admin",), "acme", (), "team_1", "user", "usr_1")
    allowed = await AdminAuthorizer(remote).authorize(caller, "keys.list",
                                                      Resource("key", "ten_a"))
    assert allowed.scope == "tenant"
    routing = await RoutingPolicy(remote).decide(
        caller, "chat", "chat", [deployment("eu", "eu-west-1")], 1)
    expected = await RoutingPolicy(engine).decide(
        caller, "chat", "chat", [deployment("eu", "eu-west-1")], 1)
    assert routing == expected
    decision = await Checker(None, remote)._decide(ACCESS_INPUTS["ok"])
    assert (decision.allow, decision.status) == (True, 200)


# -- revision ---------------------------------------------------------------------------------


async def test_revision_follows_the_servers_policy_modules(remote, opa, root):
    assert remote.revision == ""
    assert await remote.refresh() is True
    first = remote.revision
    assert re.fullmatch(r"[0-9a-f]{16}", first)
    assert await remote.refresh() and remote.revision == first  # nothing changed

    rego = root / "lockgate/access/access.rego"
    original = rego.read_text()
    rego.write_text(original + "\n# reviewed\n")
    opa.load(root)
    assert await remote.refresh() and remote.revision not in ("", first)

    rego.write_text(original)
    opa.load(root)
    assert await remote.refresh() and remote.revision == first  # content, not history


async def test_revision_is_polled_in_the_background(opa, root):
    remote = RemotePolicy(opa.url, token=TOKEN, poll_interval=0.05)
    remote.start()
    try:
        first = await _until(lambda: remote.revision)
        rego = root / "lockgate/routing/routing.rego"
        rego.write_text(rego.read_text() + "\n# tuned\n")
        opa.load(root)
        await _until(lambda: remote.revision != first)
        assert remote.last_error == "" and remote.checked_at > 0
    finally:
        await remote.close()
    assert remote._task is None


async def test_bundle_revisions_cover_data_changes(root):
    """With OPA's status plugin on, a data-only change shows through the bundle revision."""
    opa = FakeOpa(root, bundle="lockgate")
    await opa.start()
    remote = RemotePolicy(opa.url)
    try:
        assert await remote.refresh()
        first = remote.revision
        set_routing_data(root, tenant_regions={"acme": {"us-east-1": True}})
        opa.load(root)
        assert await remote.refresh() and remote.revision != first
        decision = await remote.evaluate_async(ROUTING, ROUTING_INPUTS["region-and-labels"])
        assert decision["deployments"] == ["us"]
    finally:
        await remote.close()
        await opa.stop()


async def test_without_the_status_plugin_only_policy_modules_count(remote, opa, root):
    """OPA's default: status API off (500 "status plugin not enabled"), asked once."""
    assert await remote.refresh()
    first = remote.revision
    set_routing_data(root, tenant_regions={"acme": {"us-east-1": True}})
    opa.load(root)  # data only: invisible in GET /v1/policies (documented limitation)
    assert await remote.refresh() and remote.revision == first
    assert [r.path for r in opa.requests].count("/v1/status") == 1
    assert [r.path for r in opa.requests].count("/v1/policies") == 2


async def test_an_unreachable_server_keeps_the_last_revision(remote, opa, caplog):
    assert await remote.refresh()
    first = remote.revision
    await opa.stop()
    with caplog.at_level(logging.WARNING, "lockgate.policy.remote"):
        assert await remote.refresh() is False
        assert await remote.refresh() is False
    assert remote.revision == first
    assert remote.last_error.startswith(f"cannot reach OPA at {opa.url}")
    assert len(caplog.records) == 1  # logged once, not at every poll


async def test_a_refused_token_is_a_failed_poll(opa):
    remote = RemotePolicy(opa.url, token="wrong-token")
    try:
        assert await remote.refresh() is False
        assert remote.revision == ""
        assert "401 unauthorized: request rejected by administrative policy" in remote.last_error
    finally:
        await remote.close()


# -- fail closed --------------------------------------------------------------------------------


def _closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda opa: setattr(opa, "delay", 5), "no answer from OPA .* within 0.3 s"),
        (lambda opa: setattr(opa, "fail", (500, INTERNAL_ERROR)), "HTTP 500"),
        (lambda opa: setattr(opa, "fail", (400, INVALID_PARAMETER)), "HTTP 400"),
        (lambda opa: setattr(opa, "fail", (502, "<html>Bad Gateway</html>")), "HTTP 502"),
        (lambda opa: setattr(opa, "fail", (200, "<html>portal</html>")), "unusable answer"),
        (lambda opa: setattr(opa, "undefined", True), "undefined"),
        (lambda opa: setattr(opa, "token", "another-token"), "HTTP 401"),
    ],
    ids=["timeout", "500", "400", "502-html", "200-not-json", "undefined", "401"],
)
async def test_failures_fail_closed_within_the_timeout(opa, setup, message):
    remote = RemotePolicy(opa.url, token=TOKEN, timeout=0.3)
    setup(opa)
    try:
        started = time.monotonic()
        with pytest.raises(RemotePolicyError, match=message):
            await remote.evaluate_async(ACCESS, ACCESS_INPUTS["ok"])
        assert time.monotonic() - started < 0.3 + 0.25
    finally:
        await remote.close()


async def test_an_unknown_rule_is_undefined_and_fails_closed(remote, engine):
    assert engine.evaluate("lockgate/access/no_such_rule", {}) is None
    with pytest.raises(RemotePolicyError, match="undefined"):
        await remote.evaluate_async("lockgate/access/no_such_rule", {})


async def test_connection_refused_fails_closed_at_once():
    remote = RemotePolicy(_closed_port_url(), timeout=0.5)
    try:
        started = time.monotonic()
        with pytest.raises(RemotePolicyError, match="cannot reach OPA"):
            await remote.evaluate_async(ACCESS, ACCESS_INPUTS["ok"])
        assert time.monotonic() - started < 0.5
    finally:
        await remote.close()


@pytest.mark.parametrize("entrypoint", ["../admin/decision", "lockgate/access/decision?x=1",
                                        "lockgate.access.decision", "", "lockgate//decision"])
async def test_malformed_entry_points_are_refused_before_asking(remote, opa, entrypoint):
    with pytest.raises(PolicyError, match="not an entry point"):
        await remote.evaluate_async(entrypoint, {})
    assert opa.requests == []


@pytest.mark.parametrize("bad", [float("nan"), object(), "\udc80"])
async def test_input_that_is_not_json_is_refused_before_asking(remote, opa, bad):
    with pytest.raises(PolicyError, match="not a JSON document"):
        await remote.evaluate_async(ACCESS, {"request": {"model": bad}})
    assert opa.requests == []


# -- the bearer token ------------------------------------------------------------------------------


async def test_the_bearer_token_is_sent_on_every_call(remote, opa):
    await remote.evaluate_async(ACCESS, ACCESS_INPUTS["ok"])
    assert await remote.refresh()
    assert {r.path for r in opa.requests} == {
        "/v1/data/lockgate/access/decision", "/v1/policies", "/v1/status"}
    assert {r.headers.get("Authorization") for r in opa.requests} == {f"Bearer {TOKEN}"}


async def test_no_token_configured_sends_no_authorization(opa):
    opa.token = None
    remote = RemotePolicy(opa.url)
    try:
        await remote.evaluate_async(ACCESS, ACCESS_INPUTS["ok"])
        assert await remote.refresh()
    finally:
        await remote.close()
    assert all("Authorization" not in r.headers for r in opa.requests)


async def test_the_token_never_shows_in_logs_errors_or_tracebacks(opa, caplog):
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []

    async def failing(remote: RemotePolicy) -> None:
        try:
            await remote.evaluate_async(ACCESS, ACCESS_INPUTS["ok"])
        except PolicyError as exc:
            logging.getLogger("lockgate.auth.check").exception("access policy evaluation failed")
            errors.append(exc)
        await remote.refresh()

    remote = RemotePolicy(opa.url, token=TOKEN, timeout=0.2, poll_interval=0.01)
    remote.start()
    try:
        assert await remote.refresh()
        for setup in (lambda: setattr(opa, "fail", (500, INTERNAL_ERROR)),
                      lambda: setattr(opa, "delay", 1),
                      lambda: setattr(opa, "token", "rotated")):
            setup()
            await failing(remote)
        try:
            await asyncio.to_thread(remote.evaluate, "lockgate/access/no_such_rule", {})
        except PolicyError as exc:
            errors.append(exc)
        try:
            remote.evaluate(ACCESS, {})
        except PolicyError as exc:
            errors.append(exc)
        await opa.stop()
        await failing(remote)
        await asyncio.sleep(0.05)  # a few failing background polls
    finally:
        await remote.close()
    # The wrong token the server expects is not ours: check ours only.
    refused = RemotePolicy(_closed_port_url(), token=TOKEN, timeout=0.2)
    try:
        await failing(refused)
    finally:
        await refused.close()
    with pytest.raises(ValueError) as bad_token:
        RemotePolicy(opa.url, token=TOKEN + "\n")
    errors.append(bad_token.value)

    assert len(errors) == 8
    assert remote.last_error and refused.last_error
    for exc in errors:
        assert exc.__cause__ is None
        shown = "".join(traceback.format_exception(exc)) + repr(exc)
        assert TOKEN not in shown
    assert "access policy evaluation failed" in caplog.text
    assert TOKEN not in caplog.text
    assert all(TOKEN not in repr(r.__dict__) for r in caplog.records)
    assert TOKEN not in repr(remote) + remote.last_error + refused.last_error


# -- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["ftp://opa:8181", "http://user:pw@opa:8181",
                                 "http://opa:8181/v1", "http://opa:8181?x=1", "opa:8181",
                                 "http://"])
def test_only_a_plain_base_url_is_accepted(url):
    with pytest.raises(ValueError):
        RemotePolicy(url)


def test_settings_are_normalized_and_checked():
    assert RemotePolicy("http://opa").url == "http://opa:80"
    assert RemotePolicy("https://opa/").url == "https://opa:443"
    assert RemotePolicy("http://[::1]:8181").url == "http://[::1]:8181"
    assert RemotePolicy("http://opa:8181").timeout == 0.5
    with pytest.raises(ValueError):
        RemotePolicy("http://opa:8181", timeout=0)
    with pytest.raises(ValueError):
        RemotePolicy("http://opa:8181", token="two words")


async def _until(condition, within: float = 3.0):
    deadline = time.monotonic() + within
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
