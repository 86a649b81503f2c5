"""StackLayout: defaults, environment, flags, validation, derived paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from lockgate.stack.envoy_config import EnvoyLayout
from lockgate.stack.layout import LayoutError, StackLayout


def test_defaults_match_the_documented_ports(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    layout = StackLayout.from_sources(env={})
    assert (layout.http_port, layout.envoy_admin_port) == (8080, 9901)
    assert [layout.grpc_port(n) for n in ("auth", "router", "ledger", "registry")] == [
        50061, 50062, 50063, 50064
    ]
    assert [layout.metrics_port(n) for n in ("auth", "router", "ledger", "registry")] == [
        9161, 9162, 9163, 9164
    ]
    assert layout.sim_port == 18090
    assert layout.auth_check_port == 50065
    assert layout.ledger_admit_port == 50066
    assert layout.max_request_bytes == 4 * 1024 * 1024
    assert layout.data_dir == tmp_path / ".lockgate"
    assert layout.data_dir.is_absolute()
    assert layout.gateway_config is None
    assert layout.process_groups == (("ledger", "registry"), ("router", "auth"))
    assert layout.scheduling == "batch"


def test_environment_overrides_defaults_and_flags_override_environment(tmp_path):
    env = {
        "LOCKGATE_HTTP_PORT": "18080",
        "LOCKGATE_ENVOY_ADMIN_PORT": "19901",
        "LOCKGATE_LEDGER_GRPC_PORT": "40003",
        "LOCKGATE_AUTH_METRICS_PORT": "-1",
        "LOCKGATE_SIM_PORT": "28090",
        "LOCKGATE_MAX_REQUEST_BYTES": "1024",
        "LOCKGATE_DATA_DIR": str(tmp_path / "from-env"),
        "LOCKGATE_LOG_LEVEL": "DEBUG",
        "LOCKGATE_PROCESSES": "Separate",
        "LOCKGATE_SCHEDULING": "Normal",
    }
    layout = StackLayout.from_sources(env=env, http_port=28080, data_dir=None, sim_port=None)
    assert layout.http_port == 28080  # flag wins
    assert layout.envoy_admin_port == 19901
    assert layout.ledger_port == 40003
    assert layout.auth_metrics_port == -1
    assert layout.sim_port == 28090  # None flag: environment stays
    assert layout.max_request_bytes == 1024
    assert layout.data_dir == tmp_path / "from-env"
    assert layout.log_level == "debug"
    assert layout.process_groups == (("ledger",), ("registry",), ("auth",), ("router",))
    assert layout.scheduling == "normal"


def test_relative_paths_are_resolved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gw.yaml").write_text("{}")
    layout = StackLayout.from_sources(env={}, data_dir=Path("d"), gateway_config=Path("gw.yaml"))
    assert layout.data_dir == tmp_path / "d"
    assert layout.gateway_config == tmp_path / "gw.yaml"


@pytest.mark.parametrize(
    ("env", "flags", "message"),
    [
        ({"LOCKGATE_HTTP_PORT": "eighty"}, {}, "LOCKGATE_HTTP_PORT must be an integer"),
        ({}, {"http_port": 0}, "--http-port must be a TCP port"),
        ({}, {"router_port": 70000}, "--router-port must be a TCP port"),
        ({"LOCKGATE_ROUTER_METRICS_PORT": "-2"}, {}, "LOCKGATE_ROUTER_METRICS_PORT"),
        ({}, {"max_request_bytes": 0}, "must be positive"),
        ({"LOCKGATE_PROCESSES": "one"}, {}, "LOCKGATE_PROCESSES must be one of grouped, separate"),
        ({}, {"scheduling": "fifo"}, "--scheduling must be one of batch, normal"),
    ],
)
def test_bad_values_are_rejected_with_their_source(env, flags, message):
    with pytest.raises(LayoutError, match=message):
        StackLayout.from_sources(env=env, **flags)


def test_unknown_override_is_a_programming_error():
    with pytest.raises(TypeError):
        StackLayout.from_sources(env={}, htp_port=1)


def test_paths_and_urls(tmp_path):
    layout = StackLayout.from_sources(env={}, data_dir=tmp_path, http_port=8081, sim_port=9999)
    assert layout.state_path == tmp_path / "run" / "stack.json"
    assert layout.envoy_config_path == tmp_path / "run" / "envoy.yaml"
    assert layout.admin_key_path == tmp_path / "admin.key"
    assert layout.log_path("router") == tmp_path / "logs" / "router.log"
    assert layout.http_url == "http://127.0.0.1:8081"
    assert layout.sim_url == "http://127.0.0.1:9999/v1"


def test_ports_lists_fixed_ports_only(tmp_path):
    layout = StackLayout.from_sources(
        env={"LOCKGATE_LEDGER_METRICS_PORT": "0", "LOCKGATE_AUTH_METRICS_PORT": "-1"},
        data_dir=tmp_path,
    )
    ports = layout.ports()
    assert ports["http"] == 8080 and ports["sim"] == 18090 and ports["router_metrics"] == 9162
    assert "ledger_metrics" not in ports and "auth_metrics" not in ports


def test_layout_satisfies_the_envoy_renderer(tmp_path):
    layout: EnvoyLayout = StackLayout.from_sources(env={}, data_dir=tmp_path)
    for name in ("http_port", "envoy_admin_port", "auth_port", "router_port", "ledger_port",
                 "registry_port", "max_request_bytes", "data_dir"):
        assert hasattr(layout, name)


def _hot_route_access(config: dict) -> dict[str, dict]:
    """The hot REST routes' ext_authz settings, by path, in a rendered config."""
    manager = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    routes = manager["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
    return {r["match"]["path"]: r["typed_per_filter_config"]["envoy.filters.http.ext_authz"]
            for r in routes if "path" in r["match"]}


def test_envoy_skips_its_access_check_exactly_where_the_router_runs_it(tmp_path):
    import yaml

    from lockgate import edge_access
    from lockgate.direct_rest import DIRECT_REST
    from lockgate.stack.envoy_config import render

    grouped = StackLayout.from_sources(env={}, data_dir=tmp_path)
    separate = StackLayout.from_sources(env={}, data_dir=tmp_path, processes="separate")
    assert grouped.router_checks_access and not separate.router_checks_access
    hot = {path for _, path in DIRECT_REST}
    on_grouped = _hot_route_access(yaml.safe_load(render(grouped)))
    assert on_grouped.keys() == hot
    assert all(v.get("disabled") is True for v in on_grouped.values())
    on_separate = _hot_route_access(yaml.safe_load(render(separate)))
    assert all("disabled" not in v for v in on_separate.values())
    text = render(grouped)
    # What the router's check shares with Envoy comes from one place.
    assert edge_access.UNAVAILABLE_MESSAGE in text and "timeout: 2s" in text
    manager = yaml.safe_load(text)["static_resources"]["listeners"][0]["filter_chains"][0]
    filters = manager["filters"][0]["typed_config"]["http_filters"]
    [to_metadata] = [f for f in filters if f["name"] == "envoy.filters.http.header_to_metadata"]
    rules = to_metadata["typed_config"]["response_rules"]
    assert {r["header"]: r["on_header_present"]["key"] for r in rules} == edge_access.LOG_HEADERS
    assert all(r["remove"] and r["on_header_present"]["metadata_namespace"]
               == edge_access.METADATA_NAMESPACE for r in rules)
