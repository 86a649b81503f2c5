"""The tenant wall at the edge, through the real stack: when auth cannot answer,
Envoy lets nothing through (fail closed), in bounded time.

Where auth has a process of its own (`separate`), Envoy's ext_authz asks it
about every call. In the default layout auth shares the router's process and
the router checks the three hot REST calls itself, so there "auth alive but
silent" is the router silent too; the calls Envoy still checks (every other
route) fail closed the same way (docs/operators.md, "Failure behaviour")."""

from __future__ import annotations

import os
import signal
import time

import grpc
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


@pytest.mark.parametrize(("layout", "method", "path"), [
    ("separate", "POST", "/chat/completions"),
    ("grouped", "GET", "/models"),
])
def test_envoy_fails_closed_when_auth_does_not_answer(request, layout, method, path):
    stack = request.getfixturevalue("separate_stack" if layout == "separate" else "stack")
    url = f"{stack.base_url}{path}"
    headers = {"authorization": f"Bearer {stack.admin_key}"}
    body = CHAT if method == "POST" else None
    assert httpx.request(method, url, json=body, headers=headers, timeout=10).status_code == 200

    pid = auth_pid(stack)
    os.kill(pid, signal.SIGSTOP)  # alive but silent: the worst case for a gateway
    try:
        started = time.monotonic()
        reply = httpx.request(method, url, json=body, headers=headers, timeout=10)
        elapsed = time.monotonic() - started
    finally:
        os.kill(pid, signal.SIGCONT)
    assert reply.status_code == 503
    assert reply.json()["error"]["code"] == "access_check_unavailable"
    assert "choices" not in reply.text and "data" not in reply.json()  # the router never saw it
    assert elapsed < 5  # bounded by ext_authz's timeout, not hung

    deadline = time.monotonic() + 10
    while httpx.request(method, url, json=body, headers=headers, timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "auth did not come back after SIGCONT"
        time.sleep(0.2)


def test_a_grpc_client_gets_unavailable_when_auth_does_not_answer(stack):
    from lockgate.registry.v1 import registry_service_pb2 as reg_pb
    from lockgate.registry.v1 import registry_service_pb2_grpc as reg_grpc

    with grpc.insecure_channel(stack.grpc_target) as channel:
        registry = reg_grpc.RegistryServiceStub(channel)
        registry.ListApis(reg_pb.ListApisRequest(), metadata=stack.grpc_auth(), timeout=10)
        pid = auth_pid(stack)
        os.kill(pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as failed:
                registry.ListApis(reg_pb.ListApisRequest(), metadata=stack.grpc_auth(), timeout=10)
            elapsed = time.monotonic() - started
        finally:
            os.kill(pid, signal.SIGCONT)
    # grpc-status, not a JSON body: the client speaks gRPC.
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert elapsed < 5
