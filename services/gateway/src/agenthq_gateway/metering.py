"""Counting API calls for the usage service.

Every request the gateway forwards to a service is counted in Redis, per team
(``/v1/teams/{team_id}/...`` answered by the service) or per user (anything
else, including requests that named a team the caller could not reach: an
outsider must not run up another team's bill). Counters live in 10-second
windows shared by every gateway replica; a flusher (one replica at a time)
turns each closed window into ``api.calls`` events through the outbox.

Exactly once: an event's id is derived from its window and its team or user,
and a window is deleted from Redis only after its events are committed. A
flusher that dies in between flushes the window again with the same ids: the
outbox ignores an id it holds, and the usage service counts an id once, ever.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from agenthq_common.db import Database
from agenthq_common.events import Actor, registry
from agenthq_common.logging import get_logger

log = get_logger(__name__)

WINDOW_SECONDS = 10
# Namespace of the derived event ids (uuid5), fixed forever.
_IDS = uuid.UUID("6f1d7c51-8f3e-4f4e-9a55-0c2b1e0f4a11")
SOURCE = "agenthq/gateway"


def _window(at: float) -> int:
    return int(at // WINDOW_SECONDS)


class ApiCallMeter:
    def __init__(self, redis: aioredis.Redis, db: Database, *, prefix: str = "") -> None:
        self.redis = redis
        self.db = db
        self.prefix = f"{prefix}gateway:api-calls"

    def _key(self, window: int) -> str:
        return f"{self.prefix}:{window}"

    async def record(self, team_id: uuid.UUID | None, user_id: uuid.UUID) -> None:
        """Count one call, in the window of this very moment (so a flushed
        window never gets a late increment)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            self.record_in(pipe, team_id, user_id)
            await pipe.execute()

    def record_in(self, pipe: Pipeline, team_id: uuid.UUID | None, user_id: uuid.UUID) -> None:
        """``record``, as commands of the caller's pipeline (one round trip
        with whatever else the request writes to Redis)."""
        window = _window(time.time())
        field = f"t:{team_id}" if team_id is not None else f"u:{user_id}"
        pipe.hincrby(self._key(window), field, 1)
        pipe.expire(self._key(window), 7 * 86_400)  # a safety net, not the flush
        pipe.zadd(f"{self.prefix}:windows", {str(window): window})

    async def flush(self, now: float | None = None) -> int:
        """Publish every closed window; returns the number of events written."""
        now = time.time() if now is None else now
        lock = f"{self.prefix}:flush-lock"
        token = uuid.uuid4().hex
        if not await self.redis.set(lock, token, nx=True, px=60_000):
            return 0  # another replica is flushing
        written = 0
        try:
            closed = await self.redis.zrangebyscore(
                f"{self.prefix}:windows", "-inf", _window(now) - 1
            )
            for raw in closed:
                window = int(raw)
                counts = await self.redis.hgetall(self._key(window))
                if counts:
                    written += await self._publish(window, counts)
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.delete(self._key(window))
                    pipe.zrem(f"{self.prefix}:windows", raw)
                    await pipe.execute()
        finally:
            if await self.redis.get(lock) == token.encode():
                await self.redis.delete(lock)
        return written

    async def _publish(self, window: int, counts: dict[bytes, bytes]) -> int:
        at = datetime.fromtimestamp(window * WINDOW_SECONDS, UTC)
        async with self.db.unit_of_work() as uow:
            for raw_field, raw_count in sorted(counts.items()):
                field, count = raw_field.decode(), int(raw_count)
                kind, _, ident = field.partition(":")
                team_id = uuid.UUID(ident) if kind == "t" else None
                user_id = uuid.UUID(ident) if kind == "u" else None
                event = registry.create(
                    "api.calls",
                    {"count": count},
                    source=SOURCE,
                    actor=Actor(id=user_id),
                    subject=f"team/{team_id}" if team_id else f"user/{user_id}",
                    team_id=team_id,
                )
                uow.publish(
                    event.model_copy(
                        update={"id": uuid.uuid5(_IDS, f"{window}:{field}"), "time": at}
                    )
                )
        return len(counts)

    async def flush_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.flush()
            except Exception as exc:  # the window stays in Redis for the next run
                log.warning("api call flush failed", error=repr(exc))
