"""datetime <-> google.protobuf.Timestamp, always in UTC.

SQLite hands back naive datetimes for timezone-aware columns: they are UTC
(every service writes datetime.now(UTC)), so a naive value is read as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp


def to_timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value if value.tzinfo else value.replace(tzinfo=UTC))
    return stamp
