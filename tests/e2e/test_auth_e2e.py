"""The tenant wall at the edge, through the real stack: when auth cannot answer,
Envoy lets nothing through (fail closed)."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from lockgate.stack import state as stack_state

pytestmark = pytest.mark.e2e

CHAT = {"model": "demo", "messages": [{"role": "user", "content": "hello"}]}


def auth_pid(stack) -> int:
    saved = stack_state.read(stack.data_dir / "run" / "stack.json")
    assert saved is not None
    (auth,) = [c for c in saved.components if c.name == "auth"]
    assert auth.pid
    return auth.pid


def test_envoy_fails_closed_when_auth_does_not_answer(stack):
    url = f"{stack.base_url}/chat/completions"
    headers = {"authorization": f"Bearer {stack.admin_key}"}
    assert httpx.post(url, json=CHAT, headers=headers, timeout=10).status_code == 200

    pid = auth_pid(stack)
    os.kill(pid, signal.SIGSTOP)  # alive but silent: the worst case for a gateway
    try:
        started = time.monotonic()
        reply = httpx.post(url, json=CHAT, headers=headers, timeout=10)
        elapsed = time.monotonic() - started
    finally:
        os.kill(pid, signal.SIGCONT)
    assert reply.status_code == 503
    assert "choices" not in reply.text  # the router never saw the request
    assert elapsed < 5  # bounded by ext_authz's timeout, not hung

    deadline = time.monotonic() + 10
    while httpx.post(url, json=CHAT, headers=headers, timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "auth did not come back after SIGCONT"
        time.sleep(0.2)
