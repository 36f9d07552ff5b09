"""Event handlers of the realtime service."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from agenthq_common.db import UnitOfWork
from agenthq_common.events import CloudEvent
from agenthq_common.inbox import EventConsumer
from agenthq_realtime.channels.frames import KEY_PREFIX, entry, stream_key

# Appends a frame once per event id, even when the bus redelivers the event
# after a crash between the append and the inbox commit.
# KEYS: seen-marker, stream;  ARGV: maxlen, frame json, marker ttl, history ttl
_APPEND_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[3]) then
  local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'f', ARGV[2])
  redis.call('EXPIRE', KEYS[2], ARGV[4])
  return id
end
return false
"""
SEEN_TTL_SECONDS = 86_400


def register_fanout_handlers(
    consumer: EventConsumer,
    redis: aioredis.Redis,
    *,
    prefix: str,
    history: int,
    history_ttl: int,
) -> None:
    """Every domain event of a team goes, once, into the team's stream, from
    which every instance pushes it to its sockets."""
    append_once = redis.register_script(_APPEND_ONCE)

    @consumer.on("#")
    async def fan_out(event: CloudEvent, _: Any, uow: UnitOfWork) -> None:
        if event.teamid is None:
            return
        fields = entry(
            event.type,
            event.teamid,
            event.actorid,
            event.data,
            time=event.time.isoformat().replace("+00:00", "Z"),
        )
        await append_once(
            keys=[f"{prefix}{KEY_PREFIX}:seen:{event.id}", stream_key(prefix, event.teamid)],
            args=[history, fields["f"], SEEN_TTL_SECONDS, history_ttl],
        )
