"""Bulk inserts of the ledger's per-call rows, handed to the driver as tuples.

The ledger writes a row per governed call twice over (its usage entry, and
Envoy's access log entry in the call log), in batches of up to 500. Through
SQLAlchemy each row became a parameter dict run through its generic bind
machinery, which cost the ledger's event loop more than the database took
(docs/performance.md, "Batch scheduling and a lean ledger"). Here each
statement is rendered once per dialect (and row count), each row becomes a
tuple in column order, and only the columns whose type the driver cannot take
as is (datetimes and booleans on SQLite) are converted, with SQLAlchemy's own
converters, so what is stored reads back through SQLAlchemy unchanged.

- `BulkInsert`: a plain INSERT run by the driver's executemany on one
  prepared statement (the call log).
- `InsertNew`: INSERT … ON CONFLICT (unique) DO NOTHING RETURNING unique, as
  multi-row VALUES statements of the fixed row counts of lockgate/db.py
  `in_fixed_shapes` (so the drivers' statement caches stay small): returns
  which rows were new (usage entries, recorded idempotently).

A column a row leaves out takes the column's scalar default; one with no
default is a KeyError before anything is sent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Dialect
from sqlmodel.ext.asyncio.session import AsyncSession

from lockgate.db import in_fixed_shapes

_Convert = Callable[[Any], Any] | None


class _Rows:
    """Rows as tuples in column order, converted for a dialect's driver."""

    def __init__(self, table: Table, columns: Sequence[str]):
        unknown = [name for name in columns if name not in table.c]
        if unknown:
            raise ValueError(f"{table.name} has no columns {unknown}")
        self.table = table
        self.columns = tuple(columns)
        #: column -> its scalar default, for rows that leave it out.
        self.defaults = {
            name: table.c[name].default.arg for name in self.columns
            if table.c[name].default is not None and table.c[name].default.is_scalar
        }
        self._converters: dict[str, tuple[_Convert, ...]] = {}
        if len(self.columns) == 1:
            only = self.columns[0]
            self._take: Callable[[Mapping[str, Any]], tuple] = lambda row: (row[only],)
        else:
            self._take = itemgetter(*self.columns)

    def converters(self, dialect: Dialect) -> tuple[_Convert, ...]:
        found = self._converters.get(dialect.name)
        if found is None:
            found = self._converters[dialect.name] = tuple(
                self.table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
                for name in self.columns
            )
        return found

    def tuples(self, rows: Sequence[Mapping[str, Any]], dialect: Dialect) -> list[tuple]:
        # The usual row holds every column: one C-level itemgetter call, then the
        # few conversions the driver needs, by position.
        converting = [(i, convert) for i, convert in enumerate(self.converters(dialect))
                      if convert is not None]
        take, out = self._take, []
        for row in rows:
            try:
                values = take(row)
            except KeyError:
                values = self._with_defaults(row)
            if converting:
                values = list(values)
                for i, convert in converting:
                    values[i] = convert(values[i])
                values = tuple(values)
            out.append(values)
        return out

    def _with_defaults(self, row: Mapping[str, Any]) -> tuple:
        """A row that leaves columns out; KeyError names one that has no default."""
        return tuple(row[name] if name in row else self.defaults[name] for name in self.columns)

    def insert_sql(self, dialect: Dialect, rows: int) -> str:
        """`INSERT INTO t (a, b) VALUES (?, ?), (?, ?)` (or `($1, $2), ($3, $4)`):
        `rows` rows of the columns, in the dialect's positional style."""
        width = len(self.columns)
        if dialect.paramstyle == "qmark":
            values = ", ".join(["(" + ", ".join("?" * width) + ")"] * rows)
        elif dialect.paramstyle == "numeric_dollar":
            values = ", ".join(
                "(" + ", ".join(f"${r * width + c + 1}" for c in range(width)) + ")"
                for r in range(rows)
            )
        else:  # Lockgate's drivers: sqlite3 (qmark) and asyncpg (numeric_dollar)
            raise RuntimeError(f"{dialect.name}: no bulk insert for {dialect.paramstyle}")
        quote = dialect.identifier_preparer.quote
        return (f"INSERT INTO {quote(self.table.name)} "
                f"({', '.join(quote(c) for c in self.columns)}) VALUES {values}")


class BulkInsert(_Rows):
    """A plain INSERT of many rows in one executemany of one prepared statement."""

    def __init__(self, table: Table, columns: Sequence[str]):
        super().__init__(table, columns)
        self._sql: dict[str, str] = {}

    async def run(self, session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert `rows` in the session's transaction."""
        if not rows:
            return
        connection = await session.connection()
        dialect = connection.dialect
        sql = self._sql.get(dialect.name)
        if sql is None:
            sql = self._sql[dialect.name] = self.insert_sql(dialect, 1)
        await connection.exec_driver_sql(sql, self.tuples(rows, dialect))


class InsertNew(_Rows):
    """Many rows inserted unless their `unique` value is stored already."""

    def __init__(self, table: Table, columns: Sequence[str], unique: str):
        if unique not in columns:
            raise ValueError(f"{unique} must be one of the columns inserted")
        super().__init__(table, columns)
        self.unique = unique
        self._sql: dict[tuple[str, int], str] = {}

    def sql(self, dialect: Dialect, rows: int) -> str:
        found = self._sql.get((dialect.name, rows))
        if found is None:
            unique = dialect.identifier_preparer.quote(self.unique)
            found = self._sql[(dialect.name, rows)] = (
                f"{self.insert_sql(dialect, rows)} ON CONFLICT ({unique}) DO NOTHING"
                f" RETURNING {unique}"
            )
        return found

    async def run(self, session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> set:
        """Insert `rows` in the session's transaction; the `unique` values inserted
        (a value already stored, or twice in `rows`, is inserted once or not at all)."""
        if not rows:
            return set()
        connection = await session.connection()
        dialect = connection.dialect
        values = self.tuples(rows, dialect)
        inserted: set = set()
        for chunk in in_fixed_shapes(values):
            params = tuple(chain.from_iterable(chunk))
            result = await connection.exec_driver_sql(self.sql(dialect, len(chunk)), params)
            inserted.update(row[0] for row in result.all())
        return inserted
