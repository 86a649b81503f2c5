"""Where the hot REST calls are checked, in each process layout (real stacks).

- `grouped` (the default): auth shares the router's process, so the router runs
  the access check on /v1/chat/completions, /v1/messages and /v1/embeddings
  itself and Envoy asks auth nothing about them (services/router/access.py);
- `separate`: auth has its own process, so Envoy's ext_authz asks auth's HTTP
  access check about every call.

Either way a client sees the same answers, identity comes from the verdict
(never from the client) and the call log reads the same.
"""

from __future__ import annotations

import re

import anthropic
import httpx
import openai
import pytest

from tests.e2e.test_call_log_e2e import eventually, ledger_rows, logged_call
from tests.e2e.test_chat_e2e import MESSAGES, client

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["grouped", "separate"])
def layout(request):
    """(layout name, its running stack)."""
    name = request.param
    return name, request.getfixturevalue("stack" if name == "grouped" else "separate_stack")


def checks_asked_of_auth(stack) -> int:
    """Requests Envoy sent to auth's HTTP access check so far."""
    admin = stack.ports["LOCKGATE_ENVOY_ADMIN_PORT"]
    stats = httpx.get(f"http://127.0.0.1:{admin}/stats",
                      params={"filter": r"^cluster\.auth_check\.upstream_rq_total$"},
                      timeout=5).text
    found = re.search(r"upstream_rq_total: (\d+)", stats)
    return int(found.group(1)) if found else 0


def test_the_hot_calls_are_checked_once_where_the_layout_says(layout):
    name, stack = layout
    before = checks_asked_of_auth(stack)
    client(stack).chat.completions.create(model="demo", messages=MESSAGES)
    client(stack).embeddings.create(model="demo-embed", input="hello")
    assert checks_asked_of_auth(stack) - before == (0 if name == "grouped" else 2)
    # Every other route is checked by Envoy in both layouts.
    before = checks_asked_of_auth(stack)
    client(stack).models.list()
    assert checks_asked_of_auth(stack) - before == 1


def test_identity_is_the_verdicts_and_the_call_log_reads_the_same(layout):
    _, stack = layout
    raw = httpx.post(f"{stack.base_url}/chat/completions", timeout=10,
                     headers={"authorization": f"Bearer {stack.admin_key}",
                              "x-lockgate-tenant-id": "ten_spoofed",
                              "x-lockgate-key-id": "key_spoofed"},
                     json={"model": "demo", "messages": MESSAGES})
    assert raw.status_code == 200
    # What the router hands Envoy for the call log never reaches the client.
    assert not [h for h in raw.headers if h.startswith("x-lockgate-")]
    record = logged_call(stack, raw.headers["x-request-id"])
    assert record["tenant_id"].startswith("ten_") and record["tenant_id"] != "ten_spoofed"
    assert record["key_id"].startswith("key_") and record["key_id"] != "key_spoofed"
    assert record["upstream_cluster"] == "router"


def test_denials_are_the_same_answers_and_logged_alike(layout):
    _, stack = layout
    with pytest.raises(openai.AuthenticationError) as denied:
        client(stack, key="lg_nope_nope").chat.completions.create(model="demo",
                                                                  messages=MESSAGES)
    assert denied.value.code == "invalid_api_key"
    assert not [h for h in denied.value.response.headers if h.startswith("x-lockgate-")]
    request_id = denied.value.response.headers["x-request-id"]

    def stored():
        rows = ledger_rows(stack, request_id)
        assert rows, "not logged yet"
        return rows

    assert eventually(stored) == [("", "", 401, "UAEX", "")]
    claude = anthropic.Anthropic(base_url=stack.origin, api_key="lg_nope_nope", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as refused:
        claude.messages.create(model="demo", max_tokens=16,
                               messages=[{"role": "user", "content": "hi"}])
    assert refused.value.body["error"]["type"] == "authentication_error"
