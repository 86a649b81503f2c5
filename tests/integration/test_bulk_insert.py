"""lockgate/db.py BulkInsert: many rows in one executemany of one prepared INSERT,
on SQLite and PostgreSQL, read back through SQLAlchemy exactly as written
(datetimes included, which SQLite stores as text)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select

from lockgate.db import BulkInsert, open_database
from services.ledger.app import MIGRATIONS
from services.ledger.call_log_store import CALL_COLUMNS
from services.ledger.models import CallLogRecord

_LOG = CallLogRecord.__table__


def call(i: int, start: datetime) -> dict:
    return {
        "request_id": f"req-{i}", "tenant_id": "ten_a" if i % 2 else "ten_b", "key_id": "key_1",
        "start_time": start + timedelta(microseconds=i), "http_method": "POST",
        "path": "/v1/chat/completions", "response_code": 200 + i % 3, "response_flags": "",
        "duration_ms": i, "request_bytes": 10 * i, "response_bytes": 2**40 + i,
        "upstream_cluster": "router", "upstream_host": "127.0.0.1:50067",
    }


@pytest.fixture
async def sessions(database_url):
    engine, sessions = await open_database(database_url, MIGRATIONS, "alembic_version_ledger")
    yield engine, sessions
    await engine.dispose()


async def test_rows_read_back_as_written_in_one_statement(sessions):
    engine, make_session = sessions
    statements = []
    event.listen(engine.sync_engine, "before_cursor_execute",
                 lambda conn, cursor, statement, *args: statements.append(statement))
    start = datetime(2026, 11, 27, 10, 30, 15, 123456, tzinfo=UTC)
    rows = [call(i, start) for i in range(700)]
    bulk = BulkInsert(_LOG, CALL_COLUMNS)
    async with make_session() as session, session.begin():
        await bulk.run(session, rows)
        await bulk.run(session, [])  # nothing to do: no statement
    assert len(statements) == 1
    async with make_session() as session:
        stored = (await session.execute(select(CallLogRecord).order_by(_LOG.c.id))).scalars().all()
    assert len(stored) == 700
    for row, record in zip(rows, stored, strict=True):
        got = {name: getattr(record, name) for name in CALL_COLUMNS}
        # SQLite hands back naive datetimes (in UTC, as written); PostgreSQL aware ones.
        if got["start_time"].tzinfo is None:
            got["start_time"] = got["start_time"].replace(tzinfo=UTC)
        assert got == row


async def test_a_row_without_every_column_is_refused_before_anything_is_sent(sessions):
    engine, make_session = sessions
    row = call(1, datetime.now(UTC))
    del row["upstream_host"]
    async with make_session() as session, session.begin():
        with pytest.raises(KeyError):
            await BulkInsert(_LOG, CALL_COLUMNS).run(session, [call(0, datetime.now(UTC)), row])
    async with make_session() as session:
        assert (await session.execute(select(CallLogRecord))).scalars().all() == []


def test_columns_must_be_the_table_s():
    with pytest.raises(ValueError, match="no_such_column"):
        BulkInsert(_LOG, ["request_id", "no_such_column"])
