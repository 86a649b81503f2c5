"""Anthropic Messages request -> OpenAI chat body (`to_openai_request`).

Translation choices (each field without an exact OpenAI equivalent)
-------------------------------------------------------------------
* `max_tokens` -> `max_tokens`, not `max_completion_tokens`: every
  OpenAI-compatible server (vLLM, Ollama, Groq, Mistral, older Azure API
  versions) understands `max_tokens`; `max_completion_tokens` is newer and
  not universal. (An adapter for OpenAI's reasoning models may rename it.)
* `system` (string or text blocks) -> one leading system message, blocks joined
  with "\\n". Multiple text blocks in an assistant turn are joined the same way;
  a user turn keeps its blocks as separate content parts (a lone text block
  becomes a plain string, which every server accepts).
* `tool_result` blocks -> `role: "tool"` messages, in order, before the rest of
  the user turn (OpenAI requires tool messages right after the assistant's
  tool calls). Text content blocks are joined with "\\n". Images inside a tool
  result cannot go in a tool message, so they move to the user message that
  follows the tool messages. `is_error: true` has no field in OpenAI: the
  content is prefixed with "Error: " so the model still learns the call failed.
* `tool_use` ids are kept verbatim both ways, so the ids a client echoes back in
  `tool_result` match the provider's tool-call ids.
* `tool_choice`: auto/any/tool/none -> "auto"/"required"/named/"none";
  `disable_parallel_tool_use: true` -> `parallel_tool_calls: false`. A
  `tool_choice` of auto/none without `tools` is dropped (meaningless, and OpenAI
  rejects it); any/tool without tools is an error.
* `stop_sequences` -> `stop`; `metadata.user_id` -> `user`; `stream` -> `stream`
  with `stream_options.include_usage` (the ledger needs usage).
* `output_config.format` (JSON schema) -> `response_format` json_schema, strict.
* Dropped, being hints that do not change what is asked: `cache_control`
  (top level and on blocks), `citations` on text blocks, `service_tier`,
  `speed`, `diagnostics`, `thinking: {"type": "disabled"}` (the default), and
  `thinking` / `redacted_thinking` blocks in assistant turns (the model's prior
  reasoning; OpenAI messages cannot carry it).
"""

from __future__ import annotations

from typing import Any

import orjson

_ERROR_PREFIX = "Error: "


def to_openai_request(req: dict) -> dict:
    """The OpenAI chat body for a validated Anthropic Messages request."""
    messages: list[dict] = []
    system = req.get("system")
    if isinstance(system, list):
        system = "\n".join(block["text"] for block in system)
    if system:
        messages.append({"role": "system", "content": system})
    for message in req["messages"]:
        if message["role"] == "user":
            messages.extend(_user_messages(message["content"]))
        else:
            messages.append(_assistant_message(message["content"]))

    body: dict[str, Any] = {
        "model": req["model"],
        "messages": messages,
        "max_tokens": req["max_tokens"],
    }
    if req.get("stop_sequences"):
        body["stop"] = list(req["stop_sequences"])
    for name in ("temperature", "top_p"):
        if req.get(name) is not None:
            body[name] = req[name]
    tools = req.get("tools")
    if tools:
        body["tools"] = [_openai_tool(tool) for tool in tools]
        choice = req.get("tool_choice")
        if choice is not None:
            body["tool_choice"] = _openai_tool_choice(choice)
            if choice.get("disable_parallel_tool_use") and choice["type"] != "none":
                body["parallel_tool_calls"] = False
    user = (req.get("metadata") or {}).get("user_id")
    if user is not None:
        body["user"] = user
    fmt = (req.get("output_config") or {}).get("format")
    if fmt is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": fmt["schema"], "strict": True},
        }
    if req.get("stream"):
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _image_part(block: dict) -> dict:
    source = block["source"]
    if source["type"] == "base64":
        url = f"data:{source['media_type']};base64,{source['data']}"
    else:
        url = source["url"]
    return {"type": "image_url", "image_url": {"url": url}}


def _user_messages(content: str | list) -> list[dict]:
    """Tool messages for the tool results, then the rest of the turn as one user message."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    out: list[dict] = []
    parts: list[dict] = []
    for block in content:
        kind = block["type"]
        if kind == "text":
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image":
            parts.append(_image_part(block))
        elif kind == "tool_result":
            text, images = _tool_result_content(block.get("content"))
            if block.get("is_error"):
                text = _ERROR_PREFIX + text if text else _ERROR_PREFIX.rstrip(": ")
            out.append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": text})
            parts.extend(images)
    if len(parts) == 1 and parts[0]["type"] == "text":
        out.append({"role": "user", "content": parts[0]["text"]})
    elif parts:
        out.append({"role": "user", "content": parts})
    return out


def _tool_result_content(content: Any) -> tuple[str, list[dict]]:
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    texts = [part["text"] for part in content if part["type"] == "text"]
    images = [_image_part(part) for part in content if part["type"] == "image"]
    return "\n".join(texts), images


def _assistant_message(content: str | list) -> dict:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    calls: list[dict] = []
    for block in content:
        if block["type"] == "text":
            texts.append(block["text"])
        elif block["type"] == "tool_use":
            calls.append(
                {
                    "id": block["id"],
                    "type": "function",
                    "function": {
                        "name": block["name"],
                        "arguments": orjson.dumps(block["input"]).decode(),
                    },
                }
            )
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "\n".join(texts) if texts else (None if calls else ""),
    }
    if calls:
        message["tool_calls"] = calls
    return message


def _openai_tool(tool: dict) -> dict:
    function: dict[str, Any] = {"name": tool["name"]}
    if tool.get("description"):
        function["description"] = tool["description"]
    function["parameters"] = tool["input_schema"]
    if tool.get("strict") is not None:
        function["strict"] = tool["strict"]
    return {"type": "function", "function": function}


def _openai_tool_choice(choice: dict) -> Any:
    kind = choice["type"]
    if kind == "any":
        return "required"
    if kind == "tool":
        return {"type": "function", "function": {"name": choice["name"]}}
    return kind  # "auto" or "none"
