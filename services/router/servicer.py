"""RouterService gRPC transport: provider-compatible HttpBody methods and the typed API."""

from __future__ import annotations

import logging
import math
import time
import uuid

import orjson
from google.api import httpbody_pb2
from google.protobuf import json_format, struct_pb2

from lockgate.errors import InvalidRequest, LockgateError, as_lockgate_error, openai_error_body
from lockgate.grpc_server import REQUEST_ID_HEADER, metadata_value
from lockgate.identity import identity_from_metadata
from lockgate.router.v1 import router_service_pb2 as pb
from lockgate.router.v1 import router_service_pb2_grpc as pb_grpc
from lockgate.structs import struct_to_dict
from services.router.anthropic_edge import (
    PING_EVENT,
    StreamTranslator,
    anthropic_error_body,
    anthropic_error_status,
    error_event,
    parse_messages_request,
    to_anthropic_message,
    to_openai_request,
)
from services.router.cache import CACHE_STATUS_HEADER
from services.router.convert import (
    chat_body,
    completion_response,
    embeddings_body,
    embeddings_response,
    stream_response,
    token_usage,
)
from services.router.openai_api import (
    DONE_EVENT,
    openai_error_event,
    parse_chat_request,
    parse_embeddings_request,
    shape_chunk,
    shape_completion,
    validate_chat_request,
    validate_embeddings_request,
    wants_usage_in_stream,
)
from services.router.prompt_api import PromptApis, answer_of
from services.router.providers.http import CLIENT_HEADERS
from services.router.service import Call, Router

log = logging.getLogger("lockgate.router")

#: Response header carrying the HTTP status of an HttpBody reply; Envoy's Lua
#: filter moves it to :status (see envoy/envoy.yaml.tmpl).
HTTP_STATUS_HEADER = "x-lockgate-http-status"
JSON = "application/json"
SSE = "text/event-stream"


def _call(context, alias: str, kind: str = "chat") -> Call:
    metadata = context.invocation_metadata()
    CLIENT_HEADERS.set(tuple(
        (k, v) for k, v in metadata or () if isinstance(v, str) and not k.endswith("-bin")
    ))
    caller = identity_from_metadata(metadata)
    request_id = metadata_value(metadata, REQUEST_ID_HEADER) or str(uuid.uuid4())
    remaining = context.time_remaining()
    return Call(
        request_id=request_id, caller=caller, alias=alias, kind=kind,
        deadline=time.monotonic() + remaining if remaining is not None else None,
        cache_control=metadata_value(metadata, "cache-control"),
    )


async def _send_call_headers(context, call: Call) -> None:
    """`x-lockgate-cache: hit|miss|bypass` on aliases that cache, and the
    x-ratelimit-*-tokens headers under a token limit (Envoy makes response
    metadata HTTP headers)."""
    headers = list(call.response_headers)
    if call.cache_status:
        headers.append((CACHE_STATUS_HEADER, call.cache_status))
    if headers:
        await context.send_initial_metadata(tuple(headers))


class RouterServicer(pb_grpc.RouterServiceServicer):
    def __init__(self, router: Router, prompts: PromptApis | None = None):
        self.router = router
        self.prompts = prompts or PromptApis(None)

    async def OpenAIChatCompletions(self, request, context):
        """Exact OpenAI wire format: JSON, or SSE ending in `data: [DONE]`."""
        try:
            body = parse_chat_request(request.http_body.data)
            call = _call(context, body["model"])
            if not body.get("stream"):
                reply = await self.router.chat(call, body)
                await _send_call_headers(context, call)
                yield httpbody_pb2.HttpBody(content_type=JSON, data=shape_completion(reply, call.alias))
                return
            chunks = self.router.stream(call, body)
            first = await anext(chunks)
        except Exception as exc:  # noqa: BLE001 - every failure becomes an OpenAI error body
            yield await self._error_reply(exc, context)
            return
        await _send_call_headers(context, call)
        wants_usage = wants_usage_in_stream(body)
        yield httpbody_pb2.HttpBody(
            content_type=SSE, data=shape_chunk(first, call.alias, wants_usage) or b""
        )
        try:
            async for chunk in chunks:
                event = shape_chunk(chunk, call.alias, wants_usage)
                if event is not None:
                    yield httpbody_pb2.HttpBody(data=event)
            yield httpbody_pb2.HttpBody(data=DONE_EVENT)
        except Exception as exc:  # noqa: BLE001 - the status is sent: report in-band
            error = self._user_error(exc, call.request_id)
            yield httpbody_pb2.HttpBody(data=openai_error_event(openai_error_body(error)))
        finally:
            await chunks.aclose()  # the client may be gone: meter and free the upstream now

    async def AnthropicMessages(self, request, context):
        """Exact Anthropic Messages wire format, routed to any provider: JSON, or
        SSE with Anthropic's event sequence; errors in Anthropic's shape."""
        try:
            req = parse_messages_request(request.http_body.data)
            body = to_openai_request(req)
            call = _call(context, req["model"])
            if not req.get("stream"):
                reply = await self.router.chat(call, body)
                await _send_call_headers(context, call)
                message = to_anthropic_message(reply, call.alias)
                yield httpbody_pb2.HttpBody(content_type=JSON, data=orjson.dumps(message))
                return
            chunks = self.router.stream(call, body)
            first = await anext(chunks)
        except Exception as exc:  # noqa: BLE001 - every failure becomes an Anthropic error body
            yield await self._error_reply(exc, context, anthropic=True)
            return
        await _send_call_headers(context, call)
        translator = StreamTranslator(call.alias)
        try:
            events = translator.feed(first)
            yield httpbody_pb2.HttpBody(content_type=SSE, data=b"".join(events) + PING_EVENT)
            async for chunk in chunks:
                events = translator.feed(chunk)
                if events:
                    yield httpbody_pb2.HttpBody(data=b"".join(events))
            yield httpbody_pb2.HttpBody(data=b"".join(translator.finish()))
        except Exception as exc:  # noqa: BLE001 - the status is sent: report in-band
            yield httpbody_pb2.HttpBody(data=error_event(self._user_error(exc, call.request_id)))
        finally:
            await chunks.aclose()  # the client may be gone: meter and free the upstream now

    async def OpenAIEmbeddings(self, request, context) -> httpbody_pb2.HttpBody:
        """Exact OpenAI embeddings wire format."""
        try:
            body = parse_embeddings_request(request.http_body.data)
            call = _call(context, body["model"], kind="embeddings")
            reply = await self.router.embed(call, body)
            await _send_call_headers(context, call)
            return httpbody_pb2.HttpBody(content_type=JSON, data=shape_completion(reply, call.alias))
        except Exception as exc:  # noqa: BLE001 - every failure becomes an OpenAI error body
            return await self._error_reply(exc, context)

    async def OpenAIListModels(self, request, context) -> httpbody_pb2.HttpBody:
        """The aliases this caller may use: key scope and routing policy decide."""
        try:
            caller = identity_from_metadata(context.invocation_metadata())
            created = int(time.time())
            data = [
                {"id": alias, "object": "model", "created": created, "owned_by": "lockgate"}
                for alias, _ in await self.router.aliases(caller)
            ]
            return httpbody_pb2.HttpBody(
                content_type=JSON, data=orjson.dumps({"object": "list", "data": data})
            )
        except Exception as exc:  # noqa: BLE001 - every failure becomes an OpenAI error body
            return await self._error_reply(exc, context)

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

    @staticmethod
    def _user_error(exc: BaseException, request_id: str | None) -> LockgateError:
        if not isinstance(exc, LockgateError):
            log.error("unhandled error in chat completions", exc_info=exc)
        return as_lockgate_error(exc, request_id)

    async def _error_reply(
        self, exc: BaseException, context, anthropic: bool = False
    ) -> httpbody_pb2.HttpBody:
        """The error as the client's dialect shapes it, with its HTTP status and,
        when known, Retry-After."""
        request_id = metadata_value(context.invocation_metadata(), REQUEST_ID_HEADER)
        error = self._user_error(exc, request_id)
        if anthropic:
            status, data = anthropic_error_status(error), anthropic_error_body(error, request_id)
        else:
            status, data = error.status.http, openai_error_body(error)
        headers = [(HTTP_STATUS_HEADER, str(status))]
        if error.retry_after is not None:
            headers.append(("retry-after", str(max(1, math.ceil(error.retry_after)))))
        headers.extend(error.headers)
        await context.send_initial_metadata(tuple(headers))
        return httpbody_pb2.HttpBody(content_type=JSON, data=data)
