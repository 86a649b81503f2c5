"""A write-ahead spool for usage entries: every entry is on disk before the
response that produced it is finished, so a router that crashes (even
SIGKILL) loses nothing; the ledger gets it later.

Layout of the spool directory:

    usage-000000000001.seg   append-only segments of records
    usage-000000000002.seg   (a new segment at each start and every segment_bytes)
    checkpoint               {"segment": N, "offset": M}: everything before it is acknowledged

A record is a 4-byte big-endian length, a 4-byte CRC-32 of the data, then the
data. A torn tail (the process died mid-write) fails the length or CRC check
and is skipped: it was never acknowledged to anyone, and the write that tore
is the only one that can be incomplete.

Writes go to the OS with one `os.write` per record: the page cache survives a
process crash (SIGKILL included), not a power loss or a kernel crash. For
those, `fsync_interval` decides how often the written records reach the disk:

    None  never (the OS writes them back on its own, typically within ~30 s)
    0     after every record, on the caller's thread: nothing acknowledged to a
          client is ever lost, at the cost of one disk flush per call
    T > 0 group commit: a syncer thread flushes whatever was written in the
          last T seconds (one fdatasync for all of them), so a power loss can
          take at most the entries of the last T seconds plus one flush

The group syncer runs beside the event loop (fdatasync releases the GIL), and
a write does not wait for a flush in progress: the event loop never blocks on
the disk. Finished segments are always flushed when they are closed, and the
directory once a new segment is created (or its name may not survive). The
checkpoint is not flushed: after a power loss it may point before entries the
ledger already has, which are then resent and ignored by request id. The
spool is written from one event-loop thread.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from lockgate.metrics import Histogram

log = logging.getLogger("lockgate.router.spool")

SPOOL_FSYNC_SECONDS = Histogram(
    "lockgate_router_spool_fsync_seconds",
    "Duration of one flush of the usage spool to disk",
    buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)

_HEADER = 8
#: Largest record accepted: a usage entry is a few hundred bytes.
MAX_RECORD_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Cursor:
    segment: int
    offset: int


class SpoolFull(Exception):
    """The spool holds max_bytes of unacknowledged entries."""


class SpoolInUse(Exception):
    """Another process owns this spool directory (each router replica needs its own)."""


def fsync_interval(milliseconds: int) -> float | None:
    """The spool's fsync_interval from the router's SPOOL_FSYNC_INTERVAL_MS
    setting: negative = never (None), 0 = every record, else seconds."""
    return None if milliseconds < 0 else milliseconds / 1000


class UsageSpool:
    def __init__(
        self,
        directory: Path,
        *,
        segment_bytes: int = 8 * 1024 * 1024,
        max_bytes: int = 1 << 30,
        fsync_interval: float | None = None,
    ):
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes
        self.fsync_interval = fsync_interval
        directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise SpoolInUse(f"{directory} is used by another router process") from None
        segments = self._segments()
        #: Everything before it is acknowledged by the ledger; reads start here.
        self.checkpoint = self._read_checkpoint(segments)
        # Never append to an old segment: its tail may be torn.
        self._write_segment = (segments[-1] + 1) if segments else 1
        self._fd = self._open_segment(self._write_segment)
        self._write_offset = 0
        self._pending = sum(
            self._path(s).stat().st_size for s in segments if s >= self.checkpoint.segment
        ) - self.checkpoint.offset
        # Group fsync: the syncer flushes when `_written` moved past `_synced`;
        # `_fd_lock` keeps it from flushing a descriptor being closed by rotation.
        self._written = 0
        self._synced = 0
        self._fd_lock = threading.Lock()
        self._stop = threading.Event()
        self._syncer: threading.Thread | None = None
        if fsync_interval is not None and fsync_interval > 0:
            self._syncer = threading.Thread(
                target=self._sync_periodically, name="usage-spool-fsync", daemon=True
            )
            self._syncer.start()

    # -- writing -----------------------------------------------------------------

    def append(self, data: bytes) -> None:
        if len(data) > MAX_RECORD_BYTES:
            raise ValueError("usage record too large")
        if self._pending >= self.max_bytes:
            raise SpoolFull(f"{self._pending} bytes of usage entries wait for the ledger")
        if self._write_offset >= self.segment_bytes:
            with self._fd_lock:  # rare (every segment_bytes): a finished segment is durable
                os.fsync(self._fd)
                os.close(self._fd)
                self._write_segment += 1
                self._fd = self._open_segment(self._write_segment)
                self._write_offset = 0
        record = len(data).to_bytes(4, "big") + zlib.crc32(data).to_bytes(4, "big") + data
        os.write(self._fd, record)
        self._written += 1
        if self.fsync_interval == 0:
            self._sync()
        self._write_offset += len(record)
        self._pending += len(record)

    @property
    def pending_bytes(self) -> int:
        return max(self._pending, 0)

    @property
    def full(self) -> bool:
        return self._pending >= self.max_bytes

    # -- reading ------------------------------------------------------------------

    def read(self, max_records: int) -> tuple[list[bytes], Cursor]:
        """Up to max_records unacknowledged records from the checkpoint, and the
        cursor after them. Nothing moves until `commit(cursor)`."""
        records: list[bytes] = []
        segment, offset = self.checkpoint.segment, self.checkpoint.offset
        while len(records) < max_records and segment <= self._write_segment:
            path = self._path(segment)
            if not path.exists():
                segment, offset = segment + 1, 0
                continue
            with open(path, "rb") as f:
                f.seek(offset)
                while len(records) < max_records:
                    header = f.read(_HEADER)
                    if len(header) < _HEADER:
                        break
                    size = int.from_bytes(header[:4], "big")
                    data = f.read(size) if size <= MAX_RECORD_BYTES else b""
                    if len(data) != size or zlib.crc32(data) != int.from_bytes(header[4:], "big"):
                        break  # a torn tail
                    records.append(data)
                    offset += _HEADER + size
            if len(records) < max_records and segment < self._write_segment:
                segment, offset = segment + 1, 0  # the rest of an old segment is done
            else:
                break
        return records, Cursor(segment, offset)

    def commit(self, cursor: Cursor) -> None:
        """The ledger has everything before `cursor`: persist that, drop old segments."""
        acknowledged = self._distance(self.checkpoint, cursor)
        tmp = self.directory / "checkpoint.tmp"
        tmp.write_text(json.dumps({"segment": cursor.segment, "offset": cursor.offset}))
        os.replace(tmp, self.directory / "checkpoint")
        self.checkpoint = cursor
        self._pending -= acknowledged
        for segment in self._segments():
            if segment < cursor.segment:
                self._path(segment).unlink(missing_ok=True)

    def close(self) -> None:
        if self._syncer is not None:
            self._stop.set()
            self._syncer.join()
        os.fsync(self._fd)
        os.close(self._fd)
        os.close(self._lock_fd)  # releases the flock

    # -- durability --------------------------------------------------------------------

    def _sync(self) -> None:
        """Flush the records written so far to disk (data and file size)."""
        with self._fd_lock:
            target = self._written
            if target == self._synced:
                return
            start = time.perf_counter()
            os.fdatasync(self._fd)
            self._synced = target
        SPOOL_FSYNC_SECONDS.observe(time.perf_counter() - start)

    def _sync_periodically(self) -> None:
        assert self.fsync_interval
        while not self._stop.wait(self.fsync_interval):
            try:
                self._sync()
            except OSError:  # the disk failing: say so, keep trying (and writing)
                log.exception("usage spool fsync failed")

    # -- helpers ---------------------------------------------------------------------

    def _distance(self, start: Cursor, end: Cursor) -> int:
        if start.segment == end.segment:
            return end.offset - start.offset
        total = 0
        for segment in range(start.segment, end.segment):
            path = self._path(segment)
            if path.exists():
                total += path.stat().st_size
        return total - start.offset + end.offset

    def _path(self, segment: int) -> Path:
        return self.directory / f"usage-{segment:012d}.seg"

    def _segments(self) -> list[int]:
        return sorted(int(p.stem.split("-")[1]) for p in self.directory.glob("usage-*.seg"))

    def _open_segment(self, segment: int) -> int:
        fd = os.open(self._path(segment), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if self.fsync_interval is not None:
            # The new file's name is durable only once its directory is flushed.
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return fd

    def _read_checkpoint(self, segments: list[int]) -> Cursor:
        try:
            raw = json.loads((self.directory / "checkpoint").read_text())
            return Cursor(int(raw["segment"]), int(raw["offset"]))
        except (OSError, ValueError, KeyError, TypeError):
            return Cursor(segments[0] if segments else 1, 0)
