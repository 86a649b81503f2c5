"""Writing a simulated response stream, for every dialect (OpenAI, Anthropic, Gemini).

A dialect hands over its stream as three parts: the ``head`` (OpenAI's role
chunks, Anthropic's events through the first block's start; Gemini has none),
the ``content`` chunks, one bytes per content position (what the pacing and
drop knobs count), and the ``tail`` (finish, usage, end marker). Then:

* Unpaced and complete (no ``ttft``, no ``interval`` or a single position, no
  drop): the body in one :class:`web.Response` with a ``Content-Length``, i.e.
  one write for headers and body. This is the benchmark case: keep it cheap.
* Otherwise a chunked :class:`web.StreamResponse`: status and headers leave at
  once, like a real provider's; after ``ttft`` the head with the first chunk,
  then one chunk per ``interval``; the tail goes with the last chunk or, with
  ``tail_apart``, as one more paced write. Without an interval, one write.
* ``drop_after`` k: the head and k chunks, no tail, then the connection is
  closed, so the chunked body stays unterminated. A server shutdown during a
  pause (:meth:`State.pause` raising :class:`ShuttingDown`) or an unexpected
  error cuts the stream the same way; a client that went away ends it quietly.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from aiohttp import web

from lockgate.sim.knobs import Knobs
from lockgate.sim.state import STATE, ShuttingDown

log = logging.getLogger(__name__)

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


async def send(
    request: web.Request,
    knobs: Knobs,
    head: bytes,
    content: list[bytes],
    tail: bytes,
    headers: Mapping[str, str],
    *,
    tail_apart: bool = False,
    dialect: str = "openai",
) -> web.StreamResponse:
    """Sends ``head``, ``content`` and ``tail`` paced and cut as the knobs say
    (see the module docstring); ``dialect`` names the stream in the log."""
    if knobs.drop_after is None:
        if knobs.ttft <= 0 and (knobs.interval <= 0 or (len(content) <= 1 and not tail_apart)):
            return web.Response(body=b"".join((head, *content, tail)), headers=headers)
        drop = False
    else:
        content = content[: knobs.drop_after]
        tail = b""
        drop = True

    if knobs.interval > 0 and (len(content) > 1 or tail_apart):
        writes = [head + content[0], *content[1:]] if content else [head]
        if tail_apart:
            writes.append(tail)
        else:
            writes[-1] += tail
    else:
        writes = [b"".join((head, *content, tail))]

    state = request.app[STATE]
    resp = web.StreamResponse(headers=headers)
    try:
        await resp.prepare(request)
        if knobs.ttft > 0:
            await state.pause(knobs.ttft)
        # Gemini has no head, and a cut stream may have no chunk: nothing to write then.
        for i, data in enumerate(w for w in writes if w):
            if i and knobs.interval > 0:
                await state.pause(knobs.interval)
            await resp.write(data)
    except ConnectionError:
        return resp  # the client went away: nothing left to do
    except ShuttingDown:
        drop = True
    except Exception:
        log.exception("simulator: %s stream failed", dialect)
        drop = True
    if drop and request.transport is not None:
        request.transport.close()  # flushes what was written; the chunked body stays unterminated
    return resp
