"""Database plumbing: async engines (SQLite by default, PostgreSQL by URL),
sessions, and Alembic migrations run at service start.

Each service owns its tables and its Alembic script folder
(services/<svc>/migrations) with its own version table, so services can share
one PostgreSQL database or use one SQLite file each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

_Row = TypeVar("_Row")
#: The row counts of every multi-row INSERT Lockgate sends (see in_fixed_shapes).
INSERT_SHAPES = (256, 128, 64, 32, 16, 8, 4, 2, 1)


def in_fixed_shapes(rows: Sequence[_Row]) -> Iterator[Sequence[_Row]]:
    """`rows` in consecutive chunks whose sizes are all in INSERT_SHAPES (the
    binary digits of the count, largest first: 500 rows go as 256 + 128 + 64 +
    32 + 16 + 4).

    Bulk inserts of a variable number of rows become multi-row INSERTs
    (SQLAlchemy's "insertmanyvalues"), and every distinct row count is a
    different SQL text, which the driver prepares and keeps in its per-connection
    statement cache (sqlite3's, asyncpg's). Batches of every size from 1 to 500
    filled those caches with hundreds of large statements: the ledger grew by
    about 3 KB per call, without bound in practice. With nine shapes per table
    the statements stay few, small, cached and reused."""
    start, left = 0, len(rows)
    for size in INSERT_SHAPES:
        while left >= size:
            yield rows[start:start + size]
            start, left = start + size, left - size


def _ensure_sqlite_folder(url: str) -> None:
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)


def make_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        _ensure_sqlite_folder(url)
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # WAL: readers never block the writer
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def _alembic_config(url: str, script_location: Path, version_table: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.attributes["url"] = url
    cfg.attributes["version_table"] = version_table
    return cfg


def _upgrade(url: str, script_location: Path, version_table: str) -> None:
    command.upgrade(_alembic_config(url, script_location, version_table), "head")


async def migrate(url: str, script_location: Path, version_table: str) -> None:
    """Bring the schema to head. Runs in a thread: Alembic's env starts its own loop."""
    _ensure_sqlite_folder(url)
    await asyncio.to_thread(_upgrade, url, script_location, version_table)


async def open_database(
    url: str, script_location: Path, version_table: str
) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
    """Migrate to head, then an engine and its session factory."""
    await migrate(url, script_location, version_table)
    engine = make_engine(url)
    return engine, session_factory(engine)


def run_alembic_env() -> None:
    """The body of every service's migrations/env.py (online mode, async engine)."""
    from alembic import context

    url = context.config.attributes["url"]
    version_table = context.config.attributes["version_table"]

    def do_run(connection) -> None:
        context.configure(connection=connection, version_table=version_table)
        with context.begin_transaction():
            context.run_migrations()

    async def main() -> None:
        engine = create_async_engine(url)
        async with engine.connect() as conn:
            await conn.run_sync(do_run)
            await conn.commit()
        await engine.dispose()

    asyncio.run(main())
