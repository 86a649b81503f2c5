"""S3 (first cut): usage entries/s the ledger service writes, on SQLite and on
PostgreSQL, through LedgerService.record in batches as the router sends them."""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from lockgate.db import open_database
from services.ledger.app import MIGRATIONS
from services.ledger.service import LedgerService

PG_URL = os.environ.get("LOCKGATE_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _entries(batch: int, index: int) -> list[dict]:
    now = datetime.now(UTC)
    return [
        {"request_id": f"b{index}-{i}", "tenant_id": "ten_bench", "key_id": "key_bench",
         "alias": "demo", "provider": "sim", "provider_model": "sim-small", "input_tokens": 12,
         "output_tokens": 30, "latency_ms": 3, "created_at": now}
        for i in range(batch)
    ]


async def _measure(url: str, seconds: float, batch: int) -> dict:
    engine, sessions = await open_database(url, MIGRATIONS, "alembic_version_ledger")
    service = LedgerService(sessions)
    written, index, start = 0, 0, time.perf_counter()
    try:
        while time.perf_counter() - start < seconds:
            result = await service.record(_entries(batch, index))
            written += result.inserted
            index += 1
    finally:
        await engine.dispose()
    elapsed = time.perf_counter() - start
    return {"batch": batch, "entries": written, "entries_per_s": round(written / elapsed)}


async def run(seconds: float = 5.0, batch: int = 500) -> dict:
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = await _measure(
            f"sqlite+aiosqlite:///{Path(tmp) / 'ledger.db'}", seconds, batch
        )
    name = f"lockgate_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(PG_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = PG_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + "/" + name
        results["postgresql"] = await _measure(url, seconds, batch)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return results


if __name__ == "__main__":
    print(asyncio.run(run()))
