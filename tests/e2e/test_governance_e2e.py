"""API governance through the real stack (Envoy + every service), driven by the
`lockgate apis|versions|subscriptions` commands and the openai SDK:

- the lifecycle at the edge: a published version's alias works for its owner
  team; deprecated, calls carry Deprecation / Sunset / successor Link headers;
  retired after the sunset, calls answer 410 naming the successor;
- subscriptions: another team is refused (subscription_required) until the
  owners approve its request, and again once they revoke it, each within a second;
- the REST face: the catalog shows each key only what it may see, and the
  audit chain verifies.

The stack has its own copy of the policies, whose lifecycle data allows a
sunset a few seconds ahead (deprecation_min_days 0) and retirement right after
it (retirement_quiet_days 0).
"""

from __future__ import annotations

import email.utils
import json
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import openai
import pytest

from lockgate.policy import DEFAULT_ROOT
from lockgate.stack.ephemeral import EphemeralStack
from tests.e2e.test_admin_e2e import unique
from tests.e2e.test_chat_e2e import MESSAGES, client

pytestmark = pytest.mark.e2e

#: Aliases of tests/e2e/gateway.yaml the router serves from the simulator. Each test
#: binds its own: an alias is bound by one live API version in the whole gateway.
LIFECYCLE_V1, LIFECYCLE_V2, SUBSCRIBED, VISIBLE = "gemini", "mistral", "azure", "cached"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    policies = tmp_path_factory.mktemp("governance") / "policies"
    shutil.copytree(DEFAULT_ROOT, policies)
    lifecycle = policies / "lockgate/lifecycle/data.json"
    data = json.loads(lifecycle.read_text())
    data.update(deprecation_min_days=0, retirement_quiet_days=0)
    lifecycle.write_text(json.dumps(data, indent=2))
    env = {f"LOCKGATE_{service}_POLICY_DIR": str(policies)
           for service in ("REGISTRY", "AUTH", "ROUTER")}
    with EphemeralStack(config=Path(__file__).parent / "gateway.yaml", extra_env=env) as running:
        yield running


def run(stack, *args: str, key: str | None = None, code: int = 0):
    """`lockgate ARGS --key KEY` (default: the platform admin's); asserts the exit code."""
    done = stack.cli(*args, "--key", key or stack.admin_key)
    assert done.returncode == code, (
        f"lockgate {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    assert "Traceback" not in done.stderr
    return done


def cli_json(stack, *args: str, key: str | None = None) -> dict:
    return json.loads(run(stack, *args, "--json", key=key).stdout)


@pytest.fixture(scope="module")
def org(stack) -> dict:
    """A new tenant with teams ml (owns the APIs) and ops: keys of a tenant admin
    (boss), of ml's developer and of ops' developer, all made with the admin CLI."""
    tenant = unique("gov")
    cli_json(stack, "tenants", "create", "--name", tenant)
    teams = {name: cli_json(stack, "teams", "create", "--tenant", tenant, "--name", name)["team"]
             for name in ("ml", "ops")}
    users = {
        "boss": ("--role", "tenant_admin"),
        "dev": ("--member", "ml=developer"),
        "other": ("--member", "ops=developer"),
    }
    keys = {}
    for user, rights in users.items():
        email_address = f"{user}@{tenant}.example"
        cli_json(stack, "users", "create", "--tenant", tenant, "--email", email_address, *rights)
        roles = ("--role", "tenant_admin") if user == "boss" else ()
        keys[user] = cli_json(stack, "keys", "create", "--tenant", tenant, "--name",
                              f"{user}-key", "--owner", f"users/{email_address}",
                              *roles)["secret"]
    return {"tenant": tenant, "teams": teams, "keys": keys}


def chat(stack, key: str, model: str):
    return client(stack, key=key).chat.completions.with_raw_response.create(
        model=model, messages=MESSAGES)


def eventually(check, seconds: float = 10.0, interval: float = 0.05):
    deadline = time.monotonic() + seconds
    while True:
        try:
            return check()
        except (AssertionError, openai.APIStatusError, pytest.fail.Exception):
            if time.monotonic() > deadline:
                raise
            time.sleep(interval)


def latency(check, seconds: float) -> float:
    """Seconds until check() holds, polling (fails after `seconds`)."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > seconds:
            raise AssertionError(f"not in effect after {seconds} s")
        time.sleep(0.02)
    return time.monotonic() - start


def make_api(stack, boss: str, name: str, alias: str, visibility: str = "tenant") -> dict:
    """A model API owned by team ml with a published v1 exposing `alias`."""
    api = cli_json(stack, "apis", "create", "--name", name, "--kind", "model",
                   "--description", f"{name} for the e2e tests", "--owner-team", "ml",
                   "--visibility", visibility, "--alias", alias, key=boss)["api"]
    published = cli_json(stack, "versions", "publish", api["id"], "v1", key=boss)["version"]
    assert published["state"] == "published" and published["model_aliases"] == [alias]
    return api


# -- lifecycle ---------------------------------------------------------------------------


def test_lifecycle_at_the_edge(stack, org):
    boss, dev = org["keys"]["boss"], org["keys"]["dev"]
    name = unique("lifecycle")
    api = cli_json(stack, "apis", "create", "--name", name, "--kind", "model",
                   "--description", "Chat for the lifecycle test", "--owner-team", "ml",
                   "--visibility", "tenant", key=boss)["api"]
    assert api["owner_team_id"] == org["teams"]["ml"]["id"] and api["visibility"] == "tenant"
    api_id = api["id"]

    draft = cli_json(stack, "versions", "create", api_id, "v1", "--alias", LIFECYCLE_V1,
                     "--description", "first", key=boss)["version"]
    assert draft["state"] == "draft" and draft["model_aliases"] == [LIFECYCLE_V1]
    shown = run(stack, "versions", "publish", name, "v1", key=boss)  # by name, as a table
    assert "Published version v1." in shown.stdout and "State:" in shown.stdout

    # The owner team's developer calls the alias: no subscription needed.
    ok = eventually(lambda: chat(stack, dev, LIFECYCLE_V1))
    assert ok.http_response.status_code == 200 and ok.parse().choices[0].message.content
    assert "deprecation" not in ok.headers

    # v2 with another alias, published; then v1 deprecated, sunset a few seconds ahead.
    cli_json(stack, "versions", "create", api_id, "v2", "--alias", LIFECYCLE_V2,
             "--description", "second", key=boss)
    cli_json(stack, "versions", "publish", api_id, "v2", key=boss)
    early = run(stack, "versions", "retire", api_id, "v2", key=boss, code=1)
    assert "platform admin" in early.stderr and early.stderr.count("\n") == 1
    deprecated = cli_json(stack, "versions", "deprecate", api_id, "v1", "--sunset", "4s",
                          "--successor", "v2", key=boss)["version"]
    assert deprecated["state"] == "deprecated" and deprecated["successor"] == "v2"
    sunset = deprecated["sunset_time"]

    def headers_carried():
        raw = chat(stack, dev, LIFECYCLE_V1)
        assert raw.http_response.status_code == 200
        assert "deprecation" in raw.headers
        return raw.headers

    headers = eventually(headers_carried)
    assert headers["deprecation"].startswith("@")
    sunset_at = email.utils.parsedate_to_datetime(headers["sunset"])
    assert int(sunset_at.timestamp()) == int(_parse_time(sunset).timestamp())
    assert headers["link"] == (f'</registry/v1/apis/{api_id}/versions/v2>; '
                               'rel="successor-version"')
    # The same through httpx, and v2 carries none of them.
    plain = httpx.post(f"{stack.base_url}/chat/completions", timeout=10,
                       headers={"authorization": f"Bearer {dev}"},
                       json={"model": LIFECYCLE_V1, "messages": MESSAGES})
    assert plain.status_code == 200 and plain.headers["link"] == headers["link"]
    assert "deprecation" not in chat(stack, dev, LIFECYCLE_V2).headers

    # Before the sunset the policy refuses retirement (one line, exit 1).
    too_soon = run(stack, "versions", "retire", api_id, "v1", key=boss, code=1)
    assert "sunset date has not passed" in too_soon.stderr

    # After it: retired (not forced); calls answer 410 naming v2.
    listing = run(stack, "versions", "list", api_id, key=boss)
    assert "deprecated" in listing.stdout and "v2" in listing.stdout
    time.sleep(max(0.0, _seconds_until(sunset)) + 0.5)
    retired = cli_json(stack, "versions", "retire", api_id, "v1", key=boss)["version"]
    assert retired["state"] == "retired" and retired["retire_time"]

    def gone():
        with pytest.raises(openai.APIStatusError) as err:
            chat(stack, dev, LIFECYCLE_V1)
        return err.value

    error = eventually(gone)
    assert error.status_code == 410
    assert "v1" in error.message and "use version v2 instead" in error.message
    assert chat(stack, dev, LIFECYCLE_V2).http_response.status_code == 200

    assert [e["action"] for e in cli_json(stack, "apis", "audit", "--object", f"{api_id}/v1",
                                          key=boss)["events"]] == [
        "versions.retire", "versions.deprecate", "versions.publish", "versions.create"]


def _parse_time(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


def _seconds_until(timestamp: str) -> float:
    return (_parse_time(timestamp) - datetime.now(UTC)).total_seconds()


# -- subscriptions -----------------------------------------------------------------------


def test_subscription_approval_and_revocation_within_a_second(stack, org, record_property):
    boss, dev, other = org["keys"]["boss"], org["keys"]["dev"], org["keys"]["other"]
    api = make_api(stack, boss, unique("subscribed"), SUBSCRIBED)

    def refused() -> bool:
        try:
            chat(stack, other, SUBSCRIBED)
        except openai.PermissionDeniedError as err:
            assert err.code == "subscription_required", err.message
            assert f"lockgate subscriptions create --api {api['id']}" in err.message
            return True
        return False

    # Once the publication reached the edge (within a second), other teams need a
    # subscription; the owner team calls without one.
    latency(refused, 2.0)
    chat(stack, dev, SUBSCRIBED)

    # The ops team asks; the same-tenant request waits for the owners.
    asked = cli_json(stack, "subscriptions", "create", "--api", api["name"],
                     "--justification", "ops dashboards", key=other)["subscription"]
    assert asked["state"] == "pending" and asked["team_id"] == org["teams"]["ops"]["id"]
    assert asked["version"] == ""
    assert refused()
    duplicate = run(stack, "subscriptions", "create", "--api", api["id"], key=other, code=1)
    assert "ALREADY_EXISTS" in duplicate.stderr

    waiting = cli_json(stack, "subscriptions", "list", "--pending", key=boss)["subscriptions"]
    assert asked["id"] in [s["id"] for s in waiting]
    table = run(stack, "subscriptions", "list", "--pending", key=boss)
    assert asked["id"] in table.stdout and "pending" in table.stdout
    mine = cli_json(stack, "subscriptions", "list", key=other)["subscriptions"]
    assert [s["id"] for s in mine] == [asked["id"]]
    # A developer of the subscribing team cannot approve its own request.
    self_approve = run(stack, "subscriptions", "approve", asked["id"], key=other, code=1)
    assert "PERMISSION_DENIED" in self_approve.stderr

    approved = cli_json(stack, "subscriptions", "approve", asked["id"], "--reason", "ok",
                        key=boss)["subscription"]
    assert approved["state"] == "approved" and approved["decision_reason"] == "ok"
    allowed_after = latency(lambda: not refused(), 1.0)

    revoked = cli_json(stack, "subscriptions", "revoke", asked["id"], "--reason", "done",
                       key=boss)["subscription"]
    assert revoked["state"] == "revoked"
    denied_after = latency(refused, 1.0)

    record_property("approval_latency_s", round(allowed_after, 3))
    record_property("revocation_latency_s", round(denied_after, 3))
    print(f"\napproval -> allowed in {allowed_after:.3f} s; "
          f"revocation -> denied in {denied_after:.3f} s")
    assert allowed_after < 1.0 and denied_after < 1.0

    shown = run(stack, "subscriptions", "get", asked["id"], key=other)
    assert "State:" in shown.stdout and "revoked" in shown.stdout
    again = run(stack, "subscriptions", "approve", asked["id"], key=boss, code=1)
    assert "FAILED_PRECONDITION" in again.stderr


# -- REST and the audit chain ----------------------------------------------------------------


def test_catalog_rest_shows_only_visible_apis(stack, org):
    boss = org["keys"]["boss"]
    prefix = unique("catalog")
    names = {visibility: f"{prefix}-{visibility}" for visibility in ("private", "team", "tenant")}
    for visibility, name in names.items():
        cli_json(stack, "apis", "create", "--name", name, "--kind", "model", "--owner-team",
                 "ml", "--visibility", visibility, "--description", "catalog test", key=boss)
    # One with a live alias too: the catalog lists the aliases of live versions.
    live = make_api(stack, boss, f"{prefix}-live", VISIBLE)

    def catalog(key: str) -> dict[str, dict]:
        reply = httpx.get(f"{stack.origin}/registry/v1/apis", params={"query": prefix},
                          headers={"authorization": f"Bearer {key}"}, timeout=10)
        assert reply.status_code == 200, reply.text
        return {api["name"]: api for api in reply.json()["apis"]}

    dev_sees = catalog(org["keys"]["dev"])
    assert set(dev_sees) == {names["team"], names["tenant"], live["name"]}
    assert dev_sees[live["name"]]["model_aliases"] == [VISIBLE]
    assert set(catalog(org["keys"]["other"])) == {names["tenant"], live["name"]}
    assert set(catalog(boss)) == {*names.values(), live["name"]}
    assert catalog(stack.create_key(unique("outsider"), roles=["developer"])) == {}

    # The CLI agrees (table and JSON), and kinds filter.
    table = run(stack, "apis", "list", "--query", prefix, key=org["keys"]["other"])
    assert names["tenant"] in table.stdout and names["private"] not in table.stdout
    prompts = cli_json(stack, "apis", "list", "--query", prefix, "--kind", "prompt", key=boss)
    assert prompts["apis"] == []
    hidden = run(stack, "apis", "get", names["private"], key=org["keys"]["dev"], code=1)
    assert "NOT_FOUND" in hidden.stderr


def test_audit_chain_verifies(stack, org):
    made = cli_json(stack, "apis", "create", "--name", unique("audited"), "--kind", "model",
                    "--owner-team", "ml", key=org["keys"]["boss"])["api"]
    verified = httpx.get(f"{stack.origin}/registry/v1/audit-events:verify", timeout=10,
                         headers={"authorization": f"Bearer {stack.admin_key}"})
    assert verified.status_code == 200, verified.text
    body = verified.json()
    assert body["intact"] is True and int(body["events"]) > 0
    assert int(body.get("first_bad_seq", 0)) == 0

    done = run(stack, "apis", "audit", "verify")
    assert done.stdout.startswith("Audit chain intact:")
    denied = run(stack, "apis", "audit", "verify", key=org["keys"]["boss"], code=1)
    assert "PERMISSION_DENIED" in denied.stderr  # platform admins only

    events = run(stack, "apis", "audit", key=org["keys"]["boss"])
    assert "apis.create" in events.stdout and made["id"] in events.stdout
    assert events.stdout.startswith("SEQ")


# -- prompt APIs -------------------------------------------------------------------------


def test_prompt_version_from_a_spec_file(stack, org, tmp_path):
    boss = org["keys"]["boss"]
    spec = {
        "model": "demo",
        "system": "You summarize for {{ audience }}.",
        "user": "{{ text }}",
        "input_schema": {"type": "object", "required": ["text", "audience"],
                         "properties": {"text": {"type": "string", "maxLength": 2000},
                                        "audience": {"type": "string"}}},
        "parameters": {"max_completion_tokens": 200, "temperature": 0.2},
    }
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    api = cli_json(stack, "apis", "create", "--name", unique("summarize"), "--kind", "prompt",
                   "--description", "Summaries", "--owner-team", "ml", key=boss)["api"]
    draft = cli_json(stack, "versions", "create", api["id"], "v1", "--prompt-file", str(path),
                     key=boss)["version"]
    assert draft["prompt"]["user_template"] == "{{ text }}"
    # Whole numbers stay integers through the proto Struct: the spec check passes.
    published = cli_json(stack, "versions", "publish", api["id"], "v1", key=boss)["version"]
    assert published["state"] == "published"
    assert published["prompt"]["parameters"] == {"max_completion_tokens": 200,
                                                 "temperature": 0.2}
    shown = run(stack, "versions", "get", api["id"], "v1", key=boss)
    assert '"max_completion_tokens": 200' in shown.stdout
    listed = run(stack, "versions", "list", api["id"], key=boss)
    assert "prompt -> demo" in listed.stdout
    immutable = run(stack, "versions", "update", api["id"], "v1", "--description", "x",
                    key=boss, code=1)
    assert "FAILED_PRECONDITION" in immutable.stderr and "immutable" in immutable.stderr
