"""`python -m services ledger registry`: two real services in one process, each
on its own ports with its own settings and database; SIGTERM stops both; a
service that cannot start is one clear line and exit code 2."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import urllib.request

import grpc

from lockgate.stack.health import GrpcCheck
from tests.conftest import free_port
from tests.integration.service_process import ROOT


def env_for(tmp_path, ports: dict[str, int], metrics: dict[str, int]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE_")}
    for name, port in ports.items():
        prefix = f"LOCKGATE_{name.upper()}_"
        env[prefix + "GRPC_PORT"] = str(port)
        env[prefix + "DATA_DIR"] = str(tmp_path)
        env[prefix + "METRICS_PORT"] = str(metrics.get(name, -1))
    env["LOCKGATE_LEDGER_ADMIT_PORT"] = "-1"
    return env


async def test_two_services_share_a_process_and_stop_together(tmp_path):
    ports = {"ledger": free_port(), "registry": free_port()}
    metrics = {"ledger": free_port(), "registry": free_port()}
    log = tmp_path / "host.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services", "ledger", "registry", cwd=ROOT,
            env=env_for(tmp_path, ports, metrics), stdout=out, stderr=out,
        )
    try:
        for port in ports.values():
            check = GrpcCheck(f"127.0.0.1:{port}")
            for _ in range(300):
                if await check(1.0):
                    break
                assert proc.returncode is None, log.read_text()
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"not serving on {port}:\n{log.read_text()}")
        # Each its own database, migrated.
        assert (tmp_path / "ledger.db").exists() and (tmp_path / "registry.db").exists()
        # Each service's metrics on its own port, none counted twice.
        for port, method in ((ports["ledger"], "/lockgate.ledger.v1.LedgerService/ListPrices"),
                             (ports["registry"], "/lockgate.registry.v1.RegistryService/ListApis")):
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                call = channel.unary_unary(method, request_serializer=lambda _: b"",
                                           response_deserializer=bytes)
                with contextlib.suppress(grpc.aio.AioRpcError):  # no identity: refused
                    await call(None, timeout=5)
        scraped = {}
        for name, port in metrics.items():
            scraped[name] = await asyncio.to_thread(
                lambda port=port: urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            )
        assert 'service="ledger"' in scraped["ledger"]
        assert 'service="registry"' not in scraped["ledger"]
        assert 'service="registry"' in scraped["registry"]
        assert 'service="ledger"' not in scraped["registry"]
        assert "lockgate_ledger_rate_limit_checks" in scraped["ledger"]
        assert "lockgate_ledger_" not in scraped["registry"]
        assert "process_cpu_seconds_total" in scraped["registry"]
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    output = log.read_text()
    assert code == 0, output
    assert "Traceback" not in output, output
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    # Shared code (the gRPC bootstrap) labels its records with the process.
    assert "ledger+registry" in {r["service"] for r in records}
    assert {r["service"] for r in records} <= {"ledger", "registry", "ledger+registry"}
    assert [(r["server"], r["grpc_port"]) for r in records if r["msg"] == "serving"] == [
        ("ledger", ports["ledger"]), ("registry", ports["registry"])
    ]


async def test_a_service_that_cannot_start_is_one_clear_line(tmp_path):
    env = env_for(tmp_path, {"router": free_port(), "auth": free_port()}, {})
    env["LOCKGATE_ROUTER_GATEWAY_CONFIG"] = str(tmp_path / "missing.yaml")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services", "router", "auth", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    assert err.decode().startswith("lockgate router+auth: invalid gateway config:"), err
    assert b"Traceback" not in err


async def test_a_router_told_to_check_access_needs_auth_beside_it(tmp_path):
    env = env_for(tmp_path, {"router": free_port()}, {})
    env["LOCKGATE_ROUTER_CHECK_ACCESS"] = "true"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services", "router", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    assert "LOCKGATE_ROUTER_CHECK_ACCESS is set, but auth is not hosted" in err.decode(), err
    assert b"Traceback" not in err


async def test_unknown_service_names_are_refused():
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services", "ledger", "billing", cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    assert b"expected distinct service names out of auth, ledger, registry, router" in err
