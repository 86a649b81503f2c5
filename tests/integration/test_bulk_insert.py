"""lockgate/bulk_insert.py: many rows handed to the driver as tuples (BulkInsert:
one executemany; InsertNew: ON CONFLICT DO NOTHING RETURNING, in fixed shapes),
on SQLite and PostgreSQL, read back through SQLAlchemy exactly as written
(datetimes and booleans included, which SQLite stores as text and integers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select

from lockgate.bulk_insert import BulkInsert, InsertNew
from lockgate.db import open_database
from services.ledger.app import MIGRATIONS
from services.ledger.call_log_store import CALL_COLUMNS
from services.ledger.models import CallLogRecord, UsageEntry

_LOG = CallLogRecord.__table__
_USAGE = UsageEntry.__table__


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


async def test_a_column_left_out_takes_its_default_and_one_without_is_refused(sessions):
    _engine, make_session = sessions
    start = datetime.now(UTC)
    short = call(1, start)
    del short["upstream_host"], short["duration_ms"]
    no_start = call(2, start)
    del no_start["start_time"]
    bulk = BulkInsert(_LOG, CALL_COLUMNS)
    async with make_session() as session, session.begin():
        with pytest.raises(KeyError):
            await bulk.run(session, [call(0, start), no_start])  # nothing sent
        await bulk.run(session, [short])
    async with make_session() as session:
        [stored] = (await session.execute(select(CallLogRecord))).scalars().all()
    assert (stored.request_id, stored.upstream_host, stored.duration_ms) == ("req-1", "", 0)


def usage(request_id: str, *, tokens: int = 10, **extra) -> dict:
    return {"request_id": request_id, "tenant_id": "ten_a", "input_tokens": tokens,
            "estimated": True, "streamed": False, "created_at": datetime.now(UTC), **extra}


async def test_insert_new_returns_what_was_new_and_keeps_what_was_stored(sessions):
    _engine, make_session = sessions
    columns = [c.name for c in _USAGE.columns if c.name != "id"]
    new_rows = InsertNew(_USAGE, columns, unique="request_id")
    async with make_session() as session, session.begin():
        assert await new_rows.run(session, []) == set()
        first = await new_rows.run(session, [usage(f"u{i}") for i in range(300)])
    assert first == {f"u{i}" for i in range(300)}
    # 500 rows (256 + 128 + 64 + 32 + 16 + 4): 200 new, 300 stored already (their
    # second copy, with other tokens, is not written), one new twice in the batch.
    batch = [usage(f"u{i}", tokens=99) for i in range(500)] + [usage("u499", tokens=99)]
    async with make_session() as session, session.begin():
        second = await new_rows.run(session, batch)
    assert second == {f"u{i}" for i in range(300, 500)}
    async with make_session() as session:
        stored = {u.request_id: u for u in
                  (await session.execute(select(UsageEntry))).scalars().all()}
    assert len(stored) == 500
    assert stored["u0"].input_tokens == 10 and stored["u300"].input_tokens == 99
    assert stored["u0"].estimated is True and stored["u0"].streamed is False
    assert stored["u0"].status == "ok" and stored["u0"].operation == "chat"  # defaults


def test_columns_must_be_the_table_s():
    with pytest.raises(ValueError, match="no_such_column"):
        BulkInsert(_LOG, ["request_id", "no_such_column"])
    with pytest.raises(ValueError, match="request_id must be one of the columns"):
        InsertNew(_USAGE, ["tenant_id"], unique="request_id")
