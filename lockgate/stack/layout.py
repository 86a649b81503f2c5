"""Where the stack lives: every port and path `lockgate up` uses, in one value.

One frozen object so that the supervisor, the Envoy config renderer and the
CLI agree on ports and files; built from defaults, then environment variables,
then command-line flags (highest wins).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

#: The Python services, in start order.
SERVICES = ("ledger", "registry", "auth", "router")

#: How the services share processes (`processes`): "grouped" (the default) hosts
#: them in two, which saves ≈ 180 MB on one machine (lockgate/service_host.py);
#: "separate" gives each its own process, so one crash takes down one service.
#: The groups keep auth and the ledger apart: each has its own failure mode at
#: the edge (auth fails closed, the ledger's limits fail open), and the registry
#: only feeds snapshots that the others cache.
PROCESS_GROUPS = {
    "grouped": (("ledger", "registry"), ("router", "auth")),
    "separate": tuple((name,) for name in SERVICES),
}

#: How the supervisor asks the kernel to schedule its children (`scheduling`):
#: "batch" (the default, Linux) runs Envoy, the simulator and the processes that
#: host neither the router nor auth under SCHED_BATCH, so that their wakeups (a
#: call arriving at Envoy, a request the router sent, a usage batch) do not
#: preempt the router's event loop in the middle of its work: on a busy machine
#: that loop is the gateway's bottleneck (docs/performance.md, "Batch
#: scheduling"). "normal": every child under the default policy.
SCHEDULING = ("batch", "normal")

DEFAULT_DATA_DIR = Path(".lockgate")
DEFAULT_MAX_REQUEST_BYTES = 4 * 1024 * 1024

#: Layout field -> environment variable that overrides its default.
ENV_VARS: dict[str, str] = {
    "data_dir": "LOCKGATE_DATA_DIR",
    "http_port": "LOCKGATE_HTTP_PORT",
    "envoy_admin_port": "LOCKGATE_ENVOY_ADMIN_PORT",
    "sim_port": "LOCKGATE_SIM_PORT",
    "auth_check_port": "LOCKGATE_AUTH_CHECK_PORT",
    "ledger_admit_port": "LOCKGATE_LEDGER_ADMIT_PORT",
    "router_http_port": "LOCKGATE_ROUTER_HTTP_PORT",
    "max_request_bytes": "LOCKGATE_MAX_REQUEST_BYTES",
    "log_level": "LOCKGATE_LOG_LEVEL",
    "processes": "LOCKGATE_PROCESSES",
    "scheduling": "LOCKGATE_SCHEDULING",
    "gateway_config": "LOCKGATE_ROUTER_GATEWAY_CONFIG",
    **{f"{name}_port": f"LOCKGATE_{name.upper()}_GRPC_PORT" for name in SERVICES},
    **{f"{name}_metrics_port": f"LOCKGATE_{name.upper()}_METRICS_PORT" for name in SERVICES},
}


class LayoutError(ValueError):
    """A flag or environment variable has a value the stack cannot use."""


@dataclass(frozen=True)
class StackLayout:
    data_dir: Path = DEFAULT_DATA_DIR
    http_port: int = 8080
    envoy_admin_port: int = 9901
    auth_port: int = 50061
    router_port: int = 50062
    ledger_port: int = 50063
    registry_port: int = 50064
    #: auth's HTTP access check, which Envoy's ext_authz filter calls on every request.
    auth_check_port: int = 50065
    #: the ledger's HTTP Admit, which the router asks before every budgeted call.
    ledger_admit_port: int = 50066
    #: the router's provider-compatible endpoints over HTTP, where Envoy sends the hot REST calls.
    router_http_port: int = 50067
    #: Prometheus ports; 0 lets the service pick one, -1 turns metrics off.
    auth_metrics_port: int = 9161
    router_metrics_port: int = 9162
    ledger_metrics_port: int = 9163
    registry_metrics_port: int = 9164
    sim_port: int = 18090
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    log_level: str = "info"
    #: "grouped" or "separate": see PROCESS_GROUPS.
    processes: str = "grouped"
    #: "batch" or "normal": see SCHEDULING.
    scheduling: str = "batch"
    #: Gateway config YAML for the router (`--config`); None: the router's embedded default.
    gateway_config: Path | None = None

    @classmethod
    def from_sources(
        cls, env: Mapping[str, str] | None = None, **overrides: object
    ) -> StackLayout:
        """Defaults, then `env` (os.environ by default), then non-None `overrides`."""
        env = os.environ if env is None else env
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, object] = {}
        for name, var in ENV_VARS.items():
            if env.get(var, "").strip():
                values[name] = _convert(name, env[var].strip(), var)
        for name, value in overrides.items():
            if name not in fields:
                raise TypeError(f"unknown layout field {name!r}")
            if value is not None:
                values[name] = _convert(name, value, "--" + name.replace("_", "-"))
        layout = cls(**values)  # type: ignore[arg-type]
        return layout.resolved()

    def resolved(self) -> StackLayout:
        """Absolute paths, so children and a detached supervisor see the same files."""
        config = self.gateway_config.expanduser().resolve() if self.gateway_config else None
        return dataclasses.replace(
            self, data_dir=self.data_dir.expanduser().resolve(), gateway_config=config
        )

    @property
    def process_groups(self) -> tuple[tuple[str, ...], ...]:
        """The services each Python process hosts, in start order."""
        return PROCESS_GROUPS[self.processes]

    @property
    def router_checks_access(self) -> bool:
        """Auth shares the router's process, so the router runs the access check on
        its hot REST calls itself and Envoy does not ask auth about them
        (services/router/access.py)."""
        return any("router" in group and "auth" in group for group in self.process_groups)

    # -- ports ---------------------------------------------------------------
    def grpc_port(self, service: str) -> int:
        return int(getattr(self, f"{service}_port"))

    def metrics_port(self, service: str) -> int:
        return int(getattr(self, f"{service}_metrics_port"))

    def ports(self) -> dict[str, int]:
        """Every fixed listening port by a readable name (for stack.json and conflicts)."""
        ports = {"http": self.http_port, "envoy_admin": self.envoy_admin_port}
        for name in SERVICES:
            ports[name] = self.grpc_port(name)
            if self.metrics_port(name) > 0:
                ports[f"{name}_metrics"] = self.metrics_port(name)
        ports["auth_check"] = self.auth_check_port
        ports["ledger_admit"] = self.ledger_admit_port
        ports["router_http"] = self.router_http_port
        ports["sim"] = self.sim_port
        return ports

    @property
    def authz_body_bytes(self) -> int:
        """How much of a request body Envoy sends to the access check: the transcoded
        body is the JSON body plus a few bytes of framing."""
        return self.max_request_bytes + 4096

    # -- urls ----------------------------------------------------------------
    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def sim_url(self) -> str:
        """The simulator's OpenAI-style base URL (with /v1)."""
        return f"{self.sim_origin}/v1"

    @property
    def sim_origin(self) -> str:
        """The simulator's root URL: Anthropic, Gemini and Azure adapters add their own paths."""
        return f"http://127.0.0.1:{self.sim_port}"

    # -- paths ---------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def state_path(self) -> Path:
        return self.run_dir / "stack.json"

    @property
    def envoy_config_path(self) -> Path:
        return self.run_dir / "envoy.yaml"

    @property
    def admin_key_path(self) -> Path:
        return self.data_dir / "admin.key"

    def log_path(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"


def _convert(name: str, value: object, source: str) -> object:
    if name in ("data_dir", "gateway_config"):
        return Path(str(value))
    if name == "log_level":
        return str(value).lower()
    if name in ("processes", "scheduling"):
        choices = PROCESS_GROUPS if name == "processes" else SCHEDULING
        choice = str(value).strip().lower()
        if choice not in choices:
            raise LayoutError(f"{source} must be one of {', '.join(choices)}, got {value!r}")
        return choice
    try:
        number = int(str(value))
    except ValueError:
        raise LayoutError(f"{source} must be an integer, got {value!r}") from None
    if name.endswith("metrics_port"):
        if not -1 <= number < 65536:
            raise LayoutError(f"{source} must be a TCP port, 0 (any) or -1 (off), got {number}")
    elif name.endswith("port") and not 0 < number < 65536:
        raise LayoutError(f"{source} must be a TCP port (1-65535), got {number}")
    if name == "max_request_bytes" and number <= 0:
        raise LayoutError(f"{source} must be positive, got {number}")
    return number
