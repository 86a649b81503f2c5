"""Prometheus metrics shared by every gRPC service, and the /metrics endpoint.

Several services may share a process (lockgate/service_host.py) and so one
registry; each still serves its own /metrics port, showing only what is its
own (`ServiceMetrics`), so that scraping every port counts nothing twice.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.metrics_core import Metric

from lockgate.stack.layout import SERVICES

__all__ = ["HTTP_LATENCY", "HTTP_REQUESTS", "Counter", "Gauge", "Histogram",
           "count_http_call", "start_metrics_server"]

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
    "Calls handled by a service's hot-path HTTP/1.1 listener (lockgate/lean_http.py);"
    " auth's Check also counts the checks the router runs in its process",
    ["service", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "lockgate_http_request_seconds",
    "Hot-path HTTP call duration (to the last byte written)",
    ["service", "method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

#: (service, method, status) -> that call's request counter and latency histogram.
#: Looking a child up with `labels()` costs ≈ 1.7 µs, and a hot-path call counts
#: itself twice (the router's listener, auth's check): kept here, the pair costs
#: one dict lookup. Bounded as the label sets are: services, their methods, and
#: three-digit statuses.
_HTTP_CHILDREN: dict[tuple[str, str, str], tuple] = {}


def count_http_call(service: str, method: str, status: str, seconds: float) -> None:
    """Count one hot-path HTTP call in HTTP_REQUESTS and HTTP_LATENCY."""
    children = _HTTP_CHILDREN.get((service, method, status))
    if children is None:
        children = _HTTP_CHILDREN[(service, method, status)] = (
            HTTP_REQUESTS.labels(service, method, status), HTTP_LATENCY.labels(service, method))
    children[0].inc()
    children[1].observe(seconds)


#: Labels that say which service a sample belongs to (webhooks name their `source`).
_OWNER_LABELS = ("service", "source")


class ServiceMetrics:
    """The view of the process's registry that one service's port serves:
    - samples labelled with a service (`service`, `source`): only its own;
    - `lockgate_<service>_…` families: only its own;
    - the process's own metrics (`process_…`, `python_…`): on every port;
    - other unlabelled counters the services share (decision log, policy
      reloads …): only where `process_wide` (the first service of a process).
    """

    def __init__(self, service: str, process_wide: bool = True, registry=REGISTRY):
        self.service = service
        self.process_wide = process_wide
        self.registry = registry
        self._own = f"lockgate_{service}_"
        # The services, as named in `service` labels and `lockgate_<service>_` names.
        self._others = tuple(f"lockgate_{s}_" for s in SERVICES if s != service)

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            name = family.name
            if name.startswith(("process_", "python_", self._own)):
                yield family
            elif name.startswith(self._others):
                continue
            elif any(label in sample.labels for sample in family.samples
                     for label in _OWNER_LABELS):
                yield self._own_samples(family)
            elif self.process_wide:
                yield family

    def _own_samples(self, family: Metric) -> Metric:
        own = Metric(family.name, family.documentation, family.type, family.unit)
        own.samples = [
            s for s in family.samples
            if all(s.labels.get(label, self.service) == self.service for label in _OWNER_LABELS)
        ]
        return own


def start_metrics_server(host: str, port: int, service: str | None = None,
                         process_wide: bool = True) -> int | None:
    """Serve /metrics on a background thread (`service`'s view of the registry,
    or all of it); returns the bound port (None if disabled)."""
    if port < 0:
        return None
    registry = REGISTRY if service is None else ServiceMetrics(service, process_wide)
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server.server_address[1]
