"""The outbox relay: moves committed outbox rows to RabbitMQ.

It is woken by the NOTIFY that a unit of work sends in the same transaction as
its outbox rows (so the wake-up arrives exactly when the rows become visible),
and polls as a fallback for a lost listener connection. Rows are claimed with
``FOR UPDATE SKIP LOCKED`` inside a transaction that stays open while the batch
is published, so any number of relays can run against one database and each
row goes out through one of them; a relay that dies mid-batch releases its
locks with its connection and another one publishes the rows again (at least
once: the consumers' inboxes make that harmless).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import asyncpg
from sqlalchemy import text

from agenthq_common.bus import Bus
from agenthq_common.db import Database
from agenthq_common.logging import get_logger
from agenthq_common.metrics import OUTBOX_FAILED, OUTBOX_PUBLISHED
from agenthq_common.plumbing import notify_channel

log = get_logger(__name__)

_CLAIM = text(
    "SELECT seq, event_id::text, event_type, payload::text FROM outbox "
    "WHERE published_at IS NULL ORDER BY seq LIMIT :limit FOR UPDATE SKIP LOCKED"
)
_MARK_SENT = text("UPDATE outbox SET published_at = now() WHERE seq = ANY(:seqs)")
_MARK_FAILED = text(
    "UPDATE outbox SET attempts = attempts + 1, last_error = :error WHERE seq = ANY(:seqs)"
)
_PURGE = text("DELETE FROM outbox WHERE published_at < now() - make_interval(secs => :secs)")


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
    ) -> None:
        self.db = db
        self.bus = bus
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.keep_published = keep_published
        self._wake = asyncio.Event()
        self._listener: asyncpg.Connection | None = None

    def wake(self) -> None:
        self._wake.set()

    async def relay_once(self) -> int:
        """Publish one batch of unpublished rows; returns how many were claimed."""
        async with self.db.engine.begin() as conn:
            rows = (await conn.execute(_CLAIM, {"limit": self.batch_size})).all()
            if not rows:
                return 0
            results = await self.bus.publish_many(
                [(r.event_type, r.payload.encode(), r.event_id) for r in rows]
            )
            sent = [r.seq for r, err in zip(rows, results, strict=True) if err is None]
            failed = [(r.seq, err) for r, err in zip(rows, results, strict=True) if err is not None]
            if sent:
                await conn.execute(_MARK_SENT, {"seqs": sent})
            if failed:
                await conn.execute(
                    _MARK_FAILED,
                    {"seqs": [s for s, _ in failed], "error": repr(failed[0][1])[:500]},
                )
        OUTBOX_PUBLISHED.inc(len(sent))
        if failed:
            OUTBOX_FAILED.inc(len(failed))
            log.warning("outbox publish failed", failed=len(failed), error=repr(failed[0][1]))
        return len(rows)

    async def run(self) -> None:
        """Relay until cancelled."""
        listen = asyncio.create_task(self._listen_forever(), name="outbox-listen")
        purge_every = 60.0
        loop = asyncio.get_running_loop()
        next_purge = loop.time() + purge_every
        try:
            while True:
                self._wake.clear()
                try:
                    claimed = await self.relay_once()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("outbox relay pass failed", error=repr(exc))
                    claimed = 0
                    await asyncio.sleep(self.poll_interval)
                if claimed >= self.batch_size:
                    continue  # more is waiting: do not sleep
                if loop.time() >= next_purge:
                    next_purge = loop.time() + purge_every
                    await self._purge()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval)
        finally:
            listen.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listen
            await self._close_listener()

    async def _purge(self) -> None:
        try:
            async with self.db.engine.begin() as conn:
                await conn.execute(_PURGE, {"secs": self.keep_published.total_seconds()})
        except Exception as exc:
            log.warning("outbox purge failed", error=repr(exc))

    async def _listen_forever(self) -> None:
        channel = notify_channel(self.db.service)
        while True:
            lost = asyncio.Event()
            try:
                self._listener = await asyncpg.connect(asyncpg_dsn(self.db.url))
                self._listener.add_termination_listener(lambda *_, lost=lost: lost.set())
                await self._listener.add_listener(channel, lambda *_: self._wake.set())
                # Rows committed while we were not listening would otherwise wait a poll.
                self._wake.set()
                await lost.wait()
                log.warning("outbox listener connection closed, reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox listener lost, polling meanwhile", error=repr(exc))
            await self._close_listener()
            await asyncio.sleep(self.poll_interval)

    async def _close_listener(self) -> None:
        if self._listener is not None and not self._listener.is_closed():
            with contextlib.suppress(Exception):
                await self._listener.close(timeout=2)
        self._listener = None
