from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table
from sqlalchemy.dialects.postgresql import UUID

from agenthq_common.bus import Bus
from agenthq_common.db import Database
from agenthq_common.migrations import create_database_if_missing, drop_database
from agenthq_common.plumbing import plumbing_metadata
from agenthq_common.testing.infra import Infrastructure

test_metadata = MetaData()
# What the test consumers "do": one row per applied event, so a second
# application of the same event shows up as a second row.
effects = Table(
    "effects",
    test_metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("event_id", UUID(as_uuid=True), nullable=False),
    Column("consumer", String(100), nullable=False),
)


@pytest.fixture(scope="session")
async def common_db(infra: Infrastructure, run_id: str) -> AsyncIterator[Database]:
    url = f"{infra.postgres_url.rstrip('/')}/agenthq_common_t{run_id}"
    await drop_database(url)
    await create_database_if_missing(url)
    db = Database(url, service="commontest")
    async with db.engine.begin() as conn:
        await conn.run_sync(plumbing_metadata.create_all)
        await conn.run_sync(test_metadata.create_all)
    yield db
    await db.dispose()
    await drop_database(url)


@pytest.fixture(params=["classic", "quorum"])
async def bus(
    infra: Infrastructure, bus_namespace: str, request: pytest.FixtureRequest
) -> AsyncIterator[Bus]:
    """The bus, once with classic queues (the local default) and once with
    quorum queues (a cluster's): every test that takes it runs against both."""
    bus = Bus(
        infra.broker_url,
        namespace=bus_namespace,
        max_retries=2,
        retry_base_ms=50,
        queue_type=request.param,
    )
    await bus.connect()
    yield bus
    await bus.close()
