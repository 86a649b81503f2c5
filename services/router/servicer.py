"""RouterService gRPC transport: provider-compatible HttpBody methods and the typed API."""

from __future__ import annotations

import time

from google.api import httpbody_pb2
from google.protobuf import json_format, struct_pb2

from lockgate.errors import InvalidRequest
from lockgate.grpc_server import REQUEST_ID_HEADER, metadata_value
from lockgate.identity import identity_from_metadata
from lockgate.router.v1 import router_service_pb2 as pb
from lockgate.router.v1 import router_service_pb2_grpc as pb_grpc
from lockgate.structs import struct_to_dict
from services.router.convert import (
    chat_body,
    completion_response,
    embeddings_body,
    embeddings_response,
    stream_response,
    token_usage,
)
from services.router.edge import Edge, Incoming, Reply, new_call
from services.router.openai_api import validate_chat_request, validate_embeddings_request
from services.router.prompt_api import PromptApis, answer_of
from services.router.service import Call, Router

#: Response header carrying the HTTP status of an HttpBody reply; Envoy's Lua
#: filter moves it to :status (see envoy/envoy.yaml.tmpl).
HTTP_STATUS_HEADER = "x-lockgate-http-status"


def _incoming(context) -> Incoming:
    metadata = context.invocation_metadata() or ()
    remaining = context.time_remaining()
    return Incoming(
        headers=tuple((k, v) for k, v in metadata
                      if isinstance(v, str) and not k.endswith("-bin")),
        request_id=metadata_value(metadata, REQUEST_ID_HEADER),
        deadline=time.monotonic() + remaining if remaining is not None else None,
    )


def _call(context, alias: str, kind: str = "chat") -> Call:
    return new_call(_incoming(context), alias, kind)


async def _send_head(context, reply: Reply) -> None:
    """The reply's headers as response metadata (Envoy makes them HTTP headers),
    with its status when it is not 200 (Envoy's Lua filter moves it to :status)."""
    headers = list(reply.headers)
    if reply.status != 200:
        headers.insert(0, (HTTP_STATUS_HEADER, str(reply.status)))
    if headers:
        await context.send_initial_metadata(tuple(headers))


async def _http_bodies(reply: Reply, context):
    await _send_head(context, reply)
    if reply.chunks is None:
        yield httpbody_pb2.HttpBody(content_type=reply.content_type, data=reply.body)
        return
    first = True
    try:
        async for chunk in reply.chunks:
            if first:  # the first message's content type is the response's
                yield httpbody_pb2.HttpBody(content_type=reply.content_type, data=chunk)
                first = False
            else:
                yield httpbody_pb2.HttpBody(data=chunk)
    finally:
        await reply.chunks.aclose()  # the client may be gone: meter and free the upstream now


class RouterServicer(pb_grpc.RouterServiceServicer):
    def __init__(self, router: Router, prompts: PromptApis | None = None):
        self.router = router
        self.edge = Edge(router)
        self.prompts = prompts or PromptApis(None)

    async def OpenAIChatCompletions(self, request, context):
        reply = await self.edge.openai_chat(request.http_body.data, _incoming(context))
        async for message in _http_bodies(reply, context):
            yield message

    async def AnthropicMessages(self, request, context):
        reply = await self.edge.anthropic_messages(request.http_body.data, _incoming(context))
        async for message in _http_bodies(reply, context):
            yield message

    async def OpenAIEmbeddings(self, request, context) -> httpbody_pb2.HttpBody:
        reply = await self.edge.openai_embeddings(request.http_body.data, _incoming(context))
        await _send_head(context, reply)
        return httpbody_pb2.HttpBody(content_type=reply.content_type, data=reply.body)

    async def OpenAIListModels(self, request, context) -> httpbody_pb2.HttpBody:
        reply = await self.edge.openai_models(_incoming(context))
        await _send_head(context, reply)
        return httpbody_pb2.HttpBody(content_type=reply.content_type, data=reply.body)

    async def CreateChatCompletion(self, request, context) -> pb.CreateChatCompletionResponse:
        body = validate_chat_request(
            chat_body(request.model, request.messages, request.parameters, stream=False)
        )
        call = _call(context, request.model)
        reply = await self.router.chat(call, body)
        return completion_response(reply, call.alias, call.request_id, call.usage)

    async def ListModels(self, request, context) -> pb.ListModelsResponse:
        if request.kind not in ("", "chat", "embeddings"):
            raise InvalidRequest("kind must be chat, embeddings or empty", param="kind")
        caller = identity_from_metadata(context.invocation_metadata())
        return pb.ListModelsResponse(models=[
            pb.Model(id=alias, kind=cfg.kind, description=cfg.description)
            for alias, cfg in await self.router.aliases(caller, request.kind or None)
        ])

    async def CreateEmbeddings(self, request, context) -> pb.CreateEmbeddingsResponse:
        body = validate_embeddings_request(embeddings_body(request))
        call = _call(context, request.model, kind="embeddings")
        reply = await self.router.embed(call, body)
        return embeddings_response(reply, call.alias, call.request_id, call.usage)

    async def InvokePromptApi(self, request, context) -> pb.InvokePromptApiResponse:
        caller = identity_from_metadata(context.invocation_metadata())
        document = struct_to_dict(request.input) if request.HasField("input") else {}
        invocation = self.prompts.prepare(caller.tenant_id, request.api, request.version,
                                          document)
        call = _call(context, invocation.body["model"])
        reply = await self.router.chat(call, invocation.body)
        output, text, finish = answer_of(reply, invocation.output_schema)
        value = struct_pb2.Value()
        json_format.ParseDict(output, value)
        return pb.InvokePromptApiResponse(
            id=str(reply.get("id") or ""), api_id=invocation.route.api_id,
            version=invocation.route.version, output=value, text=text, finish_reason=finish,
            usage=token_usage(call.usage), request_id=call.request_id,
        )

    async def StreamChatCompletion(self, request, context):
        body = validate_chat_request(
            chat_body(request.model, request.messages, request.parameters, stream=True)
        )
        call = _call(context, request.model)
        async for chunk in self.router.stream(call, body):
            yield stream_response(chunk, call.alias, call.request_id, call.usage)
