"""Provider simulator: a standalone OpenAI-compatible HTTP server with
deterministic replies and fault injection (see :mod:`lockgate.sim.server`)."""

from lockgate.sim.config import SimConfig
from lockgate.sim.knobs import SIM_HEADERS
from lockgate.sim.replies import count_tokens, echo_text, prompt_tokens, reply_text
from lockgate.sim.server import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    create_app,
    run,
    serve,
)
from lockgate.sim.structured import structured_text

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "SIM_HEADERS",
    "SimConfig",
    "count_tokens",
    "create_app",
    "echo_text",
    "prompt_tokens",
    "reply_text",
    "run",
    "serve",
    "structured_text",
]
