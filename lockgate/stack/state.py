"""run/stack.json: how a running supervisor tells other commands about itself.

`lockgate status`, `lockgate down` and `lockgate up --detach` run in other
processes; this file (written atomically, removed on exit) is their only
contract with the supervisor. A file whose pid is gone is stale and ignored.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lockgate.stack.process import is_running, start_time

STARTING, READY, STOPPING = "starting", "ready", "stopping"


@dataclass
class ComponentInfo:
    name: str
    pid: int | None
    #: HealthCheck.describe() of the component, so status can probe it.
    health: dict[str, str]
    endpoint: str = ""
    log: str = ""
    restarts: int = 0


@dataclass
class StackState:
    pid: int
    state: str
    started_at: str
    data_dir: str
    #: Start time of `pid` (clock ticks since boot): guards against pid reuse.
    pid_start: int | None = None
    http_url: str | None = None
    ports: dict[str, int] = field(default_factory=dict)
    components: list[ComponentInfo] = field(default_factory=list)

    @classmethod
    def new(cls, data_dir: Path, **kwargs: Any) -> StackState:
        pid = os.getpid()
        return cls(
            pid=pid,
            pid_start=start_time(pid),
            state=STARTING,
            started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            data_dir=str(data_dir),
            **kwargs,
        )

    def alive(self) -> bool:
        """Whether the supervisor that wrote this is still running."""
        return is_running(self.pid, self.pid_start)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StackState:
        data = dict(data)
        data["components"] = [ComponentInfo(**c) for c in data.get("components", [])]
        return cls(**data)


class StateError(Exception):
    """stack.json exists but cannot be read."""


def write(path: Path, state: StackState) -> None:
    """Replace the file atomically: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state.to_dict(), indent=2) + "\n")
    os.replace(tmp, path)


def read(path: Path) -> StackState | None:
    """The saved state, or None when there is no file."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return StackState.from_dict(json.loads(text))
    except (ValueError, TypeError, KeyError) as exc:
        raise StateError(f"{path} is not a valid stack state file: {exc}") from None


def read_running(path: Path) -> StackState | None:
    """The saved state if its supervisor is still alive; None for no file or a stale one."""
    try:
        state = read(path)
    except StateError:
        return None
    return state if state is not None and state.alive() else None


def remove(path: Path, pid: int | None = None) -> None:
    """Delete the file; with `pid`, only if that supervisor wrote it."""
    if pid is not None:
        try:
            current = read(path)
        except StateError:
            current = None
        if current is not None and current.pid != pid:
            return
    path.unlink(missing_ok=True)
