"""The provider simulator: an HTTP server speaking OpenAI's Chat Completions wire format.

It is the default upstream of the gateway and the provider of tests and
benchmarks, so it is built to be cheap per request: no logging per request (no
access log either), orjson everywhere, the fixed parts of responses encoded
once, and a streamed reply written in one go when it is not paced: with no
``ttft_ms``, no ``chunk_interval_ms`` and no drop, the SSE body (byte for byte
the same events) is sent with a ``Content-Length`` in one write; otherwise it
is sent chunked (``Transfer-Encoding: chunked``), one write per paced chunk.

Routes
------
``POST /v1/chat/completions``
    OpenAI's ``chat.completion`` object, or with ``"stream": true`` a
    ``text/event-stream`` of ``chat.completion.chunk`` objects ending with
    ``data: [DONE]``. Any model id is accepted. The reply is deterministic
    (see :mod:`lockgate.sim.replies`). Honours ``max_tokens`` /
    ``max_completion_tokens`` (finish_reason ``length``), ``n``, ``stop`` and
    ``stream_options.include_usage``. With ``tools`` (function tools; checked,
    like ``tool_choice`` none / auto / required / named and
    ``parallel_tool_calls``, with OpenAI's 400s) the model may call one: the
    decision and arguments come from :func:`lockgate.sim.tools.choose_call`
    (after a ``tool`` message it answers in text unless forced), the reply is
    ``content: null`` with ``tool_calls`` (id ``call_…``) and finish_reason
    ``tool_calls``, streamed as OpenAI does (id and name first, then the
    arguments in fragments); the arguments count as completion tokens.
    ``response_format`` (checked, with OpenAI's 400s): ``json_schema`` makes
    the content a compact JSON document valid against the schema (strict:
    every property), deterministic per messages and choice; ``json_object``
    makes it ``{"text": <reply words>}`` (see :mod:`lockgate.sim.structured`).
    The JSON is streamed one token per chunk, counted as completion tokens,
    and cut by ``stop`` / ``max_tokens`` like any reply (finish_reason
    ``length``: then it is not valid JSON, as with OpenAI). A tool call, when
    the model makes one, comes instead of the JSON.
``POST /v1/embeddings``
    OpenAI's embeddings list; deterministic unit vectors of
    ``embedding_dimensions`` floats (or the ``dimensions`` param), as floats or
    with ``encoding_format: "base64"``.
``GET /v1/models``, ``GET /v1/models/{id}``
    The configured ``models``.
``POST /v1/messages``
    Anthropic's Messages API (``x-api-key``, ``anthropic-version``; text,
    tool_use, ``stop_sequences``, ``max_tokens``, streams with ``event:``
    lines), with Anthropic-shaped errors; same reply words and the same
    ``x-sim-*`` faults as chat completions (see :mod:`lockgate.sim.anthropic`).
``POST /openai/deployments/{deployment}/chat/completions``, ``.../embeddings``
    Azure OpenAI's deployment routes, served by the OpenAI handlers above
    (the body's ``model``, which Azure clients set to the deployment name,
    names the model). They need an ``api-version`` query parameter (else
    400 ``MissingApiVersionParameter``) and take the key in an ``api-key``
    header as well as Bearer; a wrong or missing key is Azure's 401
    (see :mod:`lockgate.sim.azure`).
``POST /v1beta/models/{model}:{method}``
    Google's Gemini API: ``generateContent``, ``streamGenerateContent``,
    ``embedContent``, ``batchEmbedContents`` (``x-goog-api-key`` or ``?key=``;
    contents, system instruction, function calling, JSON mode, ``alt=sse``
    streams or a JSON array), with Google-shaped errors; same reply words and
    ``x-sim-*`` faults, plus ``x-sim-safety-block`` (see :mod:`lockgate.sim.gemini`).
``GET /healthz``
    ``200 ok`` (never needs a key, never fails by injection).

Errors are OpenAI-shaped: ``{"error": {"message", "type", "param", "code"}}``,
a stack trace is never sent. Order of checks on ``/v1`` routes: API key (401),
``x-sim-*`` headers (400), request body (400/413), injected faults, reply.

Per-request fault injection (headers override :class:`SimConfig`)
----------------------------------------------------------------
``x-sim-status: <code>``
    Answer with that status (400..599) and an OpenAI-shaped error body instead
    of a reply (after ``latency_ms``). 429 also sends ``retry-after: 1``.
    ``200`` means "no injected error" (it also skips ``error_rate``).
``x-sim-latency-ms: <ms>``
    Delay before a non-streamed reply or an injected error (``latency_ms``).
``x-sim-ttft-ms: <ms>``
    Delay before the first chunk of a stream (``ttft_ms``).
``x-sim-chunk-interval-ms: <ms>``
    Pause between content chunks of a stream (``chunk_interval_ms``).
``x-sim-chunk-count: <n>``
    Number of content chunks of a stream (``chunk_count``).
``x-sim-drop-after-chunks: <k>``
    Stream the role chunk and ``k`` content chunks, then close the connection
    without the finish chunk, the usage chunk or ``data: [DONE]`` (the HTTP
    chunked body is left incomplete). ``drop_stream_after_chunks``.
``x-sim-reply-words: <n>``
    Words of the reply (``reply_words``).
``x-sim-echo: 1``
    Template tests: the reply content is the request's messages, one
    ``<role>: <text>`` line each (joined by ``\n``; a content's text parts
    concatenated, its other parts and a null content give nothing), so a
    test sees exactly what was rendered and sent. It takes precedence over
    ``response_format`` and ``tools`` (no JSON, no tool call), is never cut
    by ``stop`` or ``max_tokens`` (finish_reason ``stop``), is streamed one
    token per chunk and counted as completion tokens; every choice of ``n``
    is the same. ``0`` (the default) turns it off. The Anthropic and Gemini
    dialects echo too (their system prompt as a ``system`` line, Gemini's
    roles ``user`` / ``model``).
``x-sim-fail-first: <n>`` with ``x-sim-scenario: <id>``
    The first ``n`` requests carrying that scenario id fail (with
    ``x-sim-status``, default 503), later ones are answered: a provider that
    recovers, for retry and circuit-breaker tests. Counted per simulator
    process; each dialect honours it.

An invalid header value is answered with a 400 naming the header in ``param``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from aiohttp import web

from lockgate.sim import anthropic, azure, gemini, replies, streaming
from lockgate.sim.config import SimConfig
from lockgate.sim.embeddings import embeddings
from lockgate.sim.errors import (
    JSON_HEADERS,
    SimError,
    bad_type,
    error_response,
    int_param,
    invalid,
    read_json,
)
from lockgate.sim.knobs import Knobs
from lockgate.sim.openai_tools import ToolReply, check_tool_turn, parse_tools, tool_reply
from lockgate.sim.response_format import parse_response_format
from lockgate.sim.state import STATE, ShuttingDown, State

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 18090
SYSTEM_FINGERPRINT = "fp_lockgate_sim"
#: Seconds in-flight requests get to finish when the server stops.
SHUTDOWN_TIMEOUT = 1.0


_MAX_N = 128
_MAX_STOP = 4
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})

# -- fixed parts of the responses, encoded once ---------------------------------
_FP = orjson.Fragment(orjson.dumps(SYSTEM_FINGERPRINT))
_PROMPT_DETAILS = orjson.Fragment(b'{"cached_tokens":0}')
_COMPLETION_DETAILS = orjson.Fragment(b'{"reasoning_tokens":0}')
_CHUNK_OBJECT = b'","object":"chat.completion.chunk","created":'
_CHUNK_CHOICES = b',"system_fingerprint":' + orjson.dumps(SYSTEM_FINGERPRINT) + b',"choices":['
_DELTA = b',"delta":'
_NOT_FINISHED = b',"logprobs":null,"finish_reason":null}'
_ROLE_DELTA = _DELTA + b'{"role":"assistant","content":""}' + _NOT_FINISHED
_CONTENT_DELTA = _DELTA + b'{"content":'
_CONTENT_END = b"}" + _NOT_FINISHED
_FINISH_DELTA = _DELTA + b'{},"logprobs":null,"finish_reason":"'
_FINISH_REASONS = {"stop": b'stop"}', "length": b'length"}', "tool_calls": b'tool_calls"}'}
_END_NO_USAGE = b"]}\n\n"
_END_NULL_USAGE = b'],"usage":null}\n\n'
_DONE = b"data: [DONE]\n\n"


# -- chat completions -------------------------------------------------------------


class _Chat:
    __slots__ = (
        "model", "messages", "stream", "include_usage", "n", "stop", "max_tokens",
        "tools", "tool_choice", "forced_tool", "response_format",
    )  # fmt: skip


def _parse_chat(body: dict[str, Any]) -> _Chat:
    chat = _Chat()
    model = body.get("model")
    if model is None:
        raise invalid("you must provide a model parameter", "model", "missing_required_parameter")
    if not isinstance(model, str):
        raise bad_type("model", "string", model)
    chat.model = model

    messages = body.get("messages")
    if messages is None:
        raise invalid(
            "Missing required parameter: 'messages'.", "messages", "missing_required_parameter"
        )
    if not isinstance(messages, list):
        raise bad_type("messages", "array", messages)
    if not messages:
        raise invalid(
            "Invalid 'messages': empty array. Expected an array with minimum length "
            "1, but got an empty array instead.",
            "messages",
            "empty_array",
        )
    calls: set[str] | None = None  # tool call ids a `tool` message may answer
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise bad_type(f"messages[{i}]", "object", message)
        role = message.get("role")
        if role not in _ROLES:
            if role is None:
                raise invalid(
                    f"Missing required parameter: 'messages[{i}].role'.",
                    f"messages[{i}].role",
                    "missing_required_parameter",
                )
            raise invalid(
                f"Invalid value: {str(role)[:40]!r}. Supported values are: "
                "'system', 'assistant', 'user', 'function', 'tool', and "
                "'developer'.",
                f"messages[{i}].role",
                "invalid_value",
            )
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise bad_type(f"messages[{i}].content", "string or array", content)
        if calls is not None or role in ("tool", "assistant"):
            calls = check_tool_turn(message, i, calls)
    chat.messages = messages

    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise bad_type("stream", "boolean", stream)
    chat.stream = bool(stream)
    options = body.get("stream_options")
    chat.include_usage = False
    if options is not None:
        if not isinstance(options, dict):
            raise bad_type("stream_options", "object", options)
        if not chat.stream:
            raise invalid(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                "stream_options",
                "invalid_value",
            )
        chat.include_usage = options.get("include_usage") is True

    chat.n = int_param(body, "n", 1, _MAX_N) or 1
    max_tokens = int_param(body, "max_completion_tokens", 1, 2**31 - 1)
    if max_tokens is None:
        max_tokens = int_param(body, "max_tokens", 1, 2**31 - 1)
    chat.max_tokens = max_tokens

    stop = body.get("stop")
    if stop is None:
        chat.stop = None
    elif isinstance(stop, str):
        chat.stop = [stop]
    elif isinstance(stop, list):
        if len(stop) > _MAX_STOP:
            raise invalid(
                f"Invalid 'stop': array too long. Expected an array with maximum "
                f"length {_MAX_STOP}, but got an array with length {len(stop)} "
                "instead.",
                "stop",
                "array_above_max_length",
            )
        for item in stop:
            if not isinstance(item, str):
                raise bad_type("stop", "string or array of strings", item)
        chat.stop = stop
    else:
        raise bad_type("stop", "string or array of strings", stop)
    chat.tools, chat.tool_choice, chat.forced_tool = parse_tools(body)
    chat.response_format = parse_response_format(body)
    return chat


async def chat_completions(request: web.Request) -> web.StreamResponse:
    state: State = request.app[STATE]
    knobs = state.prelude(request)
    chat = _parse_chat(await read_json(request))

    key = replies.messages_key(chat.messages)
    tool = None
    if chat.tools is not None and not knobs.echo:
        tool = tool_reply(chat.tools, chat.tool_choice, chat.forced_tool, chat.messages, key)
    if tool is None:
        # before the injected faults: an unanswerable schema is a 400 of the body
        completions = _completions(chat, knobs, key)
        completion = sum(c.tokens for c in completions)
    else:
        completions = []
        completion = chat.n * tool.tokens
    await state.fault(knobs)
    prompt = replies.prompt_tokens(chat.messages)
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": _PROMPT_DETAILS,
        "completion_tokens_details": _COMPLETION_DETAILS,
    }
    cid = state.next_id("chatcmpl-")
    created = int(time.time())
    if chat.stream:
        role, content, tail = _stream_frames(chat, knobs, completions, tool, usage, cid, created)
        return await streaming.send(request, knobs, role, content, tail, streaming.SSE_HEADERS)

    if knobs.latency > 0:
        await state.pause(knobs.latency)
    if tool is None:
        answers = [
            ({"role": "assistant", "content": c.text, "refusal": None}, c.finish_reason)
            for c in completions
        ]
    else:
        answers = [(tool.message(), tool.finish_reason)] * chat.n
    body = orjson.dumps(
        {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": chat.model,
            "choices": [
                {"index": i, "message": message, "logprobs": None, "finish_reason": finish}
                for i, (message, finish) in enumerate(answers)
            ],
            "usage": usage,
            "system_fingerprint": _FP,
        }
    )
    return web.Response(body=body, headers=JSON_HEADERS)


def _completions(chat: _Chat, knobs: Knobs, key: bytes) -> list[replies.Completion]:
    """The text choices: the echo, the JSON of ``response_format``, or the words."""
    if knobs.echo:
        return [replies.echo(chat.messages)] * chat.n
    fmt = chat.response_format
    if fmt is not None:
        return [
            replies.finish(
                replies.text_pieces(fmt.text(key, knobs.words, i)),
                stop=chat.stop,
                max_tokens=chat.max_tokens,
            )
            for i in range(chat.n)
        ]
    return [
        replies.complete(key, knobs.words, i, stop=chat.stop, max_tokens=chat.max_tokens)
        for i in range(chat.n)
    ]


def _stream_frames(
    chat: _Chat,
    knobs: Knobs,
    completions: list[replies.Completion],
    tool: ToolReply | None,
    usage: dict[str, Any],
    cid: str,
    created: int,
) -> tuple[bytes, list[bytes], bytes]:
    """(role chunks, content chunks grouped by position, tail through [DONE]),
    one chunk per choice in each, as OpenAI sends them."""
    head = (
        b'data: {"id":"'
        + cid.encode()
        + _CHUNK_OBJECT
        + str(created).encode()
        + b',"model":'
        + orjson.dumps(chat.model)
        + _CHUNK_CHOICES
    )
    end = _END_NULL_USAGE if chat.include_usage else _END_NO_USAGE
    indexes = [b'{"index":' + str(i).encode() for i in range(chat.n)]

    answers: Sequence[replies.Completion | ToolReply]
    if tool is not None:
        role, content = _tool_chunks(head, end, indexes, tool, knobs.chunk_count)
        answers = [tool] * chat.n
    else:
        role = b"".join([part for idx in indexes for part in (head, idx, _ROLE_DELTA, end)])
        chunked = [replies.group_pieces(c.pieces, knobs.chunk_count) for c in completions]
        dumps = orjson.dumps
        if chat.n == 1:  # the common case, kept tight
            idx = indexes[0]
            content = [
                b"".join((head, idx, _CONTENT_DELTA, dumps(piece), _CONTENT_END, end))
                for piece in chunked[0]
            ]
        else:
            content = []
            for p in range(max(len(c) for c in chunked)):
                parts: list[bytes] = []
                for i, chunks in enumerate(chunked):
                    if p < len(chunks):
                        parts += (
                            head, indexes[i], _CONTENT_DELTA, dumps(chunks[p]), _CONTENT_END, end
                        )
                content.append(b"".join(parts))
        answers = completions

    tail_parts: list[bytes] = []
    for i, answer in enumerate(answers):
        tail_parts += (head, indexes[i], _FINISH_DELTA, _FINISH_REASONS[answer.finish_reason], end)
    if chat.include_usage:
        tail_parts += (head, b'],"usage":', orjson.dumps(usage), b"}\n\n")
    tail_parts.append(_DONE)
    return role, content, b"".join(tail_parts)


def _tool_chunks(
    head: bytes, end: bytes, indexes: list[bytes], tool: ToolReply, chunk_count: int | None
) -> tuple[bytes, list[bytes]]:
    """(role chunks, content chunks) of a streamed tool call: the deltas of
    :meth:`ToolReply.stream_deltas`, the same for every choice."""
    first, deltas = tool.stream_deltas(chunk_count)
    frames = []
    for delta in (first, *deltas):
        part = _DELTA + orjson.dumps(delta) + _NOT_FINISHED
        frames.append(b"".join([piece for idx in indexes for piece in (head, idx, part, end)]))
    return frames[0], frames[1:]


# -- models, health ----------------------------------------------------------------


async def list_models(request: web.Request) -> web.Response:
    state: State = request.app[STATE]
    knobs = state.prelude(request)
    if knobs.status not in (None, 200):
        await state.fault(knobs)
    return web.Response(body=state.models_body, headers=JSON_HEADERS)


async def retrieve_model(request: web.Request) -> web.Response:
    state: State = request.app[STATE]
    knobs = state.prelude(request)
    if knobs.status not in (None, 200):
        await state.fault(knobs)
    model = request.match_info["model"]
    body = state.model_bodies.get(model)
    if body is None:
        raise SimError(
            404,
            f"The model '{model[:200]}' does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )
    return web.Response(body=body, headers=JSON_HEADERS)


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


# -- app ------------------------------------------------------------------------------


@web.middleware
async def _boundary(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every error leaves as OpenAI-shaped JSON; never a stack trace."""
    try:
        return await handler(request)
    except SimError as exc:
        return exc.response()
    except ShuttingDown:
        return error_response(503, "The simulator is shutting down.")
    except ConnectionError:
        # The client went away (only the client's socket can fail here): nothing
        # to answer, aiohttp drops the connection quietly.
        return web.Response(status=500)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        if exc.status in (404, 405):
            message = f"Invalid URL ({request.method} {request.path[:200]})"
        else:
            message = exc.text or exc.reason
            if message.startswith(f"{exc.status}: "):
                message = message[len(f"{exc.status}: ") :]
        return error_response(exc.status, message, headers=headers)
    except Exception:
        log.exception("simulator: unexpected error on %s %s", request.method, request.path)
        return error_response(500, "The server had an error while processing your request.")


def create_app(config: SimConfig | None = None) -> web.Application:
    """The simulator's aiohttp application (see the module docstring for the routes)."""
    config = config or SimConfig()
    app = web.Application(client_max_size=config.max_body_bytes, middlewares=[_boundary])
    state = app[STATE] = State(config)

    async def on_shutdown(_: web.Application) -> None:
        state.wake_sleepers()  # delayed replies end now, not after the shutdown timeout

    app.on_shutdown.append(on_shutdown)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post("/v1/messages", anthropic.messages)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model}", retrieve_model)
    app.router.add_get("/healthz", healthz)
    app.router.add_post(gemini.ROUTE, gemini.model_action)
    app.router.add_post(
        "/openai/deployments/{deployment}/chat/completions", azure.deployment_route(chat_completions)
    )
    app.router.add_post("/openai/deployments/{deployment}/embeddings", azure.deployment_route(embeddings))
    return app


async def serve(
    host: str = DEFAULT_HOST, port: int = 0, config: SimConfig | None = None
) -> tuple[web.AppRunner, int]:
    """Starts the simulator on ``host:port`` (0: a free port) in the running loop.

    Returns the runner (``await runner.cleanup()`` stops it) and the bound port.
    """
    runner = web.AppRunner(
        create_app(config),
        access_log=None,
        handle_signals=False,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=1024)
        await site.start()
        bound = runner.addresses[0][1]
    except BaseException:
        await runner.cleanup()
        raise
    return runner, bound


def run(
    host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, config: SimConfig | None = None
) -> None:
    """Serves until SIGTERM or SIGINT, then stops cleanly. Uses uvloop when installed."""
    try:
        import uvloop

        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        loop_factory = None
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(_serve_until_signal(host, port, config or SimConfig()))
    except KeyboardInterrupt:  # signal handlers unavailable (e.g. not the main thread)
        pass


async def _serve_until_signal(host: str, port: int, config: SimConfig) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
    runner, bound = await serve(host, port, config)
    log.info("provider simulator listening on http://%s:%d/v1", host, bound)
    try:
        await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await runner.cleanup()
        log.info("provider simulator stopped")
