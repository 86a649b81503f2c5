"""Restart delays for crashed children: exponential, capped, and forgiven.

A child that crashes in a loop must not spin the CPU or flood its log, yet one
crash after a long healthy run should be restarted almost at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Backoff:
    """0.5 s, 1 s, 2 s, ... up to `maximum`; `reset()` after a long healthy run."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    #: Seconds a child must stay healthy before its next crash counts as the first.
    reset_after: float = 60.0
    _next: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial or self.factor < 1:
            raise ValueError("need 0 < initial <= maximum and factor >= 1")
        self._next = self.initial

    def next_delay(self) -> float:
        """The delay before the next restart; each call doubles the following one."""
        delay = self._next
        self._next = min(self.maximum, self._next * self.factor)
        return delay

    def reset(self) -> None:
        self._next = self.initial

    def on_crash(self, healthy_for: float | None) -> float:
        """The delay for a crash after `healthy_for` seconds healthy (None: never was)."""
        if healthy_for is not None and healthy_for >= self.reset_after:
            self.reset()
        return self.next_delay()
