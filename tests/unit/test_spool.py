"""The usage write-ahead spool: order, acknowledgement, rotation, torn tails, bound."""

from __future__ import annotations

import pytest

from services.router.spool import SpoolFull, SpoolInUse, UsageSpool


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
