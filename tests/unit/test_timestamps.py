"""lockgate/timestamps.py: Timestamp -> datetime as protobuf's ToDatetime gives it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from lockgate.timestamps import from_timestamp, to_timestamp


@pytest.mark.parametrize("value", [
    datetime(2026, 11, 27, 10, 30, 15, 123456, tzinfo=UTC),
    datetime(2026, 11, 27, 0, 0, 0, tzinfo=UTC),
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
])
def test_from_timestamp_is_to_datetime(value):
    stamp = to_timestamp(value)
    assert from_timestamp(stamp) == stamp.ToDatetime(tzinfo=UTC) == value
    assert from_timestamp(stamp).tzinfo is UTC


def test_nanoseconds_are_cut_to_microseconds_as_protobuf_cuts_them():
    stamp = Timestamp(seconds=1_764_000_000, nanos=123_456_789)
    assert from_timestamp(stamp) == stamp.ToDatetime(tzinfo=UTC)
    assert from_timestamp(stamp).microsecond == 123_456
