"""`lockgate up --detach`: run a supervisor in the background and wait until it
is ready, so the command returns only when the gateway answers (or with the
reason it could not start).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from lockgate.stack import state as state_file


class DetachError(Exception):
    """The background supervisor exited or did not become ready in time."""


def start_detached(
    argv: Sequence[str],
    *,
    state_path: Path,
    log_path: Path,
    timeout: float,
    env: Mapping[str, str] | None = None,
    poll: float = 0.1,
) -> state_file.StackState:
    """Start argv (a supervisor) in a new session with output appended to
    log_path; return its state once it reports ready."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        offset = log.tell()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            start_new_session=True,
            close_fds=True,
        )
    deadline = time.monotonic() + timeout
    try:
        while True:
            code = proc.poll()
            try:
                current = state_file.read(state_path)
            except state_file.StateError:
                current = None
            if current and current.pid == proc.pid and current.state == state_file.READY:
                return current
            if code is not None:
                raise DetachError(
                    f"the stack failed to start (supervisor exit code {code}); "
                    f"{_tail(log_path, offset)}"
                )
            if time.monotonic() > deadline:
                _stop(proc)
                raise DetachError(
                    f"the stack was not ready within {timeout:g} s; {_tail(log_path, offset)}"
                )
            time.sleep(poll)
    except KeyboardInterrupt:
        _stop(proc)
        raise


def _stop(proc: subprocess.Popen) -> None:
    """Abandoning the start: ask the supervisor to stop (it stops its children)."""
    try:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _tail(path: Path, offset: int, lines: int = 30) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", "replace").rstrip("\n")
    except OSError:
        text = ""
    if not text:
        return f"{path} is empty"
    body = "\n".join(f"  | {line}" for line in text.splitlines()[-lines:])
    return f"last lines of {path}:\n{body}"
