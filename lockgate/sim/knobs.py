"""Per-request knobs: the config, overridden by the x-sim-* headers."""

from __future__ import annotations

from typing import Any

from lockgate.sim.config import MAX_REPLY_WORDS, SimConfig
from lockgate.sim.errors import invalid

H_STATUS = "x-sim-status"
H_LATENCY = "x-sim-latency-ms"
H_TTFT = "x-sim-ttft-ms"
H_CHUNK_INTERVAL = "x-sim-chunk-interval-ms"
H_CHUNK_COUNT = "x-sim-chunk-count"
H_DROP_AFTER = "x-sim-drop-after-chunks"
H_REPLY_WORDS = "x-sim-reply-words"
H_FAIL_FIRST = "x-sim-fail-first"
H_SCENARIO = "x-sim-scenario"
H_ECHO = "x-sim-echo"
#: Every fault-injection header the simulator understands.
SIM_HEADERS = (
    H_STATUS,
    H_LATENCY,
    H_TTFT,
    H_CHUNK_INTERVAL,
    H_CHUNK_COUNT,
    H_DROP_AFTER,
    H_REPLY_WORDS,
    H_FAIL_FIRST,
    H_SCENARIO,
    H_ECHO,
)
MAX_SCENARIO_LEN = 128

MAX_DELAY_MS = 600_000.0


class Knobs:
    """The config values of one request, after the x-sim-* header overrides."""

    __slots__ = (
        "status", "latency", "ttft", "interval", "chunk_count", "drop_after", "words",
        "fail_first", "scenario", "echo",
    )

    def __init__(self, config: SimConfig, headers: Any):
        self.status: int | None = None
        self.latency = config.latency_ms / 1000.0
        self.ttft = config.ttft_ms / 1000.0
        self.interval = config.chunk_interval_ms / 1000.0
        self.chunk_count = config.chunk_count
        self.drop_after = config.drop_stream_after_chunks
        self.words = config.reply_words
        self.fail_first = 0
        self.scenario = ""
        #: x-sim-echo: 1 -> the reply repeats the request's messages.
        self.echo = False
        get = headers.get
        if (v := get(H_STATUS)) is not None:
            status = header_int(H_STATUS, v, 200, 599)
            if 200 < status < 400:
                raise invalid(
                    f"Invalid '{H_STATUS}': expected 200 or an error status 400..599.",
                    H_STATUS,
                    "invalid_value",
                )
            self.status = status
        if (v := get(H_LATENCY)) is not None:
            self.latency = header_ms(H_LATENCY, v)
        if (v := get(H_TTFT)) is not None:
            self.ttft = header_ms(H_TTFT, v)
        if (v := get(H_CHUNK_INTERVAL)) is not None:
            self.interval = header_ms(H_CHUNK_INTERVAL, v)
        if (v := get(H_CHUNK_COUNT)) is not None:
            self.chunk_count = header_int(H_CHUNK_COUNT, v, 1, 1_000_000)
        if (v := get(H_DROP_AFTER)) is not None:
            self.drop_after = header_int(H_DROP_AFTER, v, 0, 1_000_000_000)
        if (v := get(H_REPLY_WORDS)) is not None:
            self.words = header_int(H_REPLY_WORDS, v, 0, MAX_REPLY_WORDS)
        if (v := get(H_ECHO)) is not None:
            self.echo = header_int(H_ECHO, v, 0, 1) == 1
        if (v := get(H_FAIL_FIRST)) is not None:
            self.fail_first = header_int(H_FAIL_FIRST, v, 0, 1_000_000)
            self.scenario = (get(H_SCENARIO) or "").strip()
            if not self.scenario or len(self.scenario) > MAX_SCENARIO_LEN:
                raise invalid(
                    f"'{H_FAIL_FIRST}' needs an '{H_SCENARIO}' header of 1..{MAX_SCENARIO_LEN} "
                    "characters naming the sequence of requests it counts.",
                    H_SCENARIO, "invalid_value",
                )


def header_int(name: str, value: str, low: int, high: int) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise invalid(
            f"Invalid '{name}' header: expected an integer in {low}..{high}.", name, "invalid_value"
        )
    return number


def header_ms(name: str, value: str) -> float:
    try:
        ms = float(value.strip())
    except ValueError:
        ms = -1.0
    if not 0.0 <= ms <= MAX_DELAY_MS:  # also rejects nan
        raise invalid(
            f"Invalid '{name}' header: expected milliseconds in 0..{MAX_DELAY_MS:.0f}.",
            name,
            "invalid_value",
        )
    return ms / 1000.0
