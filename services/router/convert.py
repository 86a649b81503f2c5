"""Typed router API (proto) <-> the OpenAI dialect used inside the router."""

from __future__ import annotations

from google.protobuf.json_format import MessageToDict

from lockgate.common.v1 import common_pb2
from lockgate.errors import InvalidRequest
from lockgate.router.v1 import router_service_pb2 as pb
from services.router.openai_api import TokenCounts, usage_of


def _message(m: pb.ChatMessage, index: int) -> dict:
    out: dict = {"role": m.role}
    if m.parts:
        if m.content:
            raise InvalidRequest(
                "a message has either content or parts, not both", param=f"messages[{index}]"
            )
        out["content"] = [_part(p) for p in m.parts]
    elif m.content or not m.tool_calls:
        out["content"] = m.content
    else:
        out["content"] = None  # an assistant turn that only calls tools
    if m.name:
        out["name"] = m.name
    if m.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function",
             "function": {"name": c.name, "arguments": c.arguments or "{}"}}
            for c in m.tool_calls
        ]
    if m.tool_call_id:
        out["tool_call_id"] = m.tool_call_id
    return out


def _part(p: pb.ContentPart) -> dict:
    if p.WhichOneof("part") == "image_url":
        image = {"url": p.image_url.url}
        if p.image_url.detail:
            image["detail"] = p.image_url.detail
        return {"type": "image_url", "image_url": image}
    return {"type": "text", "text": p.text}


def _tool(t: pb.Tool) -> dict:
    function: dict = {"name": t.name}
    if t.description:
        function["description"] = t.description
    if t.HasField("parameters"):
        function["parameters"] = MessageToDict(t.parameters)
    if t.strict:
        function["strict"] = True
    return {"type": "function", "function": function}


def _tool_choice(choice: str) -> str | dict:
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def _response_format(rf: pb.ResponseFormat) -> dict:
    if rf.type != "json_schema":
        return {"type": rf.type}
    schema: dict = {"name": rf.schema_name or "response"}
    if rf.HasField("schema"):
        schema["schema"] = MessageToDict(rf.schema)
    if rf.strict:
        schema["strict"] = True
    return {"type": "json_schema", "json_schema": schema}


def chat_body(model: str, messages, params: pb.ChatParameters, stream: bool) -> dict:
    body: dict = {
        "model": model,
        "messages": [_message(m, i) for i, m in enumerate(messages)],
        "stream": stream,
    }
    for field in ("temperature", "top_p", "seed", "parallel_tool_calls"):
        if params.HasField(field):
            body[field] = getattr(params, field)
    if params.HasField("max_tokens"):
        body["max_completion_tokens"] = params.max_tokens
    if params.stop:
        body["stop"] = list(params.stop)
    if params.user:
        body["user"] = params.user
    if params.tools:
        body["tools"] = [_tool(t) for t in params.tools]
    if params.tool_choice:
        body["tool_choice"] = _tool_choice(params.tool_choice)
    if params.response_format.type:
        body["response_format"] = _response_format(params.response_format)
    return body


def embeddings_body(request: pb.CreateEmbeddingsRequest) -> dict:
    body: dict = {"model": request.model, "input": list(request.inputs)}
    if request.dimensions:
        body["dimensions"] = request.dimensions
    if request.user:
        body["user"] = request.user
    return body


def token_usage(usage: TokenCounts | None) -> common_pb2.TokenUsage:
    usage = usage or TokenCounts()
    return common_pb2.TokenUsage(
        input_tokens=usage.input,
        output_tokens=usage.output,
        total_tokens=usage.input + usage.output,
        cached_input_tokens=usage.cached_input,
        estimated=usage.estimated,
    )


def _tool_calls(calls) -> list[pb.ToolCall]:
    out = []
    for call in calls or ():
        function = call.get("function") or {}
        out.append(pb.ToolCall(id=call.get("id") or "", name=function.get("name") or "",
                               arguments=function.get("arguments") or ""))
    return out


def completion_response(
    reply: dict, alias: str, request_id: str, usage: TokenCounts | None
) -> pb.CreateChatCompletionResponse:
    """`usage` is the call's (the provider's, or Lockgate's estimate)."""
    choices = []
    for i, choice in enumerate(reply.get("choices") or []):
        message = choice.get("message") or {}
        content = message.get("content")
        choices.append(
            pb.ChatChoice(
                index=int(choice.get("index", i)),
                message=pb.ChatMessage(
                    role=message.get("role") or "assistant",
                    content=content if isinstance(content, str) else "",
                    tool_calls=_tool_calls(message.get("tool_calls")),
                ),
                finish_reason=choice.get("finish_reason") or "",
            )
        )
    return pb.CreateChatCompletionResponse(
        id=str(reply.get("id", "")),
        created=int(reply.get("created") or 0),
        model=alias,
        choices=choices,
        usage=token_usage(usage),
        request_id=request_id,
    )


def stream_response(
    chunk: dict, alias: str, request_id: str, call_usage: TokenCounts | None = None
) -> pb.StreamChatCompletionResponse:
    """`call_usage`: the call's usage so far, which marks an estimate as such."""
    choices = []
    for i, choice in enumerate(chunk.get("choices") or []):
        delta = choice.get("delta") or {}
        calls = [
            pb.ToolCallDelta(
                index=int(c.get("index", 0)), id=c.get("id") or "",
                name=(c.get("function") or {}).get("name") or "",
                arguments=(c.get("function") or {}).get("arguments") or "",
            )
            for c in delta.get("tool_calls") or ()
        ]
        choices.append(
            pb.StreamChoice(
                index=int(choice.get("index", i)),
                delta=pb.ChatDelta(role=delta.get("role") or "",
                                   content=delta.get("content") or "", tool_calls=calls),
                finish_reason=choice.get("finish_reason") or "",
            )
        )
    usage = usage_of(chunk)
    if usage is not None and call_usage is not None and call_usage.estimated:
        usage = call_usage
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


def embeddings_response(
    reply: dict, alias: str, request_id: str, usage: TokenCounts | None
) -> pb.CreateEmbeddingsResponse:
    embeddings = []
    for i, item in enumerate(reply.get("data") or []):
        vector = item.get("embedding")
        if isinstance(vector, str):  # base64 was not asked for by the typed API
            raise InvalidRequest("the provider sent base64 embeddings", param="encoding_format")
        embeddings.append(pb.Embedding(index=int(item.get("index", i)), values=vector or []))
    return pb.CreateEmbeddingsResponse(
        model=alias, embeddings=embeddings, usage=token_usage(usage),
        request_id=request_id,
    )
