"""Configuration of the provider simulator.

Every timing and fault knob here is a default: most can be overridden per
request with an ``x-sim-*`` header (see :mod:`lockgate.sim.server`).

A config is loaded from a mapping (``SimConfig.from_dict``) or from a YAML or
JSON file (``SimConfig.from_file``; JSON is valid YAML). Unknown keys are an
error, so a typo never silently falls back to a default.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Upper bound on the words of one reply (config or ``x-sim-reply-words``).
MAX_REPLY_WORDS = 100_000
#: Upper bound on an embedding's dimensions (config or the ``dimensions`` param).
MAX_EMBEDDING_DIMENSIONS = 8192


class SimConfig(BaseModel):
    """Behaviour of the simulator. All durations are in milliseconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # -- timing ---------------------------------------------------------------
    #: Delay before a non-streamed reply (and before an injected error).
    latency_ms: float = Field(default=0.0, ge=0)
    #: Delay before the first chunk of a streamed reply (time to first token).
    ttft_ms: float = Field(default=0.0, ge=0)
    #: Pause between two content chunks of a streamed reply. With 0 the whole
    #: stream is written at once (after ``ttft_ms``).
    chunk_interval_ms: float = Field(default=0.0, ge=0)

    # -- reply shape ----------------------------------------------------------
    #: Number of content chunks of a streamed reply. ``None``: one chunk per
    #: word (and one for the final period). A fixed count groups the words in
    #: that many chunks, or splits the text by characters when there are fewer
    #: words than chunks (never more chunks than characters).
    chunk_count: int | None = Field(default=None, ge=1)
    #: Words of the deterministic reply (followed by a period).
    reply_words: int = Field(default=12, ge=0, le=MAX_REPLY_WORDS)

    # -- faults ---------------------------------------------------------------
    #: Share of chat/embedding requests answered with ``error_status`` instead
    #: of a reply. Drawn from a RNG seeded with ``seed``: the same sequence of
    #: requests fails the same way on every run.
    error_rate: float = Field(default=0.0, ge=0, le=1)
    #: Status of the errors injected by ``error_rate`` (400..599).
    error_status: int = Field(default=503, ge=400, le=599)
    #: Abort every stream after this many content chunks (no finish chunk, no
    #: ``data: [DONE]``). ``None``: streams complete.
    drop_stream_after_chunks: int | None = Field(default=None, ge=0)
    #: Seed of the ``error_rate`` RNG.
    seed: int = 0

    # -- API surface ----------------------------------------------------------
    #: Model ids listed by ``GET /v1/models`` (chat accepts any model id).
    models: list[str] = Field(default_factory=lambda: ["sim-small", "sim-large"])
    #: Dimensions of an embedding when the request does not ask for any.
    embedding_dimensions: int = Field(default=8, ge=1, le=MAX_EMBEDDING_DIMENSIONS)
    #: When set, every ``/v1`` request must send ``Authorization: Bearer <api_key>``.
    api_key: str | None = Field(default=None, min_length=1, repr=False)
    #: Largest accepted request body, in bytes.
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)

    @field_validator("models")
    @classmethod
    def _models_not_blank(cls, value: list[str]) -> list[str]:
        if any(not m or m.strip() != m for m in value):
            raise ValueError("model ids must be non-empty, without surrounding spaces")
        return value

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> SimConfig:
        """A config from a mapping (e.g. parsed YAML/JSON); ``None`` gives the defaults."""
        return cls.model_validate(dict(data or {}))

    @classmethod
    def from_file(cls, path: str | Path) -> SimConfig:
        """A config from a YAML or JSON file; an empty file gives the defaults."""
        text = Path(path).read_text(encoding="utf-8")
        data = yaml.safe_load(text)
        if data is not None and not isinstance(data, Mapping):
            raise ValueError(f"{path}: the simulator config must be a mapping")
        return cls.from_dict(data)
