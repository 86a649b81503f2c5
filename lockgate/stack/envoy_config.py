"""Render envoy/envoy.yaml.tmpl for a stack layout."""

from __future__ import annotations

from pathlib import Path
from string import Template
from typing import Protocol

from lockgate import edge_access

ROOT = Path(__file__).resolve().parent.parent.parent
TEMPLATE = ROOT / "envoy" / "envoy.yaml.tmpl"
DESCRIPTOR = ROOT / "envoy" / "lockgate.pb"

_CLUSTER = """\
    - name: {name}
      type: STATIC
      connect_timeout: 1s
{protocol}      circuit_breakers:
        thresholds:
          - {{ max_connections: {max_connections}, max_pending_requests: 10000, max_requests: 10000 }}
      load_assignment:
        cluster_name: {name}
        endpoints:
          - lb_endpoints:
              - endpoint:
                  address:
                    socket_address: {{ address: 127.0.0.1, port_value: {port} }}
"""
#: gRPC services speak h2c; the hot path's HTTP/1.1 listeners (auth's access check,
#: services/auth/check_http.py; the router's provider-compatible endpoints,
#: services/router/http_edge.py) keep-alive HTTP/1.1, Envoy's default.
_HTTP2 = """\
      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          explicit_http_config:
            http2_protocol_options: { max_concurrent_streams: 1024 }
"""

#: Connections Envoy opens to auth's access check, over its two workers. The
#: listener answers one check per connection at a time on one event loop, so
#: more connections add no throughput: past this, checks queue in Envoy (as
#: pending requests, within ext_authz's timeout) instead of a burst of a
#: thousand new streams becoming a thousand connects into auth, whose accepts
#: and buffers competed with the streams and made some checks miss that
#: timeout (docs/performance.md, S2).
AUTH_CHECK_CONNECTIONS = 64
#: The other clusters: gRPC multiplexes on a few connections anyway, and the
#: router's HTTP/1.1 listener needs one per call in flight (a stream holds one).
MAX_CONNECTIONS = 10000


class EnvoyLayout(Protocol):
    http_port: int
    envoy_admin_port: int
    auth_port: int
    router_port: int
    ledger_port: int
    registry_port: int
    auth_check_port: int
    router_http_port: int
    max_request_bytes: int
    authz_body_bytes: int
    router_checks_access: bool


def _access_log_rules() -> str:
    """header_to_metadata's rules for the router's call-log headers (removed from
    the response once read)."""
    return "".join(
        f"                        - header: {header}\n"
        f"                          on_header_present: {{ metadata_namespace: "
        f"{edge_access.METADATA_NAMESPACE}, key: {key}, type: STRING }}\n"
        f"                          remove: true\n"
        for header, key in edge_access.LOG_HEADERS.items()
    ).rstrip("\n")


def render(layout: EnvoyLayout, listen_address: str = "127.0.0.1") -> str:
    # gRPC clusters by service; the router's is router_grpc: `router` is its HTTP
    # listener, where the REST inference calls go.
    grpc = {"auth": "auth", "router": "router_grpc", "ledger": "ledger", "registry": "registry"}
    ports = {cluster: (getattr(layout, f"{name}_port"), _HTTP2, MAX_CONNECTIONS)
             for name, cluster in grpc.items()}
    ports["auth_check"] = (layout.auth_check_port, "", AUTH_CHECK_CONNECTIONS)
    ports["router"] = (layout.router_http_port, "", MAX_CONNECTIONS)
    clusters = "".join(
        _CLUSTER.format(name=name, port=port, protocol=protocol, max_connections=limit)
        for name, (port, protocol, limit) in ports.items()
    )
    return Template(TEMPLATE.read_text()).substitute(
        listen_address=listen_address,
        http_port=layout.http_port,
        envoy_admin_port=layout.envoy_admin_port,
        max_request_bytes=layout.max_request_bytes,
        authz_body_bytes=layout.authz_body_bytes,
        proto_descriptor=str(DESCRIPTOR),
        clusters=clusters.rstrip("\n"),
        # ext_authz on the hot REST routes, unless the router checks them itself.
        hot_route_access_check=(
            "disabled: true" if layout.router_checks_access else "check_settings: {}"),
        access_log_rules=_access_log_rules(),
        access_check_timeout=f"{edge_access.TIMEOUT_SECONDS:g}s",
        access_unavailable_message=edge_access.UNAVAILABLE_MESSAGE,
        access_unavailable_code=edge_access.UNAVAILABLE_CODE,
    )
