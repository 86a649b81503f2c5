"""Requests-per-minute limits at the edge, through the real stack: set with the
CLI, enforced by Envoy's rate limit filter asking the ledger; 429s with
Retry-After, OpenAI's x-ratelimit-* headers and error body (the openai SDK
raises RateLimitError); other keys unaffected; requests auth refused never
counted; and failing open when the ledger does not answer."""

from __future__ import annotations

import os
import re
import signal
import time
import uuid

import grpc
import httpx
import openai
import pytest

from lockgate.router.v1 import router_service_pb2 as router_pb
from lockgate.router.v1 import router_service_pb2_grpc as router_grpc
from lockgate.stack import state as stack_state
from tests.e2e.test_admin_e2e import cli_json
from tests.e2e.test_chat_e2e import MESSAGES, client

pytestmark = pytest.mark.e2e

CHAT = {"model": "demo", "messages": MESSAGES}
DURATION = re.compile(r"^(\d+m)?\d+(\.\d{1,3})?s$|^\d+ms$")
REQUEST_HEADERS = ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
                   "x-ratelimit-reset-requests")


def new_key(stack, *extra: str) -> tuple[str, str]:
    """(key id, secret) of a new key in the default tenant."""
    created = cli_json(stack, "keys", "create", "--tenant", "default", "--name",
                       f"rl-{uuid.uuid4().hex[:8]}", *extra)
    return created["key"]["id"], created["secret"]


def set_rpm(stack, key_id: str, rpm: int) -> dict:
    return cli_json(stack, "limits", "set", "--key", key_id, "--rpm", str(rpm))["rate_limit"]


def fresh_window(min_left: float = 15.0) -> None:
    """The windows are fixed minutes: a sequence of calls must not straddle one's end."""
    left = 60 - time.time() % 60
    if left < min_left:
        time.sleep(left + 0.1)


def post(stack, key: str, body: dict | None = None, path: str = "/v1/chat/completions"):
    return httpx.post(f"{stack.origin}{path}", json=body or CHAT, timeout=10,
                      headers={"authorization": f"Bearer {key}"})


def test_calls_over_the_key_limit_get_429_like_openai(stack):
    key_id, secret = new_key(stack)
    _, other = new_key(stack)
    limit = set_rpm(stack, key_id, 2)
    assert limit["scope"] == "key" and limit["scope_id"] == key_id
    assert int(limit["requests_per_minute"]) == 2

    fresh_window()
    sdk = client(stack, key=secret)
    for remaining in ("1", "0"):
        raw = sdk.chat.completions.with_raw_response.create(model="demo", messages=MESSAGES)
        assert raw.http_response.status_code == 200 and raw.parse().choices
        assert raw.headers["x-ratelimit-limit-requests"] == "2"
        assert raw.headers["x-ratelimit-remaining-requests"] == remaining
        assert DURATION.match(raw.headers["x-ratelimit-reset-requests"])

    refused = post(stack, secret)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/json"
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert refused.headers["x-ratelimit-limit-requests"] == "2"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert "x-envoy-ratelimited" not in refused.headers
    body = refused.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert error["type"] == "requests" and error["code"] == "rate_limit_exceeded"
    assert error["param"] is None
    assert f"key {key_id}" in error["message"] and "limit 2" in error["message"]

    with pytest.raises(openai.RateLimitError) as err:
        sdk.chat.completions.create(model="demo", messages=MESSAGES)
    assert err.value.status_code == 429 and err.value.code == "rate_limit_exceeded"
    assert err.value.response.headers["retry-after"]
    with pytest.raises(openai.RateLimitError):  # streams are refused before they start
        list(sdk.chat.completions.create(model="demo", messages=MESSAGES, stream=True))

    # gRPC clients get RESOURCE_EXHAUSTED with the same message and headers.
    with grpc.insecure_channel(stack.grpc_target) as channel:
        with pytest.raises(grpc.RpcError) as rpc_err:
            router_grpc.RouterServiceStub(channel).CreateChatCompletion(
                router_pb.CreateChatCompletionRequest(model="demo"),
                metadata=stack.grpc_auth(secret), timeout=10)
    assert rpc_err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"key {key_id}" in rpc_err.value.details()
    assert dict(rpc_err.value.trailing_metadata())["retry-after"]

    # Another key is not limited, and gets no request-limit headers (none applies).
    free = post(stack, other)
    assert free.status_code == 200
    assert not [h for h in REQUEST_HEADERS if h in free.headers]

    # Listed, then deleted: the key is free again at once (the same ledger process).
    listed = cli_json(stack, "limits", "list")["rate_limits"]
    assert limit["rate_limit_id"] in [r["rate_limit_id"] for r in listed]
    cli_json(stack, "limits", "delete", limit["rate_limit_id"])
    assert post(stack, secret).status_code == 200


def test_anthropic_clients_get_their_error_shape(stack):
    key_id, secret = new_key(stack)
    set_rpm(stack, key_id, 1)
    fresh_window()
    body = {"model": "demo", "max_tokens": 16, "messages": MESSAGES}
    headers = {"x-api-key": secret, "anthropic-version": "2023-06-01"}
    url = f"{stack.origin}/v1/messages"
    assert httpx.post(url, json=body, headers=headers, timeout=10).status_code == 200
    refused = httpx.post(url, json=body, headers=headers, timeout=10)
    assert refused.status_code == 429 and refused.headers["retry-after"]
    assert refused.json()["type"] == "error"
    assert refused.json()["error"]["type"] == "rate_limit_error"


def test_requests_auth_refuses_are_never_counted(stack):
    key_id, secret = new_key(stack, "--model", "demo")
    set_rpm(stack, key_id, 2)
    fresh_window()
    for _ in range(3):  # a model outside the key's scope: auth says 403 before the limiter
        assert post(stack, secret, {**CHAT, "model": "claude"}).status_code == 403
    assert post(stack, secret).status_code == 200
    assert post(stack, secret).status_code == 200
    assert post(stack, secret).status_code == 429


def ledger_pid(stack) -> int:
    saved = stack_state.read(stack.data_dir / "run" / "stack.json")
    assert saved is not None
    (ledger,) = [c for c in saved.components if c.name == "ledger"]
    assert ledger.pid
    return ledger.pid


def test_the_edge_fails_open_when_the_ledger_does_not_answer(stack):
    key_id, secret = new_key(stack)
    set_rpm(stack, key_id, 1000)  # a limit applies: Envoy asks the ledger every call
    assert post(stack, secret).headers["x-ratelimit-limit-requests"] == "1000"

    pid = ledger_pid(stack)
    os.kill(pid, signal.SIGSTOP)  # alive but silent: the worst case for the limiter
    replies, took = [], []
    try:
        for _ in range(3):
            started = time.monotonic()
            replies.append(post(stack, secret))
            took.append(time.monotonic() - started)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert [r.status_code for r in replies] == [200, 200, 200]
    assert all(r.json()["choices"] for r in replies)
    assert not [r for r in replies if "x-ratelimit-limit-requests" in r.headers]  # uncounted
    # Each call is bounded by the limiter's timeout (and the router's admission
    # timeout, also failing open), not hung.
    assert max(took) < 3, took

    deadline = time.monotonic() + 10
    while "x-ratelimit-limit-requests" not in post(stack, secret).headers:
        assert time.monotonic() < deadline, "the limiter did not come back after SIGCONT"
        time.sleep(0.2)
