"""The outbox relay: moves committed outbox rows to RabbitMQ.

It is woken by the NOTIFY that the outbox trigger sends when a transaction
with outbox rows commits (so the wake-up arrives exactly when the rows become
visible), and polls as a fallback for a lost listener connection. Rows are
claimed with ``FOR UPDATE SKIP LOCKED`` inside a transaction that stays open
while the batch is published, so any number of relays can run against one
database and each row goes out through one of them; a relay that dies
mid-batch releases its locks with its connection and another one publishes
the rows again (at least once: the consumers' inboxes make that harmless).

The relay talks to PostgreSQL over two connections of its own (one listens,
one claims) with plain asyncpg: it is the hot path of every event, and it
needs neither the ORM nor the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import asyncpg

from agenthq_common.bus import Bus
from agenthq_common.db import Database
from agenthq_common.logging import get_logger
from agenthq_common.metrics import OUTBOX_FAILED, OUTBOX_PUBLISHED
from agenthq_common.plumbing import OUTBOX_CHANNEL

log = get_logger(__name__)

_CLAIM = (
    "SELECT seq, event_id::text, event_type, payload::text, payload->>'traceparent' AS tp "
    "FROM outbox "
    "WHERE published_at IS NULL ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED"
)
_MARK_SENT = "UPDATE outbox SET published_at = now() WHERE seq = ANY($1::bigint[])"
_MARK_FAILED = (
    "UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE seq = ANY($1::bigint[])"
)
_PURGE = "DELETE FROM outbox WHERE published_at < now() - make_interval(secs => $1)"


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+asyncpg://", "postgresql://", 1)


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        bus: Bus,
        *,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        keep_published: timedelta = timedelta(days=1),
        lanes: int = 2,
    ) -> None:
        self.dsn = asyncpg_dsn(db.url)
        self.bus = bus
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.keep_published = keep_published
        self._wake = asyncio.Event()
        self.lanes = lanes
        self._listener: asyncpg.Connection | None = None
        self._conns: dict[int, asyncpg.Connection] = {}

    def wake(self) -> None:
        self._wake.set()

    async def _connection(self, lane: int = 0) -> asyncpg.Connection:
        conn = self._conns.get(lane)
        if conn is None or conn.is_closed():
            # Losing a commit of the relay in a crash only means publishing its
            # rows again, which consumers tolerate: no need to wait for the disk.
            conn = await asyncpg.connect(self.dsn, server_settings={"synchronous_commit": "off"})
            self._conns[lane] = conn
        return conn

    async def relay_once(self, lane: int = 0) -> int:
        """Publish one batch of unpublished rows; returns how many were claimed."""
        conn = await self._connection(lane)
        try:
            async with conn.transaction():
                rows = await conn.fetch(_CLAIM, self.batch_size)
                if not rows:
                    return 0
                results = await self.bus.publish_many(
                    [(r["event_type"], r["payload"].encode(), r["event_id"], r["tp"]) for r in rows]
                )
                sent = [r["seq"] for r, err in zip(rows, results, strict=True) if err is None]
                failed = [
                    (r["seq"], err) for r, err in zip(rows, results, strict=True) if err is not None
                ]
                if sent:
                    await conn.execute(_MARK_SENT, sent)
                if failed:
                    await conn.execute(
                        _MARK_FAILED, [s for s, _ in failed], repr(failed[0][1])[:500]
                    )
        except (asyncpg.PostgresConnectionError, OSError):
            await self._close(self._conns.pop(lane, None))
            raise
        OUTBOX_PUBLISHED.inc(len(sent))
        if failed:
            OUTBOX_FAILED.inc(len(failed))
            log.warning("outbox publish failed", failed=len(failed), error=repr(failed[0][1]))
        return len(rows)

    async def run(self) -> None:
        """Relay until cancelled.

        ``lanes`` passes run at once, each on its own connection: while one
        waits for the broker's confirms, another already claims what was
        committed meanwhile (``SKIP LOCKED`` keeps their rows apart), so an
        event never waits for a whole pass that started before it.
        """
        listen = asyncio.create_task(self._listen_forever(), name="outbox-listen")
        lanes = [
            asyncio.create_task(self._lane(n), name=f"outbox-lane-{n}") for n in range(self.lanes)
        ]
        try:
            await asyncio.gather(*lanes)
        finally:
            for task in (listen, *lanes):
                task.cancel()
            for task in (listen, *lanes):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._close(self._listener)
            self._listener = None
            for lane in list(self._conns):
                await self._close(self._conns.pop(lane))

    async def _lane(self, lane: int) -> None:
        purge_every = 60.0
        loop = asyncio.get_running_loop()
        next_purge = loop.time() + purge_every
        while True:
            self._wake.clear()
            try:
                claimed = await self.relay_once(lane)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox relay pass failed", error=repr(exc))
                claimed = 0
                await asyncio.sleep(self.poll_interval)
            if claimed >= self.batch_size:
                continue  # more is waiting: do not sleep
            if lane == 0 and loop.time() >= next_purge:
                next_purge = loop.time() + purge_every
                await self._purge()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)

    async def _purge(self) -> None:
        try:
            conn = await self._connection(0)
            await conn.execute(_PURGE, self.keep_published.total_seconds())
        except Exception as exc:
            log.warning("outbox purge failed", error=repr(exc))

    async def _listen_forever(self) -> None:
        while True:
            lost = asyncio.Event()
            try:
                self._listener = await asyncpg.connect(self.dsn)
                self._listener.add_termination_listener(lambda *_, lost=lost: lost.set())
                await self._listener.add_listener(OUTBOX_CHANNEL, lambda *_: self._wake.set())
                # Rows committed while we were not listening would otherwise wait a poll.
                self._wake.set()
                await lost.wait()
                log.warning("outbox listener connection closed, reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox listener lost, polling meanwhile", error=repr(exc))
            await self._close(self._listener)
            self._listener = None
            await asyncio.sleep(self.poll_interval)

    @staticmethod
    async def _close(conn: asyncpg.Connection | None) -> None:
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)
