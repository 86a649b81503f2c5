"""S3: usage entries/s the ledger ingests, sustained, on SQLite and on PostgreSQL.

The ledger runs as its own process (`python -m services.ledger`, exactly what
`lockgate up` starts, usage listeners included) on a fresh database; this
process plays the routers: each sender sends RecordUsage batches of 500 entries
(the router's batch size) back to back, as a router with a backlog does. One
sender is one router; several are several routers writing at once. The rate
is the entries the ledger reported inserted, over the measured seconds (after
a warm-up), and the table's row count is checked against it at the end.

    .venv/bin/python -m bench.ledger_ingest [--seconds 10] [--senders 1 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import grpc
from sqlalchemy import text

from lockgate.common.v1 import common_pb2
from lockgate.db import make_engine
from lockgate.ledger.v1 import ledger_service_pb2 as pb
from lockgate.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from lockgate.settings import normalize_db_url
from lockgate.stack.ephemeral import free_ports
from lockgate.stack.health import GrpcCheck

PG_URL = os.environ.get("LOCKGATE_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
BATCH = 500
WARMUP_SECONDS = 1.0
ROOT = Path(__file__).resolve().parent.parent


def _template() -> pb.UsageEntry:
    """A typical entry: every field the router fills for a governed chat call."""
    entry = pb.UsageEntry(
        tenant_id="ten_bench", key_id="key_bench", alias="demo", deployment="sim-primary",
        provider="sim", provider_model="sim-small",
        usage=common_pb2.TokenUsage(input_tokens=120, output_tokens=300, total_tokens=420),
        latency_ms=230, ttft_ms=0, status="ok", operation="chat", attempts=1,
        cost_micro_usd=3150, price_source="price_book", team_id="team_bench",
        principal="user:usr_bench", api_id="api_bench", api_version="v1",
    )
    entry.create_time.FromDatetime(datetime.now(UTC))
    return entry


def _batch(template: pb.UsageEntry, prefix: str, index: int) -> pb.RecordUsageRequest:
    request = pb.RecordUsageRequest()
    for i in range(BATCH):
        entry = request.entries.add()
        entry.CopyFrom(template)
        entry.request_id = f"{prefix}-{index}-{i}"
    return request


async def _sender(stub, prefix: str, stop_at: float, warm_until: float) -> tuple[int, int]:
    """Batches back to back until stop_at -> (inserted after warm-up, inserted in all)."""
    template = _template()
    measured = total = index = 0
    while time.perf_counter() < stop_at:
        request = _batch(template, prefix, index)
        index += 1
        reply = await stub.RecordUsage(request, timeout=30)
        total += reply.inserted
        if time.perf_counter() > warm_until:
            measured += reply.inserted
    return measured, total


class LedgerProcess:
    """`python -m services.ledger` on a free port and the given database."""

    def __init__(self, database_url: str, data_dir: Path):
        self.port = free_ports(1)[0]
        env = {
            **os.environ,
            "LOCKGATE_LEDGER_GRPC_PORT": str(self.port),
            "LOCKGATE_LEDGER_METRICS_PORT": "-1",
            "LOCKGATE_LEDGER_DATA_DIR": str(data_dir),
            "LOCKGATE_LEDGER_DATABASE_URL": database_url,
            "LOCKGATE_LEDGER_LOG_LEVEL": "warning",
        }
        self.log = open(data_dir / "ledger.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.ledger"], cwd=ROOT, env=env,
            stdout=self.log, stderr=subprocess.STDOUT,
        )

    async def ready(self, seconds: float = 60.0) -> None:
        check = GrpcCheck(f"127.0.0.1:{self.port}")
        deadline = time.monotonic() + seconds
        while not await check(1.0):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the ledger did not start (see {self.log.name})")
            await asyncio.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


async def _rows(url: str) -> int:
    engine = make_engine(normalize_db_url(url))
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text("SELECT count(*) FROM usage_entries"))).scalar_one()
    finally:
        await engine.dispose()


async def _measure(url: str, data_dir: Path, seconds: float, senders: int) -> dict:
    ledger = LedgerProcess(url, data_dir)
    try:
        await ledger.ready()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{ledger.port}") as channel:
            stub = pb_grpc.LedgerServiceStub(channel)
            start = time.perf_counter()
            warm_until = start + WARMUP_SECONDS
            stop_at = warm_until + seconds
            run = secrets.token_hex(3)
            results = await asyncio.gather(*(
                _sender(stub, f"{run}-{s}", stop_at, warm_until) for s in range(senders)
            ))
            elapsed = time.perf_counter() - warm_until
    finally:
        ledger.stop()
    measured = sum(m for m, _ in results)
    inserted = sum(t for _, t in results)
    rows = await _rows(url)
    if rows != inserted:
        raise RuntimeError(f"{inserted} entries reported inserted, {rows} rows in the table")
    return {"senders": senders, "batch": BATCH, "seconds": round(elapsed, 2),
            "entries": measured, "entries_per_s": round(measured / elapsed)}


async def _postgres_database() -> tuple[str, str]:
    name = f"lockgate_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(PG_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return name, PG_URL.rsplit("/", 1)[0] + "/" + name


async def _drop_postgres_database(name: str) -> None:
    admin = await asyncpg.connect(PG_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def run(seconds: float = 10.0, senders: tuple[int, ...] = (1, 4)) -> dict:
    """{"sqlite": [row per sender count], "postgresql": [...]}; a fresh database per row."""
    results: dict = {"sqlite": [], "postgresql": []}
    for count in senders:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'ledger.db'}"
            results["sqlite"].append(await _measure(url, Path(tmp), seconds, count))
        name, url = await _postgres_database()
        try:
            with tempfile.TemporaryDirectory() as tmp:
                results["postgresql"].append(await _measure(url, Path(tmp), seconds, count))
        finally:
            await _drop_postgres_database(name)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--senders", type=int, nargs="+", default=[1, 4],
                        help="concurrent senders (routers) per run")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.seconds, tuple(args.senders))), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
