"""lockgate/service_host.py: several services in one process — start in order,
keep what startup built out of the garbage collector, stop in reverse order,
one metrics port, settings errors as clear messages, logs labelled per service."""

from __future__ import annotations

import asyncio
import gc
import json
import logging

import pytest

from lockgate.logs import JsonFormatter
from lockgate.service_host import Hosted, HostError, load_settings, serve


class FakeServer:
    def __init__(self, name: str, events: list[str], fail_start: bool = False):
        self.name, self.events, self.fail_start = name, events, fail_start
        self.started = asyncio.Event()

    async def start(self):
        if self.fail_start:
            raise OSError("port in use")
        self.events.append(f"start {self.name}")
        self.started.set()

    async def stop(self):
        self.events.append(f"stop {self.name}")


def hosted(name: str, events: list[str], fail_start: bool = False) -> Hosted:
    async def on_stop():
        events.append(f"on_stop {name}")

    return Hosted(name, FakeServer(name, events, fail_start), on_stop)


async def test_services_start_in_order_and_stop_in_reverse():
    events: list[str] = []
    stop = asyncio.Event()
    gc.unfreeze()
    try:
        hosted_pair = [hosted("ledger", events), hosted("registry", events)]
        task = asyncio.create_task(serve(hosted_pair, stop))
        await hosted_pair[1].server.started.wait()
        await asyncio.sleep(0)
        # A full collection under load walked every module and cache object
        # (~50 ms stalls in the router); frozen, they are never walked again.
        assert gc.get_freeze_count() > 10_000
        stop.set()
        await asyncio.wait_for(task, 5)
    finally:
        gc.unfreeze()
    assert events == ["start ledger", "start registry", "stop registry", "stop ledger",
                      "on_stop registry", "on_stop ledger"]
    # What the two share is shown on the first one's /metrics only (lockgate/metrics.py).
    assert [h.server.process_metrics for h in hosted_pair] == [True, False]


async def test_a_service_that_cannot_start_stops_the_ones_already_serving():
    events: list[str] = []
    with pytest.raises(OSError, match="port in use"):
        await serve([hosted("ledger", events), hosted("registry", events, fail_start=True)],
                    asyncio.Event())
    assert events == ["start ledger", "stop ledger", "on_stop registry", "on_stop ledger"]


@pytest.mark.parametrize("names", [[], ["ledger", "ledger"], ["ledger", "billing"]])
def test_service_names_are_checked(names):
    with pytest.raises(HostError, match="expected distinct service names"):
        load_settings(names)


def test_invalid_settings_are_a_message_not_a_traceback(monkeypatch):
    monkeypatch.setenv("LOCKGATE_LEDGER_GRPC_PORT", "eighty")
    with pytest.raises(HostError) as raised:
        load_settings(["ledger"])
    assert str(raised.value) == (
        "invalid settings: LOCKGATE_LEDGER_GRPC_PORT: Input should be a valid integer,"
        " unable to parse string as an integer (got 'eighty')"
    )


def record(logger: str) -> logging.LogRecord:
    return logging.LogRecord(logger, logging.INFO, __file__, 1, "hello", (), None)


def test_logs_name_the_service_whose_code_wrote_them():
    shared = JsonFormatter("router+auth", ("router", "auth"))
    assert json.loads(shared.format(record("lockgate.router.admission")))["service"] == "router"
    assert json.loads(shared.format(record("lockgate.auth.check")))["service"] == "auth"
    assert json.loads(shared.format(record("services.auth.app")))["service"] == "auth"
    assert json.loads(shared.format(record("lockgate.authz")))["service"] == "router+auth"
    assert json.loads(shared.format(record("lockgate.grpc")))["service"] == "router+auth"
    alone = JsonFormatter("ledger", ("ledger",))
    assert json.loads(alone.format(record("lockgate.router")))["service"] == "ledger"
