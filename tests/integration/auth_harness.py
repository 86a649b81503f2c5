"""The auth service as Envoy sees it, in process: a real auth server (port 0,
SQLite or PostgreSQL, shipped policies) and the identity metadata Envoy would
forward — taken from a real Check answer for the presented key, never forged."""

from __future__ import annotations

import grpc
import orjson
from envoy.service.auth.v3 import attribute_context_pb2, external_auth_pb2
from google.api import httpbody_pb2
from google.rpc import code_pb2

from lockgate.router.v1 import router_service_pb2 as router_pb

CHAT = "/lockgate.router.v1.RouterService/OpenAIChatCompletions"


def grpc_frame(message) -> bytes:
    data = message.SerializeToString()
    return b"\0" + len(data).to_bytes(4, "big") + data


def check_request(key: str | None, *, path=CHAT, model="demo", rest=True, extra=None,
                  scheme="Bearer"):
    headers = {"content-type": "application/grpc"}
    if rest:
        headers["x-envoy-original-path"] = "/v1/chat/completions"
    if key is not None:
        headers["authorization"] = f"{scheme} {key}"
    headers.update(extra or {})
    body = router_pb.OpenAIChatCompletionsRequest(
        http_body=httpbody_pb2.HttpBody(
            content_type="application/json",
            data=orjson.dumps({"model": model, "messages": [{"role": "user", "content": "x"}]}),
        )
    )
    http = attribute_context_pb2.AttributeContext.HttpRequest(
        method="POST", path=path, headers=headers, raw_body=grpc_frame(body)
    )
    return external_auth_pb2.CheckRequest(
        attributes=attribute_context_pb2.AttributeContext(
            request=attribute_context_pb2.AttributeContext.Request(http=http)
        )
    )


async def identity_metadata(check_stub, key: str, method: str) -> tuple[tuple[str, str], ...]:
    """What Envoy forwards to the service for `key` calling `method` (gRPC client):
    the identity headers of an allowed Check. Raises PermissionError when denied."""
    reply = await check_stub.Check(check_request(key, path=method, model="", rest=False))
    if reply.status.code != code_pb2.OK:
        raise PermissionError(reply.denied_response.body)
    return tuple((h.header.key, h.header.value) for h in reply.ok_response.headers)


async def admin_call(check_stub, stub, key: str, rpc: str, request):
    """Call AuthService/<rpc> as `key` would through the gateway."""
    metadata = await identity_metadata(check_stub, key, f"/lockgate.auth.v1.AuthService/{rpc}")
    return await getattr(stub, rpc)(request, metadata=metadata)


def rpc_code(exc: grpc.aio.AioRpcError) -> grpc.StatusCode:
    return exc.code()
