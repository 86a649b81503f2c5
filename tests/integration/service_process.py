"""A Lockgate service as a real process (`python -m services.<name>`), set up
through its LOCKGATE_<NAME>_* environment like `lockgate up` does, that tests
can start, SIGKILL and start again on the same port and data."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from lockgate.stack.health import GrpcCheck

ROOT = Path(__file__).resolve().parents[2]


class ServiceProcess:
    def __init__(self, name: str, port: int, log_path: Path, **settings: str):
        self.name = name
        self.port = port
        self.address = f"127.0.0.1:{port}"
        self.log_path = log_path
        prefix = f"LOCKGATE_{name.upper()}_"
        self.env = {
            **os.environ,
            prefix + "GRPC_PORT": str(port),
            prefix + "METRICS_PORT": "-1",
            prefix + "LOG_LEVEL": "warning",
            **{prefix + key.upper(): value for key, value in settings.items()},
        }
        self.proc: subprocess.Popen | None = None

    def _spawn(self) -> subprocess.Popen:
        with open(self.log_path, "ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", f"services.{self.name}"], cwd=ROOT, env=self.env,
                stdout=log, stderr=subprocess.STDOUT,
            )

    async def start(self, seconds: float = 30.0) -> None:
        """Start it and wait until its gRPC health check answers SERVING."""
        self.proc = self._spawn()  # a fork and exec: quick, not worth a thread
        check = GrpcCheck(self.address)
        deadline = time.monotonic() + seconds
        while not await check(1.0):
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited at start:\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} not healthy in {seconds} s:\n{self.log()}")
            await asyncio.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, like a crash or the OOM killer."""
        assert self.proc is not None and self.proc.poll() is None, f"{self.name} is not running"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    async def stop(self) -> None:
        """SIGTERM (graceful stop), SIGKILL after 15 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            await asyncio.to_thread(self.proc.wait, 15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        try:
            return self.log_path.read_text()[-4000:]
        except OSError:
            return ""
