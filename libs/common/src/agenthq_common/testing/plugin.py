"""The pytest plugin every service's tests use (registered as ``agenthq``).

Session fixtures: the infrastructure URLs, a run id that namespaces every
exchange and queue (so that runs never see each other's messages), fresh
migrated databases per service, and a test token signer.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import pytest
from sqlalchemy import select

from agenthq_common.bus import Bus
from agenthq_common.db import Database
from agenthq_common.events.envelope import CloudEvent
from agenthq_common.plumbing import inbox
from agenthq_common.testing.infra import (
    Infrastructure,
    InfrastructureUnavailable,
    delete_bus_namespace,
    resolve,
)
from agenthq_common.testing.tokens import TestSigner

if TYPE_CHECKING:
    from fastapi import FastAPI

    from agenthq_common.service import Service

T = TypeVar("T")


@pytest.fixture(scope="session")
def infra() -> Iterator[Infrastructure]:
    with ExitStack() as stack:
        try:
            yield resolve(stack)
        except InfrastructureUnavailable as exc:
            pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def run_id() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
async def bus_namespace(infra: Infrastructure, run_id: str) -> AsyncIterator[str]:
    namespace = f"test-{run_id}."
    yield namespace
    await delete_bus_namespace(infra.broker_url, namespace)


class Databases:
    """Creates ``agenthq_<service>_t<run id>`` databases, migrated to head."""

    def __init__(self, infra: Infrastructure, run_id: str) -> None:
        self.infra = infra
        self.run_id = run_id
        self.created: dict[str, str] = {}

    def url(self, service: str, suffix: str = "") -> str:
        return f"{self.infra.postgres_url.rstrip('/')}/agenthq_{service}_t{self.run_id}{suffix}"

    async def fresh(self, service: str, suffix: str = "") -> str:
        from agenthq_common.migrations import create_database_if_missing, drop_database, upgrade

        key = f"{service}{suffix}"
        if key in self.created:
            return self.created[key]
        url = self.url(service, suffix)
        await drop_database(url)
        await create_database_if_missing(url)
        # Alembic runs its own event loop: keep it off ours.
        await asyncio.to_thread(upgrade, service, url)
        self.created[key] = url
        return url

    async def drop_all(self) -> None:
        from agenthq_common.migrations import drop_database

        for url in self.created.values():
            await drop_database(url)


@pytest.fixture(scope="session")
async def databases(infra: Infrastructure, run_id: str) -> AsyncIterator[Databases]:
    dbs = Databases(infra, run_id)
    yield dbs
    await dbs.drop_all()


@pytest.fixture(scope="session")
def signer() -> TestSigner:
    return TestSigner()


@pytest.fixture(scope="session")
def settings_for(infra: Infrastructure, bus_namespace: str) -> Callable[..., Any]:
    """``settings_for(TeamSettings, database_url=...)``: settings aimed at the test infra."""

    def make(cls: type[T], **overrides: Any) -> T:
        values = {
            "postgres_url": infra.postgres_url,
            "broker_url": infra.broker_url,
            "redis_url": infra.redis_url,
            "bus_namespace": bus_namespace,
            "log_json": False,
            "outbox_poll_interval": 0.5,
            # Small: a test session runs a dozen services in its own process
            # beside the end-to-end stacks' processes, within PostgreSQL's
            # default 100 connections (each service: its pool, as many again
            # on bursts, and the relay's listener and lanes).
            "db_pool_size": 2,
            "outbox_lanes": 1,
            **overrides,
        }
        return cls(**values)  # type: ignore[call-arg]

    return make


async def eventually(
    check: Callable[[], Awaitable[T]], *, within: float = 10.0, interval: float = 0.05
) -> T:
    """Poll ``check`` until it returns a truthy value (its last error is re-raised)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    last: BaseException | None = None
    while loop.time() < deadline:
        try:
            result = await check()
            if result:
                return result
            last = None
        except AssertionError as exc:
            last = exc
        await asyncio.sleep(interval)
    if last is not None:
        raise last
    raise AssertionError(f"condition not met within {within}s")


@contextlib.asynccontextmanager
async def serve_in_process(
    service: Service,
    app: FastAPI | None = None,
    *,
    client_address: tuple[str, int] = ("127.0.0.1", 50000),
    base_url: str = "http://service.test",
) -> AsyncIterator[httpx.AsyncClient]:
    """Start ``service`` (bus, consumers, relay) in this event loop and give an
    HTTP client that calls its app directly, as from ``client_address``."""
    app = app or service.create_app()
    await service.start()
    try:
        transport = httpx.ASGITransport(app=app, client=client_address)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client
    finally:
        await service.stop()


async def all_pages(
    fetch: Callable[[dict[str, Any]], Awaitable[httpx.Response]],
    params: dict[str, Any] | None = None,
    *,
    max_pages: int = 100,
) -> tuple[list[dict[str, Any]], int]:
    """Every item of a listing, following ``next_cursor``; and the number of pages.

    ``fetch(query)`` makes one request with those query parameters.
    """
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = dict(params or {})
        if cursor is not None:
            query["cursor"] = cursor
        response = await fetch(query)
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"items", "next_cursor"}
        items.extend(page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            return items, pages
        assert pages < max_pages, "pagination does not end"


@pytest.fixture(scope="session")
async def event_bus(infra: Infrastructure, bus_namespace: str) -> AsyncIterator[Bus]:
    """The tests' own connection to the run's broker namespace, to publish
    events as other services would and to watch what services publish."""
    bus = Bus(infra.broker_url, namespace=bus_namespace)
    await bus.connect()
    yield bus
    await bus.close()


async def wait_applied(
    db: Database, consumer: str, *events: CloudEvent, within: float = 20.0
) -> None:
    """Until ``consumer`` (its queue name, without namespace) has committed every
    one of ``events``: its inbox holds their ids."""
    wanted = {e.id for e in events}

    async def applied() -> bool:
        async with db.engine.connect() as conn:
            found = await conn.execute(
                select(inbox.c.event_id).where(
                    inbox.c.consumer == consumer, inbox.c.event_id.in_(wanted)
                )
            )
            return set(found.scalars()) == wanted

    await eventually(applied, within=within)
