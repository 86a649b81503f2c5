"""lockgate/metrics.py ServiceMetrics: services sharing a process each serve
only their own metrics, so scraping every port counts nothing twice."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from lockgate.metrics import ServiceMetrics


def shared_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    calls = Counter("lockgate_grpc_requests_total", "calls", ["service", "method"],
                    registry=registry)
    calls.labels("ledger", "Admit").inc(3)
    calls.labels("registry", "ListApis").inc(2)
    Counter("lockgate_ledger_checks_total", "ledger's own", registry=registry).inc()
    Counter("lockgate_registry_watches_total", "registry's own", registry=registry).inc()
    Counter("lockgate_webhook_delivered_total", "by source", ["source"],
            registry=registry).labels("registry").inc()
    Counter("lockgate_decision_log_written_total", "shared, unlabelled",
            registry=registry).inc(7)
    Gauge("process_open_fds", "the process", registry=registry).set(12)
    return registry


def scrape(view: ServiceMetrics) -> str:
    return generate_latest(view).decode()


def test_each_service_shows_its_own_and_the_first_shows_what_they_share():
    registry = shared_registry()
    ledger = scrape(ServiceMetrics("ledger", process_wide=True, registry=registry))
    registry_view = scrape(ServiceMetrics("registry", process_wide=False, registry=registry))

    assert 'lockgate_grpc_requests_total{method="Admit",service="ledger"} 3.0' in ledger
    assert 'service="registry"' not in ledger
    assert 'lockgate_grpc_requests_total{method="ListApis",service="registry"} 2.0' in registry_view
    assert 'service="ledger"' not in registry_view

    assert "lockgate_ledger_checks_total 1.0" in ledger
    assert "lockgate_ledger_checks" not in registry_view
    assert "lockgate_registry_watches_total 1.0" in registry_view
    assert "lockgate_registry_watches" not in ledger

    assert 'lockgate_webhook_delivered_total{source="registry"} 1.0' in registry_view
    assert 'source="registry"' not in ledger

    # Shared and unlabelled: on one port only; the process's own: on every port.
    assert "lockgate_decision_log_written_total 7.0" in ledger
    assert "lockgate_decision_log_written" not in registry_view
    assert "process_open_fds 12.0" in ledger and "process_open_fds 12.0" in registry_view


def test_a_service_alone_in_its_process_shows_everything_of_its_own():
    registry = shared_registry()
    alone = scrape(ServiceMetrics("ledger", registry=registry))
    assert "lockgate_decision_log_written_total 7.0" in alone
    assert "# HELP lockgate_grpc_requests_total" in alone  # the family, even with no own samples


def test_a_hot_path_call_counts_in_both_series_of_its_labels():
    from prometheus_client import REGISTRY

    from lockgate.metrics import count_http_call

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    calls = {"service": "unit-test", "method": "Chat", "status": "200"}
    latency = {"service": "unit-test", "method": "Chat"}
    before = sample("lockgate_http_requests_total", **calls)
    count_http_call("unit-test", "Chat", "200", 0.002)
    count_http_call("unit-test", "Chat", "200", 0.3)
    count_http_call("unit-test", "Chat", "429", 0.001)
    assert sample("lockgate_http_requests_total", **calls) == before + 2
    assert sample("lockgate_http_requests_total", **{**calls, "status": "429"}) == 1
    assert sample("lockgate_http_request_seconds_count", **latency) == 3
    assert sample("lockgate_http_request_seconds_bucket", **latency, le="0.0025") == 2
    assert sample("lockgate_http_request_seconds_sum", **latency) == pytest.approx(0.303)
