"""Batched writes of call records: a bounded in-memory queue and one background
writer that inserts a batch (one multi-row INSERT) every `flush_interval` or
as soon as `batch_rows` records wait.

`put()` waits while the queue is full, so the access log stream is read no
faster than the database takes it (see services/ledger/als.py for what Envoy
does then). A batch the database refuses is retried with backoff, then
dropped and counted: the call log is best-effort, and a stuck batch must not
stop every later one. `close()` writes what is queued before returning.
"""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from lockgate.metrics import Counter, Gauge
from services.ledger.call_log_store import CallLogStore

log = logging.getLogger("lockgate.ledger.call_log")

CALLS_WRITTEN = Counter("lockgate_ledger_call_log_written_total", "Call records stored")
CALLS_DROPPED = Counter(
    "lockgate_ledger_call_log_dropped_total", "Call records dropped after failed writes"
)
QUEUE_DEPTH = Gauge("lockgate_ledger_call_log_queue", "Call records waiting to be stored")


class CallLogWriter:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        max_queue: int = 10_000,
        batch_rows: int = 500,
        flush_interval: float = 0.2,
        max_attempts: int = 5,
        max_backoff: float = 5.0,
    ):
        self.sessions = sessions
        #: Records, and None: close() asking a writer that waits for records to stop.
        self.queue: asyncio.Queue[dict | None] = asyncio.Queue(maxsize=max_queue)
        self.batch_rows = batch_rows
        self.flush_interval = flush_interval
        self.max_attempts = max_attempts
        self.max_backoff = max_backoff
        self._task: asyncio.Task | None = None
        self._closing = False

    async def put(self, record: dict) -> None:
        """Queue a record; waits while the queue is full (backpressure)."""
        await self.queue.put(record)
        QUEUE_DEPTH.set(self.queue.qsize())

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="call-log")

    async def close(self) -> None:
        """Write everything queued, then stop."""
        self._closing = True
        try:
            self.queue.put_nowait(None)  # wakes the writer if it waits for a record
        except asyncio.QueueFull:
            pass  # it is not waiting: records are there to take
        if self._task is not None:
            await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            batch = await self._next_batch()
            if batch:
                await self._write(batch)
            elif self._closing:
                return

    async def _next_batch(self) -> list[dict]:
        """Up to batch_rows records, gathered for at most flush_interval."""
        batch: list[dict] = []
        deadline = None
        while len(batch) < self.batch_rows:
            try:
                record = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                if self._closing:
                    break
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.flush_interval
                if now >= deadline:
                    break
                try:
                    record = await asyncio.wait_for(self.queue.get(), deadline - now)
                except TimeoutError:
                    break
            if record is not None:
                batch.append(record)
        QUEUE_DEPTH.set(self.queue.qsize())
        return batch

    async def _write(self, batch: list[dict]) -> None:
        backoff = 0.1
        for attempt in range(1, self.max_attempts + 1):
            try:
                async with self.sessions() as session, session.begin():
                    await CallLogStore(session).insert_calls(batch)
                CALLS_WRITTEN.inc(len(batch))
                return
            except Exception:  # noqa: BLE001 - retried, then dropped: never stop the writer
                # Shutting down: one retry, so close() is not held up for long.
                if attempt == self.max_attempts or (self._closing and attempt >= 2):
                    break
                log.warning("call log write failed; retrying", exc_info=True,
                            extra={"rows": len(batch), "attempt": attempt})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
        CALLS_DROPPED.inc(len(batch))
        log.error("call log batch dropped after failed writes", extra={"rows": len(batch)})
