"""A whole Lockgate stack on free ports in a temporary data directory, started
and stopped through the real CLI (`lockgate up --detach` / `lockgate down`).

Used by the end-to-end tests and the benchmarks, so both exercise exactly
what `lockgate up` runs.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc

from lockgate.auth.v1 import auth_service_pb2 as auth_pb
from lockgate.auth.v1 import auth_service_pb2_grpc as auth_grpc

PORT_VARIABLES = (
    "LOCKGATE_HTTP_PORT",
    "LOCKGATE_ENVOY_ADMIN_PORT",
    "LOCKGATE_SIM_PORT",
    "LOCKGATE_AUTH_GRPC_PORT",
    "LOCKGATE_AUTH_CHECK_PORT",
    "LOCKGATE_LEDGER_ADMIT_PORT",
    "LOCKGATE_ROUTER_HTTP_PORT",
    "LOCKGATE_ROUTER_GRPC_PORT",
    "LOCKGATE_LEDGER_GRPC_PORT",
    "LOCKGATE_REGISTRY_GRPC_PORT",
    "LOCKGATE_AUTH_METRICS_PORT",
    "LOCKGATE_ROUTER_METRICS_PORT",
    "LOCKGATE_LEDGER_METRICS_PORT",
    "LOCKGATE_REGISTRY_METRICS_PORT",
)


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class EphemeralStack:
    def __init__(self, config: Path | None = None, extra_env: dict[str, str] | None = None):
        self.config = config
        self.data_dir = Path(tempfile.mkdtemp(prefix="lockgate-stack-"))
        self.ports = dict(zip(PORT_VARIABLES, free_ports(len(PORT_VARIABLES)), strict=True))
        self.env = {
            **os.environ,
            **{k: str(v) for k, v in self.ports.items()},
            "LOCKGATE_DATA_DIR": str(self.data_dir),
            **(extra_env or {}),
        }
        self.admin_key = ""

    @property
    def http_port(self) -> int:
        return self.ports["LOCKGATE_HTTP_PORT"]

    @property
    def origin(self) -> str:
        """The gateway's root URL (the Anthropic SDK's base_url)."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def base_url(self) -> str:
        """The OpenAI SDK's base_url."""
        return f"{self.origin}/v1"

    @property
    def sim_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['LOCKGATE_SIM_PORT']}/v1"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    def grpc_auth(self, key: str | None = None) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {key or self.admin_key}"),)

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "lockgate.cli.main", *args],
            env=self.env, capture_output=True, text=True, timeout=timeout,
        )

    def start(self) -> EphemeralStack:
        args = ["up", "--detach", "--data-dir", str(self.data_dir)]
        if self.config is not None:
            args += ["--config", str(self.config)]
        done = self.cli(*args)
        if done.returncode != 0:
            logs = self.logs()
            self.stop()
            raise RuntimeError(f"lockgate up failed ({done.returncode}):\n{done.stdout}\n"
                               f"{done.stderr}\n{logs}")
        self.admin_key = (self.data_dir / "admin.key").read_text().strip()
        return self

    def logs(self) -> str:
        out = []
        for log in sorted((self.data_dir / "logs").glob("*.log")):
            out.append(f"--- {log.name}\n" + "\n".join(log.read_text().splitlines()[-20:]))
        return "\n".join(out)

    def create_key(self, name: str, models: list[str] | None = None,
                   roles: list[str] | None = None) -> str:
        with grpc.insecure_channel(self.grpc_target) as channel:
            reply = auth_grpc.AuthServiceStub(channel).CreateApiKey(
                auth_pb.CreateApiKeyRequest(
                    tenant="default", name=name, models=models or [], roles=roles or []
                ),
                metadata=self.grpc_auth(),
                timeout=10,
            )
        return reply.secret

    def stop(self) -> None:
        self.cli("down", "--data-dir", str(self.data_dir), timeout=60)
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> EphemeralStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
