"""Spawning children that cannot outlive the supervisor, and signalling them.

Each child gets its own process group (so Ctrl-C in a terminal reaches only the
supervisor, which then stops children in order, and so a whole group can be
killed) and PR_SET_PDEATHSIG=SIGKILL (so the kernel kills it if the supervisor
dies in any way, SIGKILL included). Linux-only; elsewhere the death signal is
skipped.

A child can be started under SCHED_BATCH (`batch`): the kernel then treats it
as CPU-bound throughput work, whose wakeups do not preempt the running
process; it still gets its fair share of the CPU, at the next tick or when a
CPU is idle. Set between fork and exec, so the program and every thread it
starts inherit it. Lowering one's own scheduling class needs no privilege.
Where there is no SCHED_BATCH (not Linux), it is skipped.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl
    except (OSError, AttributeError):
        return None


# Loaded once in the parent: the code between fork and exec must do as little as possible.
_prctl = _load_prctl()


_SCHED_BATCH = getattr(os, "SCHED_BATCH", None)


def die_with_parent(parent_pid: int, *, batch: bool = False) -> Callable[[], None]:
    """A preexec_fn: ask for SIGKILL when the parent dies, and close the race
    where the parent died before the request was made; with `batch`, switch to
    SCHED_BATCH."""

    def setup() -> None:
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGKILL)
        if batch and _SCHED_BATCH is not None:
            try:
                os.sched_setscheduler(0, _SCHED_BATCH, os.sched_param(0))
            except OSError:
                pass  # a kernel or sandbox that refuses it: the default policy then

    return setup


async def spawn(
    argv: Sequence[str], env: Mapping[str, str] | None, log_path: Path, *, batch: bool = False
) -> asyncio.subprocess.Process:
    """Start argv with stdout+stderr appended to log_path, in its own process group
    (with `batch`, under SCHED_BATCH)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        return await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_fd,
            stderr=asyncio.subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            process_group=0,
            preexec_fn=die_with_parent(os.getpid(), batch=batch),
        )
    finally:
        os.close(log_fd)


def signal_group(pgid: int, sig: int) -> bool:
    """Send sig to a process group; False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return False


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat fields after the command name (state first), or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw.rsplit(")", 1)[1].split()


def start_time(pid: int) -> int | None:
    """The process start time in clock ticks since boot (tells pid reuse apart)."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def is_running(pid: int, started: int | None = None) -> bool:
    """True when pid is alive, not a zombie, and (if given) started at `started`."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    fields = _stat_fields(pid)
    if fields is None:
        # No /proc: alive on other systems; on Linux it just exited.
        return not sys.platform.startswith("linux")
    if fields[0] in ("Z", "X"):
        return False
    return started is None or start_time(pid) == started
