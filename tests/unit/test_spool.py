"""The usage write-ahead spool: order, acknowledgement, rotation, torn tails, bound."""

from __future__ import annotations

import time

import pytest

from services.router.app import RouterSettings
from services.router.spool import (
    SPOOL_FSYNC_SECONDS,
    SpoolFull,
    SpoolInUse,
    UsageSpool,
    fsync_interval,
)


def payloads(n: int, start: int = 0) -> list[bytes]:
    return [f"entry-{i}".encode() for i in range(start, start + n)]


def test_records_come_back_in_order_until_acknowledged(tmp_path):
    spool = UsageSpool(tmp_path)
    for p in payloads(5):
        spool.append(p)
    first, cursor = spool.read(3)
    assert first == payloads(3)
    assert spool.read(3)[0] == payloads(3)  # not acknowledged: read again
    spool.commit(cursor)
    rest, cursor = spool.read(10)
    assert rest == payloads(2, 3)
    spool.commit(cursor)
    assert spool.read(10)[0] == [] and spool.pending_bytes == 0


def test_a_restart_resumes_after_the_checkpoint(tmp_path):
    spool = UsageSpool(tmp_path)
    for p in payloads(4):
        spool.append(p)
    _, cursor = spool.read(2)
    spool.commit(cursor)
    spool.close()  # close() commits nothing: the same state as after a crash
    again = UsageSpool(tmp_path)
    assert again.read(10)[0] == payloads(2, 2)
    again.append(b"after-restart")
    records, cursor = again.read(10)
    assert records == [*payloads(2, 2), b"after-restart"]
    again.commit(cursor)
    again.close()
    assert UsageSpool(tmp_path).read(10)[0] == []


def test_segments_rotate_and_acknowledged_ones_are_deleted(tmp_path):
    spool = UsageSpool(tmp_path, segment_bytes=64)
    for p in payloads(20):
        spool.append(p)
    assert len(list(tmp_path.glob("usage-*.seg"))) > 3
    records, cursor = spool.read(100)
    assert records == payloads(20)
    spool.commit(cursor)
    assert len(list(tmp_path.glob("usage-*.seg"))) == 1


def test_a_torn_tail_is_skipped(tmp_path):
    spool = UsageSpool(tmp_path)
    for p in payloads(3):
        spool.append(p)
    spool.close()
    segment = sorted(tmp_path.glob("usage-*.seg"))[-1]
    with open(segment, "ab") as f:
        f.write(b"\x00\x00\x00\x10\x12\x34")  # a record header the crash cut short
    again = UsageSpool(tmp_path)
    again.append(b"later")
    assert again.read(10)[0] == [*payloads(3), b"later"]


def test_a_corrupt_record_stops_reading_its_segment(tmp_path):
    spool = UsageSpool(tmp_path)
    spool.append(b"good")
    spool.append(b"flipped")
    spool.close()
    segment = sorted(tmp_path.glob("usage-*.seg"))[-1]
    raw = bytearray(segment.read_bytes())
    raw[-1] ^= 0xFF
    segment.write_bytes(bytes(raw))
    again = UsageSpool(tmp_path)
    assert again.read(10)[0] == [b"good"]


def test_the_bound_refuses_new_records(tmp_path):
    spool = UsageSpool(tmp_path, max_bytes=100)
    with pytest.raises(SpoolFull):
        for p in payloads(50):
            spool.append(p)
    assert spool.full
    records, cursor = spool.read(100)
    spool.commit(cursor)
    assert not spool.full
    spool.append(b"fits again")


def test_one_process_per_spool_directory(tmp_path):
    spool = UsageSpool(tmp_path)
    with pytest.raises(SpoolInUse):
        UsageSpool(tmp_path)
    spool.close()
    UsageSpool(tmp_path).close()


# -- fsync (durability against power loss) ---------------------------------------------


def fsyncs() -> float:
    """Flushes done so far by every spool of this process (the histogram's count)."""
    for metric in SPOOL_FSYNC_SECONDS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count"):
                return sample.value
    return 0.0


def wait_for(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def test_the_fsync_setting_in_milliseconds(monkeypatch):
    assert (fsync_interval(100), fsync_interval(0), fsync_interval(-1)) == (0.1, 0, None)
    assert RouterSettings().spool_fsync_interval_ms == 100  # default: group fsync, 100 ms
    monkeypatch.setenv("LOCKGATE_ROUTER_SPOOL_FSYNC_INTERVAL_MS", "-1")
    assert fsync_interval(RouterSettings().spool_fsync_interval_ms) is None
    monkeypatch.setenv("LOCKGATE_ROUTER_SPOOL_FSYNC_INTERVAL_MS", "0")
    assert fsync_interval(RouterSettings().spool_fsync_interval_ms) == 0
    monkeypatch.setenv("LOCKGATE_ROUTER_SPOOL_FSYNC_INTERVAL_MS", "250")
    assert fsync_interval(RouterSettings().spool_fsync_interval_ms) == 0.25


def test_fsync_zero_flushes_every_record_before_append_returns(tmp_path):
    spool = UsageSpool(tmp_path, fsync_interval=0)
    before = fsyncs()
    for p in payloads(5):
        spool.append(p)
        assert spool._synced == spool._written  # on disk when append returns
    assert fsyncs() - before == 5
    spool.close()


def test_no_fsync_leaves_flushing_to_the_os(tmp_path):
    spool = UsageSpool(tmp_path, fsync_interval=None)
    before = fsyncs()
    for p in payloads(50):
        spool.append(p)
    time.sleep(0.05)
    assert fsyncs() == before and spool._syncer is None
    spool.close()


def test_group_fsync_flushes_a_burst_at_once_and_idles_when_nothing_is_written(tmp_path):
    spool = UsageSpool(tmp_path, fsync_interval=0.02)
    before = fsyncs()
    for p in payloads(500):
        spool.append(p)
    wait_for(lambda: spool._synced == spool._written == 500)
    flushed = fsyncs() - before
    assert 1 <= flushed < 50  # one flush covers many records
    time.sleep(0.1)  # five intervals with nothing new: no flush
    assert fsyncs() - before == flushed
    spool.append(b"one more")
    wait_for(lambda: spool._synced == 501, seconds=2.0)
    syncer = spool._syncer
    spool.close()
    assert syncer is not None and not syncer.is_alive()


def test_group_fsync_is_safe_across_segment_rotation(tmp_path):
    spool = UsageSpool(tmp_path, segment_bytes=256, fsync_interval=0.001)
    for p in payloads(2000):
        spool.append(p)
    records, _ = spool.read(5000)
    assert records == payloads(2000)
    spool.close()
    assert UsageSpool(tmp_path).read(5000)[0] == payloads(2000)
