"""The admin API through the real stack: the `lockgate` admin commands end to end
(tenants, teams, users, service accounts, scoped keys that work for chat, rotate
and revoke taking effect, the audit trail), and the REST face through Envoy's
gRPC-JSON transcoder (field masks, etags -> 409, tenant isolation -> 404, API
scopes -> 403)."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import openai
import pytest

from tests.e2e.test_chat_e2e import MESSAGES, client

pytestmark = pytest.mark.e2e


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def cli_json(stack, *args: str, key: str | None = None) -> dict:
    """Run an admin command with --json (and the admin key, or `key`); its output."""
    extra = ("--key", key) if key else ()
    done = stack.cli(*args, "--json", *extra)
    assert done.returncode == 0, f"lockgate {' '.join(args)}: {done.stderr}"
    return json.loads(done.stdout)


def chat(stack, key: str, model: str = "demo"):
    return client(stack, key=key).chat.completions.create(model=model, messages=MESSAGES)


def refused_within(stack, key: str, seconds: float) -> float:
    """How long until chat with `key` answers 401 (fails the test after `seconds`)."""
    start = time.monotonic()
    while True:
        try:
            chat(stack, key)
        except openai.AuthenticationError:
            return time.monotonic() - start
        if time.monotonic() - start > seconds:
            raise AssertionError(f"the key still works after {seconds} s")
        time.sleep(0.05)


def admin_http(stack, key: str | None = None) -> httpx.Client:
    return httpx.Client(base_url=stack.origin, timeout=10,
                        headers={"authorization": f"Bearer {key or stack.admin_key}"})


# -- the CLI -------------------------------------------------------------------------------


def test_cli_admin_flow(stack):
    tenant = unique("acme")
    me = cli_json(stack, "whoami")
    assert "platform_admin" in me["roles"] and me["tenant_name"] == "default"

    created = cli_json(stack, "tenants", "create", "--name", tenant, "--display-name", "Acme")
    assert created["tenant"]["name"] == tenant
    shown = stack.cli("tenants", "get", tenant)
    assert shown.returncode == 0 and f"Name:         {tenant}" in shown.stdout

    ml = cli_json(stack, "teams", "create", "--tenant", tenant, "--name", "ml")["team"]
    cli_json(stack, "teams", "create", "--tenant", tenant, "--name", "ops")
    dev = cli_json(stack, "users", "create", "--tenant", tenant, "--email",
                   f"dev@{tenant}.example", "--member", "ml=developer")["user"]
    assert dev["memberships"] == [{"team": ml["id"], "roles": ["developer"]}]
    # Only --display-name is in the update mask: the memberships stay.
    renamed = cli_json(stack, "users", "update", dev["email"], "--tenant", tenant,
                       "--display-name", "Dev One", "--etag", dev["etag"])["user"]
    assert renamed["display_name"] == "Dev One" and renamed["memberships"] == dev["memberships"]
    bot = cli_json(stack, "service-accounts", "create", "--tenant", tenant, "--team", "ml",
                   "--name", "bot")["service_account"]
    assert bot["team_id"] == ml["id"] and bot["roles"] == ["developer"]

    # A key for the service account, scoped to inference and one model, expiring in 30 days.
    made = cli_json(stack, "keys", "create", "--tenant", tenant, "--name", "bot-key",
                    "--owner", "service-accounts/bot", "--scope", "inference",
                    "--model", "demo", "--expires", "30d")
    key, secret = made["key"], made["secret"]
    assert key["scopes"] == ["inference"] and key["models"] == ["demo"]
    assert key["team_id"] == ml["id"] and key["owner_id"] == bot["id"] and key["expire_time"]
    assert chat(stack, secret).choices[0].message.content
    with pytest.raises(openai.PermissionDeniedError):
        chat(stack, secret, model="claude")  # not in the key's models
    denied = stack.cli("whoami", "--key", secret)  # not scoped for the admin API
    assert denied.returncode == 1 and "PERMISSION_DENIED" in denied.stderr
    assert "Traceback" not in denied.stderr

    listed = cli_json(stack, "keys", "list", "--tenant", tenant, "--owner", "service-accounts/bot")
    assert [k["id"] for k in listed["keys"]] == [key["id"]]
    table = stack.cli("keys", "list", "--tenant", tenant)
    assert table.returncode == 0 and "PREFIX" in table.stdout and key["prefix"] in table.stdout

    # Rotate with no overlap: the successor works, the old key is refused at once.
    rotated = cli_json(stack, "keys", "rotate", key["id"], "--tenant", tenant, "--overlap", "0")
    assert rotated["previous"]["replaced_by"] == rotated["key"]["id"]
    assert rotated["key"]["scopes"] == ["inference"] and rotated["secret"] != secret
    assert refused_within(stack, secret, 1.0) < 1.0
    assert chat(stack, rotated["secret"]).choices[0].message.content

    # Revoke: refused within a second.
    revoked = cli_json(stack, "keys", "revoke", rotated["key"]["id"], "--tenant", tenant)
    assert revoked["key"]["status"] == "revoked" and revoked["key"]["revoke_time"]
    assert refused_within(stack, rotated["secret"], 1.0) < 1.0
    by_status = cli_json(stack, "keys", "list", "--tenant", tenant, "--status", "revoked")
    assert [k["id"] for k in by_status["keys"]] == [rotated["key"]["id"]]

    # Etags through the CLI: a stale one is ABORTED.
    cli_json(stack, "teams", "update", "ml", "--tenant", tenant, "--display-name", "ML",
             "--etag", ml["etag"])
    stale = stack.cli("teams", "update", "ml", "--tenant", tenant, "--display-name", "x",
                      "--etag", ml["etag"])
    assert stale.returncode == 1 and "ABORTED" in stale.stderr
    assert stale.stderr.count("\n") == 1

    # Paging: one team per page, --all follows the tokens.
    first = cli_json(stack, "teams", "list", "--tenant", tenant, "--page-size", "1")
    assert len(first["teams"]) == 1 and first["next_page_token"]
    every = cli_json(stack, "teams", "list", "--tenant", tenant, "--page-size", "1", "--all")
    assert sorted(t["name"] for t in every["teams"]) == ["ml", "ops"]
    assert every["next_page_token"] == ""

    deleted = stack.cli("teams", "delete", "ops", "--tenant", tenant)
    assert deleted.returncode == 0, deleted.stderr
    gone = stack.cli("teams", "get", "ops", "--tenant", tenant)
    assert gone.returncode == 1 and "NOT_FOUND" in gone.stderr and "Traceback" not in gone.stderr

    # The audit trail has every change, newest first, and filters.
    events = cli_json(stack, "audit", "list", "--tenant", tenant, "--all")["events"]
    actions = [e["action"] for e in events]
    for action in ("tenants.create", "teams.create", "users.create", "users.update",
                   "service_accounts.create", "keys.create", "keys.rotate", "keys.revoke",
                   "teams.update", "teams.delete"):
        assert action in actions, action
    assert actions[0] == "teams.delete" and actions[-1] == "tenants.create"
    assert all(e["actor_key_id"] == me["key_id"] for e in events)
    on_key = cli_json(stack, "audit", "list", "--tenant", tenant, "--object", key["id"])
    assert [e["action"] for e in on_key["events"]] == ["keys.rotate", "keys.create"]
    revokes = cli_json(stack, "audit", "list", "--tenant", tenant, "--action", "keys.revoke")
    assert [e["object_id"] for e in revokes["events"]] == [rotated["key"]["id"]]
    audit_table = stack.cli("audit", "list", "--tenant", tenant)
    assert audit_table.returncode == 0 and "keys.revoke" in audit_table.stdout


def test_cli_bad_flags_exit_2(stack):
    bad = stack.cli("keys", "create", "--tenant", "default", "--name", "x", "--expires", "soon")
    assert bad.returncode == 2 and "--expires" in bad.stderr
    nothing = stack.cli("teams", "update", "ml", "--tenant", "default")
    assert nothing.returncode == 2 and "nothing to update" in nothing.stderr


# -- REST through Envoy ----------------------------------------------------------------------


def test_admin_rest_through_the_transcoder(stack):
    tenant = unique("rest")
    http = admin_http(stack)
    assert http.post("/admin/v1/tenants", json={"name": tenant}).status_code == 200
    listed = http.get("/admin/v1/tenants", params={"page_size": 1000})
    assert listed.status_code == 200
    assert {"default", tenant} <= {t["name"] for t in listed.json()["tenants"]}

    made = http.post(f"/admin/v1/tenants/{tenant}/teams",
                     json={"name": "web", "displayName": "Web"})
    assert made.status_code == 200, made.text
    team = made.json()["team"]
    assert team["display_name"] == "Web"  # responses keep the proto field names

    # The field mask is proto3 JSON: one string of camelCase paths, comma-separated.
    patched = http.patch(f"/admin/v1/tenants/{tenant}/teams/web",
                         json={"patch": {"displayName": "x"}, "updateMask": "displayName",
                               "etag": team["etag"]})
    assert patched.status_code == 200, patched.text
    assert patched.json()["team"]["display_name"] == "x"
    assert patched.json()["team"]["etag"] != team["etag"]

    stale = http.patch(f"/admin/v1/tenants/{tenant}/teams/web",
                       json={"patch": {"displayName": "y"}, "updateMask": "displayName",
                             "etag": team["etag"]})
    assert stale.status_code == 409
    assert stale.headers["content-type"].startswith("application/json")
    assert stale.json()["code"] == 10  # google.rpc.Status of ABORTED
    assert "etag" in stale.json()["message"]
    assert stale.headers["x-lockgate-error-code"] == "etag_mismatch"

    no_mask = http.patch(f"/admin/v1/tenants/{tenant}/teams/web",
                         json={"patch": {"displayName": "y"}})
    assert no_mask.status_code == 400 and "update_mask is required" in no_mask.json()["message"]


def test_tenant_admin_cannot_see_another_tenant(stack):
    tenant = unique("iso")
    cli_json(stack, "tenants", "create", "--name", tenant)
    cli_json(stack, "teams", "create", "--tenant", tenant, "--name", "web")
    boss = f"boss@{tenant}.example"
    cli_json(stack, "users", "create", "--tenant", tenant, "--email", boss,
             "--role", "tenant_admin")
    secret = cli_json(stack, "keys", "create", "--tenant", tenant, "--name", "boss-key",
                      "--owner", f"users/{boss}", "--role", "tenant_admin")["secret"]
    assert cli_json(stack, "whoami", key=secret)["tenant_name"] == tenant
    default_team = cli_json(stack, "whoami")["team_id"]

    http = admin_http(stack, secret)
    assert http.get(f"/admin/v1/tenants/{tenant}/teams/web").status_code == 200
    listed = http.get("/admin/v1/tenants").json()["tenants"]
    assert [t["name"] for t in listed] == [tenant]

    other = http.get(f"/admin/v1/tenants/default/teams/{default_team}")
    assert other.status_code == 404
    assert other.headers["content-type"].startswith("application/json")
    assert other.json() == {"code": 5, "message": "tenant not found", "details": []}
    # Worded exactly as for a tenant that does not exist: nothing is confirmed.
    missing = http.get(f"/admin/v1/tenants/{unique('none')}/teams/web")
    assert missing.status_code == 404 and missing.json() == other.json()
    # The other tenant's team id under the caller's own tenant: not found either.
    crossed = http.get(f"/admin/v1/tenants/{tenant}/teams/{default_team}")
    assert crossed.status_code == 404 and crossed.json()["code"] == 5
    # And through the CLI: one line, exit 1.
    done = stack.cli("teams", "get", default_team, "--tenant", "default", "--key", secret)
    assert done.returncode == 1 and "NOT_FOUND: tenant not found" in done.stderr


def test_developer_key_cannot_create_tenants(stack):
    developer = stack.create_key(unique("dev"), roles=["developer"])
    created = admin_http(stack, developer).post("/admin/v1/tenants", json={"name": unique("no")})
    assert created.status_code == 404
    assert created.json()["code"] == 5 and created.json()["message"].endswith("not found")


def test_inference_scoped_key_is_refused_on_the_admin_api(stack):
    secret = cli_json(stack, "keys", "create", "--tenant", "default", "--name", unique("inf"),
                      "--scope", "inference")["secret"]
    assert chat(stack, secret).choices[0].message.content
    denied = admin_http(stack, secret).get("/admin/v1/tenants")
    assert denied.status_code == 403
    error = denied.json()["error"]  # the edge's denial is OpenAI-shaped
    assert error["code"] == "scope_not_allowed" and error["type"] == "permission_error"
