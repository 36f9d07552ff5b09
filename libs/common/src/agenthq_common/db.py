"""Database access: one async engine per service and the unit of work.

A unit of work is one transaction. Domain code changes rows and calls
``uow.publish(event)``; the events are written to the outbox in the same
transaction at commit, so the change and its events become visible together
or not at all. Services never commit: whoever opened the unit of work (a
request, a consumer) does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

if TYPE_CHECKING:
    from agenthq_common.events.envelope import CloudEvent


class Database:
    def __init__(
        self,
        url: str,
        *,
        service: str,
        pool_size: int = 10,
        server_settings: dict[str, str] | None = None,
    ) -> None:
        """``server_settings``: PostgreSQL settings of every connection (e.g.
        ``plan_cache_mode``)."""
        self.url = url
        self.service = service
        # No pre-ping: it costs a round trip on every checkout. A connection that
        # died is refreshed after its first error, and recycled hourly anyway.
        self.engine: AsyncEngine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_recycle=3600,
            connect_args={"server_settings": server_settings} if server_settings else {},
        )
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[UnitOfWork]:
        """Commit when the block ends normally, roll back when it raises."""
        async with self.sessionmaker() as session:
            uow = UnitOfWork(session)
            try:
                yield uow
            except BaseException:
                await uow.rollback()
                raise
            else:
                await uow.commit()

    @asynccontextmanager
    async def driver_connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled asyncpg connection of its own, outside any unit of work: for
        long reads that pick their own transaction (exports, verifications)
        and for DDL that must not run inside a caller's transaction."""
        async with self.engine.connect() as connection:
            raw = await connection.get_raw_connection()
            conn: asyncpg.Connection = raw.driver_connection  # type: ignore[assignment]
            try:
                yield conn
            finally:
                if conn.is_in_transaction():
                    # The block was cancelled (a client that left in the middle of
                    # a streamed answer) before its ROLLBACK could run, and no await
                    # can run here any more. SQLAlchemy did not open that
                    # transaction, so it would pool the connection inside it: close
                    # it now, and have the pool replace it at its next checkout.
                    conn.terminate()
                    raw.invalidate(soft=True)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


# One statement for any number of events, compiled once (a cached text()).
_INSERT_OUTBOX = text(
    "INSERT INTO outbox (event_id, event_type, payload) "
    "SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:types AS text[]), "
    "CAST(:payloads AS jsonb[])) "
    # An id already in the outbox is that very event again (a producer that
    # derives ids to publish something exactly once, retrying): not twice.
    "ON CONFLICT (event_id) DO NOTHING"
)


async def driver_connection(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under ``session`` (same connection, same transaction).

    For the few hot-path reads where SQLAlchemy's per-statement work costs
    more than the query itself (the permission check of every request).
    """
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    # SQLAlchemy's asyncpg adapter sends BEGIN lazily, with its first statement
    # of the session. Used first, the driver would run in autocommit: locks
    # taken here would be released at once, and a rollback would undo nothing.
    adapted = raw.dbapi_connection
    if getattr(adapted, "_transaction", True) is None:
        await adapted._start_transaction()  # type: ignore[union-attr]
    return raw.driver_connection  # type: ignore[return-value]


class UnitOfWork:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._pending: list[CloudEvent] = []
        self._done = False

    def publish(self, event: CloudEvent) -> None:
        """Publish ``event`` if and when this unit of work commits."""
        self._pending.append(event)

    @property
    def pending_events(self) -> list[CloudEvent]:
        return list(self._pending)

    async def flush_events(self) -> None:
        """Write pending events to the outbox (inside the open transaction)."""
        if not self._pending:
            return
        # A trigger on the outbox NOTIFYs the relay when this transaction commits.
        await self.session.execute(
            _INSERT_OUTBOX,
            {
                "ids": [e.id for e in self._pending],
                "types": [e.type for e in self._pending],
                "payloads": [e.model_dump_json(exclude_none=True) for e in self._pending],
            },
        )
        self._pending.clear()

    async def commit(self) -> None:
        if self._done:
            return
        await self.flush_events()
        await self.session.commit()
        self._done = True

    async def rollback(self) -> None:
        self._pending.clear()
        if not self._done:
            await self.session.rollback()
            self._done = True
