"""Ledger queries. Never commits: the service owns transactions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Integer, and_, case, cast, func, literal_column, or_
from sqlalchemy import select as core_select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from lockgate.bulk_insert import InsertNew
from services.ledger.analytics import (
    DIMENSIONS,
    MAX_ROWS,
    PERCENTILES,
    UsageQuery,
    UsageRow,
    interpolate,
    rounded,
    too_many_rows,
)
from services.ledger.models import UsageEntry

_TABLE = UsageEntry.__table__
_C = _TABLE.c
#: Idempotent by request id; every column but the generated id.
_INSERT_NEW = InsertNew(_TABLE, [c.name for c in _TABLE.columns if c.name != "id"],
                        unique="request_id")

# Bucket name -> (PostgreSQL date_trunc field, SQLite strftime format). Fixed
# strings, rendered as SQL literals so SELECT and GROUP BY are the same text.
_BUCKETS = {
    "minute": ("minute", "%Y-%m-%d %H:%M:00"),
    "hour": ("hour", "%Y-%m-%d %H:00:00"),
    "day": ("day", "%Y-%m-%d 00:00:00"),
}


def bucket_expression(dialect: str, bucket: str) -> ColumnElement:
    """Start of created_at's bucket, in UTC: the one dialect switch of the analytics."""
    pg_field, sqlite_format = _BUCKETS[bucket]
    if dialect == "postgresql":
        utc = func.timezone(literal_column("'UTC'"), _C.created_at)
        return func.date_trunc(literal_column(f"'{pg_field}'"), utc)
    # SQLite stores UTC wall-clock text ("YYYY-MM-DD HH:MM:SS.ffffff").
    return func.strftime(literal_column(f"'{sqlite_format}'"), _C.created_at)


def _bucket_value(raw) -> datetime | None:
    if raw is None:
        return None
    value = raw if isinstance(raw, datetime) else datetime.fromisoformat(raw)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _dimension_value(raw) -> str:
    if isinstance(raw, bool):
        return "true" if raw else "false"
    return "" if raw is None else str(raw)


class UsageStore:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def insert_new(self, rows: Sequence[dict]) -> set[str]:
        """Insert rows whose request_id is not recorded yet; returns their request ids.

        Multi-row INSERT … ON CONFLICT (request_id) DO NOTHING RETURNING request_id
        statements of a few fixed sizes, the rows handed to the driver as tuples
        (lockgate/bulk_insert.py InsertNew)."""
        return await _INSERT_NEW.run(self.session, rows)

    async def list_recent(
        self, tenant_id: str, limit: int, before_id: int | None
    ) -> list[UsageEntry]:
        query = select(UsageEntry).where(UsageEntry.tenant_id == tenant_id)
        if before_id is not None:
            query = query.where(col(UsageEntry.id) < before_id)
        query = query.order_by(col(UsageEntry.id).desc()).limit(limit)
        return list((await self.session.exec(query)).all())

    async def last_call(self, api_id: str, api_version: str) -> datetime | None:
        """created_at of the latest entry of (api_id, api_version), any tenant; None if none.

        ORDER BY ... DESC LIMIT 1 on the (api_id, api_version, created_at) index:
        one index probe on both backends.
        """
        stmt = (
            core_select(_C.created_at)
            .where(_C.api_id == api_id, _C.api_version == api_version)
            .order_by(_C.created_at.desc())
            .limit(1)
        )
        found = (await self.session.execute(stmt)).scalar_one_or_none()
        if found is None:
            return None
        return found.replace(tzinfo=UTC) if found.tzinfo is None else found.astimezone(UTC)

    async def aggregate(self, query: UsageQuery) -> list[UsageRow]:
        """Counts and sums per (bucket, dimensions) of one tenant; percentiles included."""
        dialect = self.session.bind.dialect.name
        keys = self._keys(query, dialect)
        where = self._where(query)
        is_error = case((_C.status != "ok", 1), else_=0)
        measures = [
            func.count().label("requests"),
            func.sum(is_error).label("errors"),
            func.sum(_C.input_tokens).label("input_tokens"),
            func.sum(_C.output_tokens).label("output_tokens"),
            (func.sum(_C.input_tokens) + func.sum(_C.output_tokens)).label("total_tokens"),
            func.sum(_C.cached_input_tokens).label("cached_input_tokens"),
            func.sum(case((_C.estimated, 1), else_=0)).label("estimated_requests"),
            func.sum(case((_C.cache_hit, 1), else_=0)).label("cache_hits"),
            func.sum(_C.cost_micro_usd).label("cost"),
            func.sum(
                case((and_(_C.price_source == "", _C.cache_hit.is_(False)), 1), else_=0)
            ).label("unpriced_requests"),
        ]
        if dialect == "postgresql":
            measures += [
                func.percentile_cont(p).within_group(_C.latency_ms).label(f"lat_{i}")
                for i, p in enumerate(PERCENTILES)
            ]
            # percentile_cont skips NULLs: entries without a first token (0) do not count.
            measures.append(
                func.percentile_cont(0.5).within_group(func.nullif(_C.ttft_ms, 0)).label("ttft")
            )
        by_name = {m.name: m for m in measures}
        order = [by_name[query.order_by].desc()] if query.order_by else []
        limit = query.limit or MAX_ROWS + 1
        stmt = (
            core_select(*keys, *measures)
            .where(where)
            .group_by(*keys)
            .order_by(*order, *keys)
            .limit(limit)
        )
        fetched = (await self.session.execute(stmt)).mappings().all()
        if not query.limit and len(fetched) > MAX_ROWS:
            raise too_many_rows()
        names = [k.name for k in keys]
        rows: dict[tuple, UsageRow] = {}
        for r in fetched:
            if not r["requests"]:
                continue  # no GROUP BY keys: an empty range still yields one row
            row = UsageRow(
                bucket_start=_bucket_value(r["bucket"]) if query.bucket else None,
                group={d: _dimension_value(r[f"d_{d}"]) for d in query.group_by},
                requests=int(r["requests"]),
                errors=int(r["errors"] or 0),
                input_tokens=int(r["input_tokens"] or 0),
                output_tokens=int(r["output_tokens"] or 0),
                cached_input_tokens=int(r["cached_input_tokens"] or 0),
                estimated_requests=int(r["estimated_requests"] or 0),
                cache_hits=int(r["cache_hits"] or 0),
                cost_micro_usd=int(r["cost"] or 0),
                unpriced_requests=int(r["unpriced_requests"] or 0),
            )
            if dialect == "postgresql":
                row.latency_ms = {p: rounded(r[f"lat_{i}"]) for i, p in enumerate(PERCENTILES)}
                row.ttft_p50_ms = rounded(r["ttft"])
            rows[tuple(r[n] for n in names)] = row
        if dialect != "postgresql" and rows:
            latency = await self._ranked_percentiles(query, dialect, _C.latency_ms, PERCENTILES)
            ttft = await self._ranked_percentiles(
                query, dialect, _C.ttft_ms, (0.5,), _C.ttft_ms > 0
            )
            for key, row in rows.items():
                row.latency_ms = {p: rounded(v) for p, v in latency.get(key, {}).items()}
                row.ttft_p50_ms = rounded(ttft.get(key, {}).get(0.5))
        return list(rows.values())

    @staticmethod
    def _keys(query: UsageQuery, dialect: str) -> list:
        keys = []
        if query.bucket:
            keys.append(bucket_expression(dialect, query.bucket).label("bucket"))
        for name in query.group_by:
            assert name in DIMENSIONS  # checked by usage_query; never a caller's string
            keys.append(_C[name].label(f"d_{name}"))
        return keys

    @staticmethod
    def _where(query: UsageQuery):
        return and_(
            _C.tenant_id == query.tenant_id,
            _C.created_at >= query.start,
            _C.created_at < query.end,
        )

    async def _ranked_percentiles(
        self, query: UsageQuery, dialect: str, value, percentiles, extra=None
    ) -> dict[tuple, dict[float, float]]:
        """Percentiles without percentile_cont: rank values per group with window
        functions, fetch only the ranks around each p * (n - 1), interpolate."""
        keys = self._keys(query, dialect)
        partition = keys or None
        where = self._where(query) if extra is None else and_(self._where(query), extra)
        ranked = (
            core_select(
                *keys,
                value.label("v"),
                (func.row_number().over(partition_by=partition, order_by=value) - 1).label("rn"),
                func.count().over(partition_by=partition).label("n"),
            )
            .where(where)
            .subquery()
        )
        wanted = []
        for p in percentiles:
            low = cast(p * (ranked.c.n - 1), Integer)  # floor: the position is never negative
            wanted += [ranked.c.rn == low, ranked.c.rn == low + 1]
        stmt = core_select(ranked).where(or_(*wanted))
        found: dict[tuple, tuple[int, dict[int, float]]] = {}
        for r in (await self.session.execute(stmt)).mappings():
            key = tuple(r[k.name] for k in keys)
            n, values = found.setdefault(key, (int(r["n"]), {}))
            values[int(r["rn"])] = float(r["v"])
        return {
            key: {p: interpolate(values, n, p) for p in percentiles}
            for key, (n, values) in found.items()
        }
