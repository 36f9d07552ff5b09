"""Migrations that several replicas start at once (init containers), and the
database URLs operators hand out."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from agenthq_common.migrations import create_database_if_missing, drop_database
from agenthq_common.settings import ServiceSettings, asyncpg_url
from agenthq_common.testing.plugin import Databases


async def test_replicas_migrating_at_once_take_turns(databases: Databases) -> None:
    url = databases.url("team", "_race")
    await drop_database(url)
    await create_database_if_missing(url)
    try:
        # Four processes upgrade an empty database at the same instant (as the
        # init containers of four replicas would): every one succeeds, and the
        # schema is made once (they take turns on an advisory lock).
        start = time.time() + 4  # after every process has imported what it needs
        script = (
            "import time; from agenthq_common.migrations import upgrade; "
            f"time.sleep(max(0, {start} - time.time())); upgrade('team', {url!r})"
        )
        runs = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-c", script, stderr=asyncio.subprocess.PIPE
            )
            for _ in range(4)
        ]
        outcomes = [await asyncio.wait_for(run.communicate(), 120) for run in runs]
        failures = [
            err.decode()[-500:]
            for run, (_, err) in zip(runs, outcomes, strict=True)
            if run.returncode
        ]
        assert failures == []
        engine = create_async_engine(url)
        async with engine.connect() as connection:
            versions = (await connection.execute(sa.text("SELECT * FROM alembic_version"))).all()
            tables = await connection.run_sync(lambda c: sa.inspect(c).get_table_names())
        await engine.dispose()
        assert len(versions) == 1
        assert "teams" in tables
    finally:
        await drop_database(url)


def test_plain_postgresql_urls_get_the_asyncpg_driver() -> None:
    assert (
        asyncpg_url("postgresql://app:pw@db:5432/app") == "postgresql+asyncpg://app:pw@db:5432/app"
    )
    assert asyncpg_url("postgres://db/app") == "postgresql+asyncpg://db/app"
    kept = "postgresql+asyncpg://db/app"
    assert asyncpg_url(kept) == kept


def test_settings_accept_an_operators_uri(monkeypatch: Any) -> None:
    class TeamLike(ServiceSettings):
        service_name = "team"

    monkeypatch.setenv("AGENTHQ_DATABASE_URL", "postgresql://app:pw@agenthq-team-db-rw:5432/app")
    assert TeamLike().database_url == "postgresql+asyncpg://app:pw@agenthq-team-db-rw:5432/app"
    monkeypatch.delenv("AGENTHQ_DATABASE_URL")
    monkeypatch.setenv("AGENTHQ_POSTGRES_URL", "postgres://pg:5432")
    assert TeamLike().database_url == "postgresql+asyncpg://pg:5432/agenthq_team"
