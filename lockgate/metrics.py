"""Prometheus metrics shared by every gRPC service, and the /metrics endpoint."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

__all__ = ["HTTP_LATENCY", "HTTP_REQUESTS", "Counter", "Gauge", "Histogram",
           "start_metrics_server"]

GRPC_REQUESTS = Counter(
    "lockgate_grpc_requests_total", "gRPC calls handled", ["service", "method", "code"]
)
GRPC_LATENCY = Histogram(
    "lockgate_grpc_request_seconds",
    "gRPC call duration (to the last response message)",
    ["service", "method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

HTTP_REQUESTS = Counter(
    "lockgate_http_requests_total",
    "Calls handled by a service's hot-path HTTP/1.1 listener (lockgate/lean_http.py)",
    ["service", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "lockgate_http_request_seconds",
    "Hot-path HTTP call duration (to the last byte written)",
    ["service", "method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


def start_metrics_server(host: str, port: int) -> int | None:
    """Serve /metrics on a background thread; returns the bound port (None if disabled)."""
    if port < 0:
        return None
    server, _thread = start_http_server(port, addr=host)
    return server.server_address[1]
