"""Provider simulator: a standalone OpenAI-compatible HTTP server with
deterministic replies and fault injection (see :mod:`lockgate.sim.server`)."""

from lockgate.sim.config import SimConfig
from lockgate.sim.knobs import SIM_HEADERS
from lockgate.sim.replies import count_tokens, prompt_tokens, reply_text
from lockgate.sim.server import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    create_app,
    run,
    serve,
)

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "SIM_HEADERS",
    "SimConfig",
    "count_tokens",
    "create_app",
    "prompt_tokens",
    "reply_text",
    "run",
    "serve",
]
