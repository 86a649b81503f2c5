"""Hands usage entries to the ledger off the hot path, without ever losing one.

`record()` appends the entry to a write-ahead spool on local disk (spool.py)
and returns: no network, no waiting. A background task reads the spool in
batches and sends them with RecordUsage; the ledger ignores request ids it
already has, so a batch resent after a timeout or a crash never counts twice.
Only when the ledger acknowledged a batch does the spool's checkpoint move.
While the ledger is down, batches are retried with backoff and the spool
grows, up to its bound: then the router refuses new calls (503) rather than
serve calls it cannot meter.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import grpc

from lockgate.errors import ServiceUnavailable
from lockgate.ledger.v1 import ledger_service_pb2 as ledger_pb
from lockgate.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc
from lockgate.metrics import Counter, Gauge
from services.router.spool import SpoolFull, UsageSpool

log = logging.getLogger("lockgate.router.metering")

USAGE_SENT = Counter("lockgate_router_usage_sent_total", "Usage entries accepted by the ledger")
USAGE_PENDING = Gauge(
    "lockgate_router_usage_pending_bytes", "Spooled usage bytes not yet acknowledged by the ledger"
)
USAGE_SEND_ERRORS = Counter("lockgate_router_usage_send_errors_total", "Failed RecordUsage calls")
#: Bound on one RecordUsage message: entries carrying logged bodies are large, and
#: the ledger accepts messages up to 8 MiB.
MAX_REQUEST_BYTES = 4 * 1024 * 1024
#: Reconnect to a ledger that came back within 2 s (gRPC's default backoff grows to
#: 120 s: after a long outage, usage would wait minutes for the next attempt).
LEDGER_CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
)


def by_size(records: list[bytes], max_bytes: int = MAX_REQUEST_BYTES) -> list[list[bytes]]:
    """Consecutive groups of records whose sizes add up to at most max_bytes
    (a larger record goes alone)."""
    groups: list[list[bytes]] = []
    size = 0
    for record in records:
        if not groups or size + len(record) + 16 > max_bytes:
            groups.append([])
            size = 0
        groups[-1].append(record)
        size += len(record) + 16  # field tag and length prefix, generously
    return groups


class UsageRecorder:
    def __init__(
        self,
        ledger_address: str,
        spool_dir: Path,
        *,
        batch_size: int = 500,
        flush_interval: float = 0.1,
        max_spool_bytes: int = 1 << 30,
        fsync_interval: float | None = None,
    ):
        self.channel = grpc.aio.insecure_channel(ledger_address, options=LEDGER_CHANNEL_OPTIONS)
        self.stub = ledger_grpc.LedgerServiceStub(self.channel)
        # fsync_interval: how often spooled entries are flushed to disk (spool.py).
        self.spool = UsageSpool(
            spool_dir, max_bytes=max_spool_bytes, fsync_interval=fsync_interval
        )
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self._unsent = 0  # records appended since the last read (a hint for waking early)
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._closing = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="usage-recorder")

    def check_capacity(self) -> None:
        """Refuse a call up front when its usage could not be recorded."""
        if self.spool.full:
            raise ServiceUnavailable(
                "usage metering is backlogged (the ledger is unreachable); try again later"
            )

    def record(self, entry: ledger_pb.UsageEntry) -> None:
        try:
            self.spool.append(entry.SerializeToString())
        except SpoolFull:
            # check_capacity() refused new calls; only calls already in flight get here.
            log.error("usage spool full: entry not recorded", extra={"request": entry.request_id})
            return
        self._unsent += 1
        if self._unsent >= self.batch_size:
            self._wake.set()

    async def close(self, grace_seconds: float = 5.0) -> None:
        """Send what the ledger takes within the grace period; the rest stays spooled."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, grace_seconds)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
        self.spool.close()
        await self.channel.close()

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            # Full batches at once, anything less once per flush interval: one
            # RecordUsage per request would cost the ledger more than the request.
            if self._unsent < self.batch_size and not self._closing:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self.flush_interval)
                except TimeoutError:
                    pass
            records, cursor = self.spool.read(self.batch_size)
            self._unsent = 0
            if not records:
                if self._closing:
                    return
                continue
            try:
                # A part the ledger took is resent after a later part fails: harmless,
                # the ledger ignores request ids it already has.
                for part in by_size(records):
                    batch = [ledger_pb.UsageEntry.FromString(r) for r in part]
                    await self.stub.RecordUsage(
                        ledger_pb.RecordUsageRequest(entries=batch), timeout=10
                    )
            except grpc.aio.AioRpcError as exc:
                USAGE_SEND_ERRORS.inc()
                log.warning("ledger unavailable, will retry", extra={"code": exc.code().name})
                if self._closing:
                    return
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
            self.spool.commit(cursor)
            USAGE_SENT.inc(len(records))
            USAGE_PENDING.set(self.spool.pending_bytes)
            if len(records) == self.batch_size:
                self._unsent = self.batch_size  # more may be waiting: no pause
