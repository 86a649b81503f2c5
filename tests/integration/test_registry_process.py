"""`python -m services.registry` starts, serves gRPC health, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lockgate.identity import KEY_ID, ROLES, TEAM_ID, TENANT_ID
from lockgate.registry.v1 import registry_service_pb2 as pb
from lockgate.registry.v1 import registry_service_pb2_grpc as pb_grpc
from services.registry.app import SERVICE_NAME
from tests.conftest import free_port

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


async def wait_serving(channel: grpc.aio.Channel, proc: asyncio.subprocess.Process, log) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            pytest.fail(f"registry exited with {proc.returncode}:\n{log.read_text()}")
        try:
            reply = await health.Check(
                health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=1
            )
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.aio.AioRpcError:
            pass  # not listening yet
        await asyncio.sleep(0.1)
    pytest.fail(f"registry not SERVING within {START_TIMEOUT}s:\n{log.read_text()}")


async def test_module_serves_health_and_exits_zero_on_sigterm(tmp_path):
    port = free_port()
    data_dir = tmp_path / "data"
    log = tmp_path / "registry.log"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE_REGISTRY_")},
        "LOCKGATE_REGISTRY_GRPC_PORT": str(port),
        "LOCKGATE_REGISTRY_DATA_DIR": str(data_dir),
    }
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.registry", env=env, stdout=out, stderr=out
        )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await wait_serving(channel, proc, log)
            overall = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="")
            )
            assert overall.status == health_pb2.HealthCheckResponse.SERVING
            # Migrated and usable: one real call against its default SQLite file.
            made = await pb_grpc.RegistryServiceStub(channel).CreateApi(
                pb.CreateApiRequest(name="smoke", kind=pb.API_KIND_MODEL),
                metadata=((TENANT_ID, "ten_a"), (KEY_ID, "key_x"), (TEAM_ID, "team_" + "a" * 24),
                          (ROLES, "team_admin")),
            )
            assert made.api.id.startswith("api_")
        assert (data_dir / "registry.db").exists()

        proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
        except TimeoutError:
            pytest.fail(f"registry still running {STOP_TIMEOUT}s after SIGTERM")
        output = log.read_text()
        assert code == 0, output
        assert "Traceback" not in output, output
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
