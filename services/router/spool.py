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
process crash (SIGKILL included). Segments are fsynced when they are finished
and at shutdown; an fsync per record or per batch would stall the event loop
(a write waits while the file is being synced), so a power loss can take the
entries of the last seconds. The spool is used from one event-loop thread.
"""

from __future__ import annotations

import fcntl
import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

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


class UsageSpool:
    def __init__(
        self, directory: Path, *, segment_bytes: int = 8 * 1024 * 1024, max_bytes: int = 1 << 30
    ):
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes
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

    # -- writing -----------------------------------------------------------------

    def append(self, data: bytes) -> None:
        if len(data) > MAX_RECORD_BYTES:
            raise ValueError("usage record too large")
        if self._pending >= self.max_bytes:
            raise SpoolFull(f"{self._pending} bytes of usage entries wait for the ledger")
        if self._write_offset >= self.segment_bytes:
            os.fsync(self._fd)  # rare (every segment_bytes): a finished segment is durable
            os.close(self._fd)
            self._write_segment += 1
            self._fd = self._open_segment(self._write_segment)
            self._write_offset = 0
        record = len(data).to_bytes(4, "big") + zlib.crc32(data).to_bytes(4, "big") + data
        os.write(self._fd, record)
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
        os.fsync(self._fd)
        os.close(self._fd)
        os.close(self._lock_fd)  # releases the flock

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
        return os.open(self._path(segment), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def _read_checkpoint(self, segments: list[int]) -> Cursor:
        try:
            raw = json.loads((self.directory / "checkpoint").read_text())
            return Cursor(int(raw["segment"]), int(raw["offset"]))
        except (OSError, ValueError, KeyError, TypeError):
            return Cursor(segments[0] if segments else 1, 0)
