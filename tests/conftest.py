"""Shared fixtures: databases (SQLite and PostgreSQL), free ports."""

from __future__ import annotations

import os
import secrets

import asyncpg
import pytest
from hypothesis import settings

from lockgate.stack.ephemeral import free_ports

# Property tests are derandomized so `make test` gives the same verdict on every
# run (CI must not fail on a rare draw it never saw before); run with
# HYPOTHESIS_PROFILE=explore to search new examples while developing.
settings.register_profile("lockgate", derandomize=True, database=None)
settings.register_profile("explore", database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "lockgate"))

PG_URL = os.environ.get("LOCKGATE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    return free_ports(1)[0]


async def _create_pg_database() -> tuple[str, str]:
    name = f"lockgate_t_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name, PG_URL.rsplit("/", 1)[0] + f"/{name}"


async def _drop_pg_database(name: str) -> None:
    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request, tmp_path):
    """A fresh, empty database: a SQLite file, or a throwaway PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
        return
    name, url = await _create_pg_database()
    try:
        yield url.replace("postgresql://", "postgresql+asyncpg://", 1)
    finally:
        await _drop_pg_database(name)
