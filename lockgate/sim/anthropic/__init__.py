"""The simulator's Anthropic dialect: ``POST /v1/messages`` as Anthropic documents it.

One module per job:

* ``routes``: the ``POST /v1/messages`` handler (key check, faults, answers).
* ``validate``: the request checks (:func:`parse` -> :class:`MessagesRequest`).
* ``reply``: the deterministic answer (text or one ``tool_use`` block) and usage.
* ``stream``: the answer as Anthropic's server-sent events.
* ``errors``: Anthropic-shaped error answers.
"""

from lockgate.sim.anthropic.errors import error_response
from lockgate.sim.anthropic.reply import Answer, conversation, respond
from lockgate.sim.anthropic.routes import messages
from lockgate.sim.anthropic.stream import stream_events
from lockgate.sim.anthropic.validate import MessagesRequest, parse

__all__ = [
    "Answer",
    "MessagesRequest",
    "conversation",
    "error_response",
    "messages",
    "parse",
    "respond",
    "stream_events",
]
