"""Typed router API (proto) <-> the OpenAI dialect used inside the router."""

from __future__ import annotations

from lockgate.common.v1 import common_pb2
from lockgate.router.v1 import router_service_pb2 as pb
from services.router.openai_api import TokenCounts, usage_of


def chat_body(model: str, messages, params: pb.ChatParameters, stream: bool) -> dict:
    body: dict = {
        "model": model,
        "messages": [
            {"role": m.role, "content": m.content, **({"name": m.name} if m.name else {})}
            for m in messages
        ],
        "stream": stream,
    }
    for field in ("temperature", "top_p", "max_tokens", "seed"):
        if params.HasField(field):
            body[field] = getattr(params, field)
    if params.stop:
        body["stop"] = list(params.stop)
    if params.user:
        body["user"] = params.user
    return body


def token_usage(usage: TokenCounts | None) -> common_pb2.TokenUsage:
    usage = usage or TokenCounts()
    return common_pb2.TokenUsage(
        input_tokens=usage.input,
        output_tokens=usage.output,
        total_tokens=usage.input + usage.output,
        cached_input_tokens=usage.cached_input,
    )


def completion_response(reply: dict, alias: str, request_id: str) -> pb.CreateChatCompletionResponse:
    choices = []
    for i, choice in enumerate(reply.get("choices") or []):
        message = choice.get("message") or {}
        choices.append(
            pb.ChatChoice(
                index=int(choice.get("index", i)),
                message=pb.ChatMessage(
                    role=message.get("role") or "assistant", content=message.get("content") or ""
                ),
                finish_reason=choice.get("finish_reason") or "",
            )
        )
    return pb.CreateChatCompletionResponse(
        id=str(reply.get("id", "")),
        created=int(reply.get("created") or 0),
        model=alias,
        choices=choices,
        usage=token_usage(usage_of(reply)),
        request_id=request_id,
    )


def stream_response(chunk: dict, alias: str, request_id: str) -> pb.StreamChatCompletionResponse:
    choices = []
    for i, choice in enumerate(chunk.get("choices") or []):
        delta = choice.get("delta") or {}
        choices.append(
            pb.StreamChoice(
                index=int(choice.get("index", i)),
                delta=pb.ChatDelta(role=delta.get("role") or "", content=delta.get("content") or ""),
                finish_reason=choice.get("finish_reason") or "",
            )
        )
    usage = usage_of(chunk)
    msg = pb.StreamChatCompletionResponse(
        id=str(chunk.get("id", "")),
        created=int(chunk.get("created") or 0),
        model=alias,
        choices=choices,
        request_id=request_id,
    )
    if usage is not None:
        msg.usage.CopyFrom(token_usage(usage))
    return msg
