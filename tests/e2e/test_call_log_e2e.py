"""The call log through the real stack (Envoy's gRPC access log -> ledger), driven
by the openai SDK, httpx and the `lockgate calls|apis|versions` commands:

- a chat call appears in ListCalls with 200, the client's path, upstream cluster
  router, the tenant and key auth added (ext_authz headers reach the access
  log), and its usage entry linked;
- a 401 is logged with no tenant (even when the client sends a tenant header)
  and no tenant sees it;
- an API that opted in to body logging gets redacted bodies; one that did not
  gets none, until its owners turn logging on.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import httpx
import openai
import pytest

from lockgate.stack.ephemeral import EphemeralStack
from tests.e2e.test_admin_e2e import unique
from tests.e2e.test_chat_e2e import MESSAGES, client

pytestmark = pytest.mark.e2e

SECRET = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"
#: Aliases of tests/e2e/gateway.yaml this module's stack binds to APIs.
LOGGED, QUIET = "gemini", "mistral"


@pytest.fixture(scope="module")
def stack():
    # Its own stack: binding aliases to APIs governs them for every other test.
    with EphemeralStack(config=Path(__file__).parent / "gateway.yaml") as running:
        yield running


def run(stack, *args: str, key: str | None = None) -> str:
    done = stack.cli(*args, "--key", key or stack.admin_key)
    assert done.returncode == 0, f"lockgate {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def calls(stack, request_id: str, key: str | None = None) -> list[dict]:
    out = run(stack, "calls", "--request-id", request_id, "--json", key=key)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def eventually(check, seconds: float = 15.0):
    deadline = time.monotonic() + seconds
    while True:
        try:
            return check()
        except (AssertionError, openai.APIStatusError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def logged_call(stack, request_id: str, key: str | None = None, *, metered: bool = True) -> dict:
    """The call record, once the access log (and, if `metered`, the usage) arrived."""
    def found():
        records = calls(stack, request_id, key)
        assert len(records) == 1, records
        assert not metered or "usage" in records[0], records[0]
        return records[0]

    return eventually(found)


def ledger_rows(stack, request_id: str) -> list[tuple]:
    """Straight from the ledger's database: what ListCalls would never show."""
    db = sqlite3.connect(stack.data_dir / "ledger.db")
    try:
        return db.execute(
            "SELECT tenant_id, key_id, response_code, response_flags, upstream_cluster"
            " FROM call_log WHERE request_id = ?", (request_id,)).fetchall()
    finally:
        db.close()


def test_a_chat_call_is_logged_with_its_usage(stack):
    raw = client(stack).chat.completions.with_raw_response.create(model="demo",
                                                                   messages=MESSAGES)
    request_id = raw.headers["x-request-id"]
    record = logged_call(stack, request_id)
    assert record["response_code"] == 200 and record["http_method"] == "POST"
    assert record["path"] == "/v1/chat/completions"  # the client's, not the gRPC method
    assert record["upstream_cluster"] == "router" and record["upstream_host"]
    assert record["tenant_id"] and record["key_id"].startswith("key_")
    assert record["usage"]["request_id"] == request_id and record["usage"]["alias"] == "demo"
    assert int(record["response_bytes"]) > 0 and int(record["request_bytes"]) > 0
    assert "request_body" not in record or record["request_body"] == ""  # nobody opted in

    table = run(stack, "calls", "--limit", "5")
    assert request_id in table and table.startswith("TIME")


def test_a_denied_call_is_logged_without_a_tenant_and_listed_to_nobody(stack):
    tenant_id = logged_call(stack, client(stack).chat.completions.with_raw_response.create(
        model="demo", messages=MESSAGES).headers["x-request-id"])["tenant_id"]
    denied = httpx.post(f"{stack.base_url}/chat/completions", timeout=10,
                        headers={"authorization": "Bearer lg_nope_nope",
                                 # A client cannot put its call in someone's log.
                                 "x-lockgate-tenant-id": tenant_id,
                                 "x-lockgate-key-id": "key_spoofed"},
                        json={"model": "demo", "messages": MESSAGES})
    assert denied.status_code == 401
    request_id = denied.headers["x-request-id"]

    def stored():
        rows = ledger_rows(stack, request_id)
        assert rows, "not logged yet"
        return rows

    assert eventually(stored) == [("", "", 401, "UAEX", "")]
    assert calls(stack, request_id) == []  # not even the admin's tenant sees it


def test_bodies_only_for_apis_that_opted_in(stack):
    tenant = unique("calls")
    run(stack, "tenants", "create", "--name", tenant, "--json")
    run(stack, "teams", "create", "--tenant", tenant, "--name", "ml", "--json")
    boss_email, dev_email = f"boss@{tenant}.example", f"dev@{tenant}.example"
    run(stack, "users", "create", "--tenant", tenant, "--email", boss_email,
        "--role", "tenant_admin", "--json")
    run(stack, "users", "create", "--tenant", tenant, "--email", dev_email,
        "--member", "ml=developer", "--json")
    boss = json.loads(run(stack, "keys", "create", "--tenant", tenant, "--name", "boss",
                          "--owner", f"users/{boss_email}", "--role", "tenant_admin",
                          "--json"))["secret"]
    dev = json.loads(run(stack, "keys", "create", "--tenant", tenant, "--name", "dev",
                         "--owner", f"users/{dev_email}", "--json"))["secret"]
    apis = {}
    for alias, flags in ((LOGGED, ("--log-bodies",)), (QUIET, ())):
        api = json.loads(run(stack, "apis", "create", "--name", unique("api"), "--kind",
                             "model", "--description", "call log e2e", "--owner-team", "ml",
                             "--alias", alias, *flags, "--json", key=boss))["api"]
        assert bool(api.get("log_bodies")) == (alias == LOGGED)
        run(stack, "versions", "publish", api["id"], "v1", "--json", key=boss)
        apis[alias] = api

    question = f"Mail ada@example.com the key {SECRET}, please."

    def ask(alias: str) -> str:
        raw = client(stack, key=dev).chat.completions.with_raw_response.create(
            model=alias, messages=[{"role": "user", "content": question}])
        assert raw.http_response.status_code == 200
        return raw.headers["x-request-id"]

    def governed_call(alias: str) -> dict:
        # Until the registry's watch stream reached auth, the call is ungoverned.
        record = logged_call(stack, ask(alias), key=dev)
        assert record["usage"].get("api_id") == apis[alias]["id"], record["usage"]
        return record

    logged = eventually(lambda: governed_call(LOGGED))
    assert "[REDACTED:email]" in logged["request_body"]
    assert "[REDACTED:openai_key]" in logged["request_body"]
    assert SECRET not in logged["request_body"] and "ada@example.com" not in logged["request_body"]
    assert '"choices"' in logged["response_body"]
    # The tenant admin reads it too; another tenant does not even see the call.
    assert logged_call(stack, logged["request_id"], key=boss)["request_body"] == \
        logged["request_body"]
    assert calls(stack, logged["request_id"]) == []

    quiet = eventually(lambda: governed_call(QUIET))
    assert not quiet.get("request_body") and not quiet.get("response_body")

    # The owners turn logging on: later calls keep their bodies.
    run(stack, "apis", "update", apis[QUIET]["id"], "--log-bodies", "--json", key=boss)

    def now_logged():
        record = governed_call(QUIET)
        assert "[REDACTED:email]" in record.get("request_body", ""), record
        return record

    eventually(now_logged)
