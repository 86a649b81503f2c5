"""Hands usage entries to the ledger off the hot path.

`record()` never blocks or fails: entries go into a bounded in-memory queue; a
background task sends them in batches (RecordUsage is idempotent on request id,
so a retried batch never counts twice) and retries with backoff while the
ledger is down. On shutdown what is still queued is flushed, or written to a
spool file that is replayed at the next start. When the queue is full, the
oldest entries are spooled to disk rather than dropped.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from pathlib import Path

import grpc

from lockgate.ledger.v1 import ledger_service_pb2 as ledger_pb
from lockgate.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc
from lockgate.metrics import Counter, Gauge

log = logging.getLogger("lockgate.router.metering")

USAGE_SENT = Counter("lockgate_router_usage_sent_total", "Usage entries accepted by the ledger")
USAGE_PENDING = Gauge("lockgate_router_usage_pending", "Usage entries waiting for the ledger")
USAGE_SEND_ERRORS = Counter("lockgate_router_usage_send_errors_total", "Failed RecordUsage calls")


class UsageRecorder:
    def __init__(
        self,
        ledger_address: str,
        spool_dir: Path,
        *,
        max_queue: int = 100_000,
        batch_size: int = 500,
        flush_interval: float = 0.1,
    ):
        self.channel = grpc.aio.insecure_channel(ledger_address)
        self.stub = ledger_grpc.LedgerServiceStub(self.channel)
        self.spool = spool_dir / "usage.spool"
        self.replaying = spool_dir / "usage.spool.replaying"
        self._replay_left = 0
        self.queue: deque[ledger_pb.UsageEntry] = deque()
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._closing = False

    async def start(self) -> None:
        self._replay_spool()
        self._task = asyncio.create_task(self._run(), name="usage-recorder")

    def record(self, entry: ledger_pb.UsageEntry) -> None:
        if len(self.queue) >= self.max_queue:
            self._spool([self.queue.popleft() for _ in range(self.batch_size)])
        self.queue.append(entry)
        USAGE_PENDING.set(len(self.queue))
        if len(self.queue) >= self.batch_size:
            self._wake.set()

    async def close(self, grace_seconds: float = 5.0) -> None:
        """Flush what is queued; spool the rest if the ledger does not take it in time."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, grace_seconds)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
        if self.queue:
            self._spool(list(self.queue))
            self.queue.clear()
        await self.channel.close()

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            # Send full batches at once, anything less once per flush interval:
            # one RecordUsage per request would cost the ledger more than the
            # request itself.
            if len(self.queue) < self.batch_size and not self._closing:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self.flush_interval)
                except TimeoutError:
                    pass
            if not self.queue:
                if self._closing:
                    return
                continue
            batch = [self.queue[i] for i in range(min(self.batch_size, len(self.queue)))]
            try:
                await self.stub.RecordUsage(ledger_pb.RecordUsageRequest(entries=batch), timeout=10)
            except grpc.aio.AioRpcError as exc:
                USAGE_SEND_ERRORS.inc()
                log.warning("ledger unavailable, will retry", extra={"code": exc.code().name})
                if self._closing:
                    return
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
            for _ in batch:
                self.queue.popleft()
            USAGE_SENT.inc(len(batch))
            self._sent(len(batch))
            USAGE_PENDING.set(len(self.queue))

    def _spool(self, entries: list[ledger_pb.UsageEntry]) -> None:
        """Append length-prefixed entries to the spool file (fsynced)."""
        self.spool.parent.mkdir(parents=True, exist_ok=True)
        with open(self.spool, "ab") as f:
            for entry in entries:
                data = entry.SerializeToString()
                f.write(len(data).to_bytes(4, "big") + data)
            f.flush()
            os.fsync(f.fileno())
        log.warning("spooled usage entries to disk", extra={"count": len(entries)})

    def _replay_spool(self) -> None:
        """Queue spooled entries; the file goes only once they reached the ledger."""
        if self.spool.exists():
            if self.replaying.exists():  # an earlier replay never finished: keep both
                with open(self.replaying, "ab") as f:
                    f.write(self.spool.read_bytes())
                self.spool.unlink()
            else:
                self.spool.rename(self.replaying)
        if not self.replaying.exists():
            return
        raw = self.replaying.read_bytes()
        pos, entries = 0, []
        while pos + 4 <= len(raw):
            size = int.from_bytes(raw[pos : pos + 4], "big")
            if pos + 4 + size > len(raw):
                break  # a torn last write: the rest of the record never made it
            entries.append(ledger_pb.UsageEntry.FromString(raw[pos + 4 : pos + 4 + size]))
            pos += 4 + size
        self.queue.extendleft(reversed(entries))
        self._replay_left = len(entries)
        log.info("replaying spooled usage entries", extra={"count": len(entries)})

    def _sent(self, count: int) -> None:
        if self._replay_left:
            self._replay_left = max(0, self._replay_left - count)
            if self._replay_left == 0:
                self.replaying.unlink(missing_ok=True)
