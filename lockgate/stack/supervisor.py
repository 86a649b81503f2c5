"""The supervisor: start children in order, wait for health, restart crashes,
stop everything in reverse order.

It knows nothing about Lockgate's services: it runs any list of ChildSpec
(commands + health checks), which is what makes it testable with small fake
children. Crashes and restarts are logged as JSON lines (lockgate.logs); the
user-facing messages are the caller's job (`on_ready`, `error`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lockgate.logs import redact
from lockgate.stack import state as state_file
from lockgate.stack.backoff import Backoff
from lockgate.stack.children import ChildSpec
from lockgate.stack.process import signal_group, spawn

log = logging.getLogger("lockgate.supervisor")

LOG_TAIL_LINES = 20


class StartupError(Exception):
    """The stack could not start; the message names the child and shows its log."""


@dataclass
class _Child:
    spec: ChildSpec
    log_path: Path
    backoff: Backoff
    proc: asyncio.subprocess.Process | None = None
    #: Size of the log when the current process started: its output begins here.
    log_offset: int = 0
    #: Monotonic time the current process became healthy (None: not yet).
    healthy_since: float | None = None
    restarts: int = 0

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines this process wrote (secrets redacted)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.log_offset)
                data = f.read()
        except OSError:
            return ""
        text = data.decode("utf-8", "replace").rstrip("\n")
        return redact("\n".join(text.splitlines()[-lines:]))


class Supervisor:
    def __init__(
        self,
        children: Sequence[ChildSpec],
        *,
        logs_dir: Path,
        state_path: Path | None = None,
        data_dir: Path | None = None,
        http_url: str | None = None,
        ports: dict[str, int] | None = None,
        startup_timeout: float = 60.0,
        stop_timeout: float = 10.0,
        backoff: Callable[[], Backoff] = Backoff,
        health_interval: float = 0.1,
        on_ready: Callable[[], None] | None = None,
    ):
        names = [c.name for c in children]
        if len(set(names)) != len(names):
            raise ValueError(f"child names must be unique: {names}")
        self.children = [_Child(c, logs_dir / f"{c.name}.log", backoff()) for c in children]
        self.state_path = state_path
        self.data_dir = data_dir or logs_dir.parent
        self.http_url = http_url
        self.ports = ports or {}
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.health_interval = health_interval
        self.on_ready = on_ready
        #: Why run() returned 1, for the caller to show.
        self.error: str | None = None
        self._phase = state_file.STARTING
        self._state: state_file.StackState | None = None
        self._stop = asyncio.Event()
        self._force = asyncio.Event()
        self._stopping = False

    # -- public --------------------------------------------------------------
    def request_stop(self) -> None:
        """First call: graceful stop. Second call: kill without waiting."""
        if self._stop.is_set():
            self._force.set()
        self._stop.set()

    async def run(self) -> int:
        """Run until stopped (0) or until the stack fails to start (1, see `error`)."""
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        for sig in signals:
            loop.add_signal_handler(sig, self.request_stop)
        try:
            return await self._run()
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)

    # -- lifecycle -----------------------------------------------------------
    async def _run(self) -> int:
        try:
            self._preflight()
        except StartupError as exc:
            return self._failed(exc)
        watchers: list[asyncio.Task[None]] = []
        try:
            self._write_state(state_file.STARTING)
            try:
                await self._start_all()
            except StartupError as exc:
                return self._failed(exc)
            if self._stop.is_set():
                return 0
            self._write_state(state_file.READY)
            log.info("stack ready", extra={"event": "ready"})
            if self.on_ready is not None:
                self.on_ready()
            watchers = [asyncio.create_task(self._watch(c)) for c in self.children]
            await self._stop.wait()
            return 0
        finally:
            self._stopping = True
            self._write_state(state_file.STOPPING)
            self._stop.set()
            await self._stop_all()
            if watchers:
                _, pending = await asyncio.wait(watchers, timeout=self.stop_timeout + 2)
                for task in pending:
                    task.cancel()
            await self._kill_leftovers()
            if self.state_path is not None:
                state_file.remove(self.state_path, os.getpid())
            log.info("stack stopped", extra={"event": "stopped"})

    def _failed(self, exc: StartupError) -> int:
        self.error = str(exc)
        log.error("stack failed to start", extra={"event": "start_failed", "error": str(exc)})
        return 1

    def _preflight(self) -> None:
        """Refuse to start over a running stack or on ports someone else holds."""
        if self.state_path is not None:
            running = state_file.read_running(self.state_path)
            if running is not None and running.pid != os.getpid():
                raise StartupError(
                    f"a stack is already running from {running.data_dir} (pid {running.pid});"
                    " stop it with `lockgate down`"
                )
        owners: dict[int, str] = {}
        for child in self.children:
            for port in child.spec.ports:
                if port in owners:
                    raise StartupError(
                        f"port {port} is configured for both {owners[port]} and {child.name}"
                    )
                owners[port] = child.name
                if not _port_free(port):
                    raise StartupError(
                        f"port {port} ({child.name}) is already in use on 127.0.0.1"
                    )

    async def _start_all(self) -> None:
        for child in self.children:
            if self._stop.is_set():
                return
            await self._spawn(child)
            log.info(
                "child started", extra={"event": "child_started", "child": child.name,
                                        "pid": child.proc.pid if child.proc else None},
            )
        self._write_state(state_file.STARTING)
        waits = [
            asyncio.create_task(self._wait_healthy(c, fail_on_exit=True)) for c in self.children
        ]
        stop = asyncio.create_task(self._stop.wait())
        deadline = time.monotonic() + self.startup_timeout
        try:
            pending: set[asyncio.Task] = set(waits)
            while pending and not self._stop.is_set():
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    raise self._timeout_error()
                done, pending = await asyncio.wait(
                    pending | {stop}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                pending.discard(stop)
                for task in done - {stop}:
                    task.result()  # raises StartupError for a child that exited
        finally:
            for task in [*waits, stop]:
                task.cancel()
            await asyncio.gather(*waits, stop, return_exceptions=True)

    def _timeout_error(self) -> StartupError:
        waiting = [c for c in self.children if c.healthy_since is None]
        first = waiting[0]
        others = f" (also not healthy: {', '.join(c.name for c in waiting[1:])})" if waiting[1:] else ""
        return StartupError(
            f"{first.name} did not become healthy within {self.startup_timeout:g} s{others}\n"
            + _tail_block(first)
        )

    async def _wait_healthy(self, child: _Child, *, fail_on_exit: bool) -> bool:
        """Poll until healthy (True) or the process exits (False, or StartupError)."""
        started = time.monotonic()
        proc = child.proc
        while not self._stopping:
            if proc is None or proc.returncode is not None:
                if fail_on_exit:
                    code = proc.returncode if proc else None
                    raise StartupError(
                        f"{child.name} exited with code {code} while starting\n" + _tail_block(child)
                    )
                return False
            if await child.spec.health(time_limit=1.0):
                if proc.returncode is None and child.proc is proc:
                    child.healthy_since = time.monotonic()
                    log.info(
                        "child healthy",
                        extra={"event": "child_healthy", "child": child.name, "pid": proc.pid,
                               "after_s": round(child.healthy_since - started, 3)},
                    )
                    return True
                continue
            await asyncio.sleep(self.health_interval)
        return False

    async def _spawn(self, child: _Child) -> None:
        try:
            child.log_offset = child.log_path.stat().st_size
        except OSError:
            child.log_offset = 0
        child.healthy_since = None
        try:
            child.proc = await spawn(child.spec.argv, child.spec.env, child.log_path,
                                     batch=child.spec.batch)
        except OSError as exc:
            raise StartupError(f"cannot start {child.name}: {exc}") from None

    # -- crashes -------------------------------------------------------------
    async def _watch(self, child: _Child) -> None:
        """Restart `child` whenever it exits, until the stack stops."""
        while not self._stopping and child.proc is not None:
            proc = child.proc
            code = await proc.wait()
            if self._stopping:
                return
            signal_group(proc.pid, signal.SIGKILL)  # whatever it left in its group
            healthy_for = (
                time.monotonic() - child.healthy_since if child.healthy_since is not None else None
            )
            delay = child.backoff.on_crash(healthy_for)
            child.healthy_since = None
            log.warning(
                "child exited; restarting",
                extra={"event": "child_exited", "child": child.name, "pid": proc.pid,
                       "returncode": code, "restart_in_s": delay, "restarts": child.restarts,
                       "log": str(child.log_path)},
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
            if self._stopping or self._stop.is_set():
                return
            try:
                await self._spawn(child)
            except StartupError as exc:
                log.error("restart failed", extra={"event": "restart_failed", "child": child.name,
                                                   "error": str(exc)})
                child.proc = proc  # keep the dead one: the loop sees it exited and backs off
                continue
            child.restarts += 1
            if self._stopping:
                await self._terminate(child)
                return
            log.warning(
                "child restarted",
                extra={"event": "child_restarted", "child": child.name, "pid": child.proc.pid,
                       "restarts": child.restarts},
            )
            self._write_state(self._phase)
            await self._wait_healthy(child, fail_on_exit=False)

    # -- stopping ------------------------------------------------------------
    async def _stop_all(self) -> None:
        for child in reversed(self.children):
            await self._terminate(child)

    async def _terminate(self, child: _Child) -> None:
        """SIGTERM the child's group, wait up to stop_timeout, then SIGKILL it."""
        proc = child.proc
        if proc is None:
            return
        if proc.returncode is None:
            log.info("stopping child", extra={"event": "child_stopping", "child": child.name,
                                               "pid": proc.pid})
            signal_group(proc.pid, signal.SIGTERM)
            if not await self._exited_within(proc, self.stop_timeout):
                log.warning("child did not stop in time; killing it",
                            extra={"event": "child_killed", "child": child.name, "pid": proc.pid})
                signal_group(proc.pid, signal.SIGKILL)
                await proc.wait()
            log.info("child stopped", extra={"event": "child_stopped", "child": child.name,
                                              "pid": proc.pid, "returncode": proc.returncode})
        signal_group(proc.pid, signal.SIGKILL)

    async def _exited_within(self, proc: asyncio.subprocess.Process, seconds: float) -> bool:
        """Whether proc exits within `seconds` (cut short by a second stop request)."""
        exited = asyncio.create_task(proc.wait())
        forced = asyncio.create_task(self._force.wait())
        await asyncio.wait({exited, forced}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        forced.cancel()
        if not exited.done():
            exited.cancel()
            return False
        return True

    async def _kill_leftovers(self) -> None:
        """A restart that raced with the stop: nothing may outlive run()."""
        for child in self.children:
            if child.running:
                await self._terminate(child)

    # -- state file ----------------------------------------------------------
    def _write_state(self, phase: str) -> None:
        self._phase = phase
        if self.state_path is None:
            return
        if self._state is None:
            self._state = state_file.StackState.new(
                self.data_dir, http_url=self.http_url, ports=dict(self.ports)
            )
        self._state.state = phase
        # One component per service, also when several share a process.
        self._state.components = [
            state_file.ComponentInfo(
                name=member.name,
                pid=c.proc.pid if c.running else None,
                health=member.health.describe(),
                endpoint=member.endpoint,
                log=str(c.log_path),
                restarts=c.restarts,
            )
            for c in self.children
            for member in (c.spec.members or (c.spec,))
        ]
        try:
            state_file.write(self.state_path, self._state)
        except OSError as exc:
            log.error("cannot write state file", extra={"path": str(self.state_path),
                                                        "error": str(exc)})


def _tail_block(child: _Child) -> str:
    tail = child.log_tail()
    if not tail:
        return f"({child.log_path} is empty)"
    return f"last lines of {child.log_path}:\n" + "\n".join(f"  | {line}" for line in tail.splitlines())


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
