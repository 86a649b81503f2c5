"""Acting on a stack another process runs: probe its components, stop it.

Everything goes through run/stack.json and signals to the supervisor; the
supervisor alone stops its children (in order), and the kernel's death signal
covers the case where it has to be killed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from lockgate.stack import state as state_file
from lockgate.stack.health import from_dict
from lockgate.stack.process import is_running


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int | None
    healthy: bool
    restarts: int
    endpoint: str
    log: str


async def probe(state: state_file.StackState, time_limit: float = 2.0) -> list[ComponentStatus]:
    """Check every component's health concurrently."""

    async def one(info: state_file.ComponentInfo) -> ComponentStatus:
        alive = info.pid is not None and is_running(info.pid)
        try:
            healthy = alive and await from_dict(info.health)(time_limit=time_limit)
        except ValueError:
            healthy = False
        return ComponentStatus(
            info.name, info.pid if alive else None, healthy, info.restarts, info.endpoint, info.log
        )

    return list(await asyncio.gather(*(one(c) for c in state.components)))


@dataclass(frozen=True)
class StopResult:
    pid: int
    #: False when the supervisor ignored SIGTERM for `timeout` and was killed.
    graceful: bool


def stop(state_path: Path, timeout: float = 30.0, poll: float = 0.1) -> StopResult | None:
    """SIGTERM the supervisor and wait for it to exit; SIGKILL its process group
    after `timeout`. None when no stack is running (a stale file is removed)."""
    try:
        current = state_file.read(state_path)
    except state_file.StateError:
        current = None
    if current is None or not current.alive():
        state_path.unlink(missing_ok=True)
        return None
    pid = current.pid
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        state_path.unlink(missing_ok=True)
        return StopResult(pid, True)
    if _wait_gone(pid, current.pid_start, timeout, poll):
        return StopResult(pid, True)
    _kill_group(pid)
    _wait_gone(pid, current.pid_start, 5.0, poll)
    state_file.remove(state_path, pid)
    return StopResult(pid, False)


def _wait_gone(pid: int, started: int | None, timeout: float, poll: float) -> bool:
    deadline = time.monotonic() + timeout
    while is_running(pid, started):
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)
    return True


def _kill_group(pid: int) -> None:
    """The supervisor's group if it leads one (a detached stack does), else just it.
    Its children die with it (PR_SET_PDEATHSIG)."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
