"""The real stack's children: order, commands, environment, health checks; and
the command line a detached supervisor runs."""

from __future__ import annotations

import sys

from lockgate.cli.main import build_parser
from lockgate.cli.options import layout_from
from lockgate.cli.up import PORT_FLAGS
from lockgate.stack.children import build_children, service_env
from lockgate.stack.health import AllOf, GrpcCheck, HttpCheck, from_dict
from lockgate.stack.launch import admin_key_message, endpoint_message, foreground_argv
from lockgate.stack.layout import StackLayout


def layout(tmp_path, **kw) -> StackLayout:
    return StackLayout.from_sources(env={}, data_dir=tmp_path, **kw)


def test_children_in_start_order_with_health_checks(tmp_path):
    children = build_children(layout(tmp_path), env={})
    assert [c.name for c in children] == ["ledger+registry", "sim", "router+auth", "envoy"]
    by_name = {c.name: c for c in children}
    front = by_name["router+auth"]
    assert front.argv == (sys.executable, "-m", "services", "router", "auth")
    assert front.health == AllOf((GrpcCheck("127.0.0.1:50062"), GrpcCheck("127.0.0.1:50061")))
    assert front.ports == (50062, 50067, 9162, 50061, 50065, 9161)
    assert front.env["LOCKGATE_AUTH_METRICS_PORT"] == "9161"
    assert front.env["LOCKGATE_ROUTER_METRICS_PORT"] == "9162"
    assert front.env["LOCKGATE_AUTH_CHECK_PORT"] == "50065"
    assert front.env["LOCKGATE_ROUTER_HTTP_PORT"] == "50067"
    assert [(m.name, m.health, m.endpoint) for m in front.members] == [
        ("router", GrpcCheck("127.0.0.1:50062"), "grpc://127.0.0.1:50062"),
        ("auth", GrpcCheck("127.0.0.1:50061"), "grpc://127.0.0.1:50061"),
    ]
    back = by_name["ledger+registry"]
    assert back.argv == (sys.executable, "-m", "services", "ledger", "registry")
    assert back.ports == (50063, 50066, 9163, 50064, 9164)
    assert back.env["LOCKGATE_REGISTRY_LEDGER_ADDRESS"] == "127.0.0.1:50063"
    assert by_name["sim"].argv == (
        sys.executable, "-m", "lockgate.cli.main", "sim", "--host", "127.0.0.1", "--port", "18090"
    )
    assert by_name["sim"].health == HttpCheck("http://127.0.0.1:18090/healthz")
    assert by_name["sim"].members == ()
    envoy = by_name["envoy"]
    assert envoy.argv[1:] == (
        "-c", str(tmp_path / "run" / "envoy.yaml"), "--disable-hot-restart", "--log-level", "warn"
    )
    assert envoy.argv[0].endswith("envoy")
    assert envoy.health == HttpCheck("http://127.0.0.1:9901/ready")
    assert envoy.ports == (8080, 9901)


def test_separate_processes_give_each_service_its_own(tmp_path):
    children = build_children(layout(tmp_path, processes="separate"), env={})
    assert [c.name for c in children] == ["ledger", "registry", "auth", "sim", "router", "envoy"]
    auth = children[2]
    assert auth.argv == (sys.executable, "-m", "services.auth")
    assert auth.health == GrpcCheck("127.0.0.1:50061")
    assert auth.ports == (50061, 50065, 9161)
    assert auth.env["LOCKGATE_AUTH_METRICS_PORT"] == "9161"
    assert auth.members == ()


def test_all_but_the_router_s_and_auth_s_processes_run_as_batch_work(tmp_path):
    def batch(**kw) -> dict[str, bool]:
        return {c.name: c.batch for c in build_children(layout(tmp_path, **kw), env={})}

    assert batch() == {"ledger+registry": True, "sim": True, "router+auth": False,
                       "envoy": True}
    assert batch(processes="separate") == {"ledger": True, "registry": True, "auth": False,
                                           "sim": True, "router": False, "envoy": True}
    assert not any(batch(scheduling="normal").values())


def test_the_router_checks_access_where_auth_shares_its_process(tmp_path):
    grouped = {c.name: c for c in build_children(layout(tmp_path), env={})}
    assert grouped["router+auth"].env["LOCKGATE_ROUTER_CHECK_ACCESS"] == "true"
    separate = {c.name: c for c in build_children(layout(tmp_path, processes="separate"),
                                                  env={})}
    assert separate["router"].env["LOCKGATE_ROUTER_CHECK_ACCESS"] == "false"


def test_a_grouped_process_keeps_each_services_own_settings(tmp_path):
    config = tmp_path / "gw.yaml"
    base = {"LOCKGATE_ROUTER_GATEWAY_CONFIG": "/elsewhere.yaml", "LOCKGATE_AUTH_LOG_LEVEL": "debug"}
    [front] = [c for c in build_children(layout(tmp_path), env=base) if c.name == "router+auth"]
    assert "LOCKGATE_ROUTER_GATEWAY_CONFIG" not in front.env  # the stack's config: embedded
    assert front.env["LOCKGATE_AUTH_LOG_LEVEL"] == "debug"
    assert front.env["LOCKGATE_ROUTER_LOG_LEVEL"] == "info"
    [front] = [c for c in build_children(layout(tmp_path, gateway_config=config), env=base)
               if c.name == "router+auth"]
    assert front.env["LOCKGATE_ROUTER_GATEWAY_CONFIG"] == str(config)


def test_service_environment(tmp_path):
    lay = layout(tmp_path, ledger_port=41003, sim_port=41090)
    env = service_env(lay, "ledger", {"PATH": "/bin", "LOCKGATE_LEDGER_GRPC_PORT": "1"})
    assert env["PATH"] == "/bin"
    assert env["LOCKGATE_LEDGER_GRPC_PORT"] == "41003"
    assert env["LOCKGATE_LEDGER_METRICS_PORT"] == "9163"
    assert env["LOCKGATE_LEDGER_DATA_DIR"] == str(tmp_path)
    assert env["LOCKGATE_LEDGER_LOG_LEVEL"] == "info"
    assert env["LOCKGATE_LEDGER_ADMIT_PORT"] == "50066"
    assert "LOCKGATE_SIM_URL" not in env

    router = service_env(lay, "router", {"LOCKGATE_ROUTER_LOG_LEVEL": "debug"})
    assert router["LOCKGATE_ROUTER_LEDGER_ADDRESS"] == "127.0.0.1:41003"
    assert router["LOCKGATE_ROUTER_LEDGER_ADMIT_ADDRESS"] == "127.0.0.1:50066"
    assert router["LOCKGATE_SIM_URL"] == "http://127.0.0.1:41090/v1"
    assert router["LOCKGATE_ROUTER_LOG_LEVEL"] == "debug"  # the user's per-service level wins
    assert "LOCKGATE_ROUTER_GATEWAY_CONFIG" not in router


def test_gateway_config_reaches_the_router_only(tmp_path):
    config = tmp_path / "gw.yaml"
    lay = layout(tmp_path, gateway_config=config)
    assert service_env(lay, "router", {})["LOCKGATE_ROUTER_GATEWAY_CONFIG"] == str(config)
    assert "LOCKGATE_ROUTER_GATEWAY_CONFIG" not in service_env(lay, "auth", {})


def test_health_checks_survive_a_round_trip_through_stack_json():
    for check in (GrpcCheck("127.0.0.1:1"), HttpCheck("http://127.0.0.1:2/ready"),
                  AllOf((GrpcCheck("127.0.0.1:1"), HttpCheck("http://127.0.0.1:2/ready")))):
        assert from_dict(check.describe()) == check


def test_detached_supervisor_command_line_reproduces_the_layout(tmp_path):
    config = tmp_path / "gw.yaml"
    original = layout(
        tmp_path, http_port=1111, envoy_admin_port=2222, auth_port=3333, router_port=4444,
        ledger_port=5555, registry_port=6666, sim_port=7777, max_request_bytes=99,
        log_level="debug", gateway_config=config, processes="separate", scheduling="normal",
    )
    argv = foreground_argv(original, 12.5)
    assert argv[:4] == [sys.executable, "-m", "lockgate.cli.main", "up"]
    args = build_parser().parse_args(argv[3:])
    assert args.background and not args.detach and args.timeout == 12.5
    overrides = {dest: getattr(args, dest) for dest, _ in PORT_FLAGS.values()}
    rebuilt = layout_from(
        args, gateway_config=args.gateway_config, max_request_bytes=args.max_request_bytes,
        log_level=args.log_level, processes=args.processes, scheduling=args.scheduling,
        **overrides,
    )
    assert rebuilt == original


def test_messages(tmp_path):
    lay = layout(tmp_path, http_port=8088)
    assert endpoint_message(lay) == (
        "Lockgate is up: http://127.0.0.1:8088  (OpenAI base URL http://127.0.0.1:8088/v1)"
    )
    assert admin_key_message(lay.admin_key_path) is None
    lay.admin_key_path.write_text("lg_secret\n")
    assert admin_key_message(lay.admin_key_path) == (
        f"Admin API key (shown once, saved in {lay.admin_key_path}): lg_secret"
    )
