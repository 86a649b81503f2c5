"""Fixtures shared by the integration tests."""

from __future__ import annotations

import grpc
import pytest

from lockgate.lean_http import LeanHttpClient
from lockgate.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from tests.integration.router_harness import admit_port, start_ledger


@pytest.fixture
async def admit_ledger(tmp_path):
    """A real ledger in process: its gRPC stub, and a client of its HTTP Admit."""
    server, engine, port = await start_ledger(tmp_path)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    client = LeanHttpClient("127.0.0.1", admit_port(server))
    yield pb_grpc.LedgerServiceStub(channel), client
    client.close()
    await channel.close()
    await server.stop(0)
    await engine.dispose()
