"""What every one of the six services does alike: health, readiness, metrics,
errors in the contract's shape, request ids, migrations up and down."""

from __future__ import annotations

import asyncio
import importlib
from typing import Any

import pytest
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from agenthq_common.migrations import alembic_config, create_database_if_missing, drop_database
from agenthq_common.service import Service
from agenthq_common.testing.plugin import Databases, serve_in_process
from agenthq_devctl.services import SERVICES, settings_class


def build(service: str, settings: Any, signer: Any) -> tuple[Service, Any]:
    main = importlib.import_module(f"agenthq_{service}.main")
    if service == "gateway":
        svc, context = main.bootstrap(settings)
        app = svc.create_app()
        app.state.gateway = context
        return svc, app
    svc = main.bootstrap(settings, key_source=signer.keys)
    return svc, svc.create_app()


@pytest.mark.parametrize("service", SERVICES)
async def test_health_readiness_metrics_and_errors(
    service: str, databases: Databases, settings_for: Any, signer: Any
) -> None:
    url = await databases.fresh(service)
    svc, app = build(service, settings_for(settings_class(service), database_url=url), signer)
    async with serve_in_process(svc, app) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "broker": "ok", "redis": "ok"}
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        assert "agenthq_http_requests_total" in metrics.text
        missing = await client.get("/no-such-route", headers={"X-Request-ID": "abc-123"})
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] in ("not_found", "route_not_found")
        assert missing.headers["x-request-id"] == "abc-123"


@pytest.mark.parametrize("service", [s for s in SERVICES if s != "gateway"])
async def test_not_ready_without_its_database(service: str, settings_for: Any, signer: Any) -> None:
    """A missing database makes a service not ready (503), not dead."""
    settings = settings_for(
        settings_class(service),
        database_url="postgresql+asyncpg://postgres@127.0.0.1:5432/agenthq_no_such_database",
    )
    svc, app = build(service, settings, signer)
    async with serve_in_process(svc, app) as client:
        down = await client.get("/readyz")
        assert down.status_code == 503
        assert down.headers["retry-after"]
        assert down.json()["checks"]["database"].startswith("down")
        assert down.json()["checks"]["broker"] == "ok"
        assert (await client.get("/healthz")).status_code == 200


@pytest.mark.parametrize("service", SERVICES)
async def test_migrations_go_down_to_base_and_up_again(service: str, databases: Databases) -> None:
    from alembic import command

    url = databases.url(service, "_updown")
    await drop_database(url)
    await create_database_if_missing(url)
    try:
        cfg = alembic_config(service, url)
        await asyncio.to_thread(command.upgrade, cfg, "head")
        tables_at_head = await _tables(url)
        assert {"outbox", "inbox", "alembic_version"} <= tables_at_head
        await asyncio.to_thread(command.downgrade, cfg, "base")
        assert await _tables(url) == {"alembic_version"}
        await asyncio.to_thread(command.upgrade, cfg, "head")
        assert await _tables(url) == tables_at_head
    finally:
        await drop_database(url)


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()
