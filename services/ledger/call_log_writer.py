"""Batched writes of call records: a bounded in-memory queue and one background
writer that inserts a batch (one executemany) every `flush_interval` or as soon
as `batch_rows` records wait.

`put_many()` takes the records of one access log message at once (one queue
operation per message, not per call) and waits while the queue is full, so
the access log stream is read no faster than the database takes it (see
services/ledger/als.py for what Envoy does then). The queue holds at most
`max_queue` records plus one message's. A batch the database refuses is retried with backoff, then
dropped and counted: the call log is best-effort, and a stuck batch must not
stop every later one. `close()` writes what is queued before returning.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Iterable

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
        self._records: deque[dict] = deque()
        self.max_queue = max_queue
        #: Set while the queue has room; cleared by a put that finds it full.
        self._room = asyncio.Event()
        self._room.set()
        #: Set when records arrive (or close() asks the writer to finish).
        self._arrived = asyncio.Event()
        self.batch_rows = batch_rows
        self.flush_interval = flush_interval
        self.max_attempts = max_attempts
        self.max_backoff = max_backoff
        self._task: asyncio.Task | None = None
        self._closing = False

    @property
    def queued(self) -> int:
        """Records waiting to be written."""
        return len(self._records)

    async def put(self, record: dict) -> None:
        """Queue a record; waits while the queue is full (backpressure)."""
        await self.put_many((record,))

    async def put_many(self, records: Iterable[dict]) -> None:
        """Queue records; waits while the queue is full (backpressure)."""
        while len(self._records) >= self.max_queue:
            self._room.clear()
            await self._room.wait()
        self._records.extend(records)
        self._arrived.set()
        QUEUE_DEPTH.set(len(self._records))

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="call-log")

    async def close(self) -> None:
        """Write everything queued, then stop."""
        self._closing = True
        self._arrived.set()  # wakes the writer if it waits for records
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
        deadline = time.monotonic() + self.flush_interval
        while len(self._records) < self.batch_rows and not self._closing:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except TimeoutError:
                break
        records = self._records
        batch = [records.popleft() for _ in range(min(len(records), self.batch_rows))]
        if len(records) < self.max_queue:
            self._room.set()
        QUEUE_DEPTH.set(len(records))
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
