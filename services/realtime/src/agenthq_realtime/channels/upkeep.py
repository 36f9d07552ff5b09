"""The instance's background duties: heart-beating its presence entries,
clearing the entries of instances that died, and closing its sockets politely
when it stops."""

from __future__ import annotations

import asyncio
import uuid

from agenthq_common.logging import get_logger
from agenthq_realtime.channels.frames import KEY_PREFIX
from agenthq_realtime.channels.sockets import Channels

log = get_logger(__name__)
GOING_AWAY = 1001


async def keep_presence(channels: Channels, ttl: float, *, prefix: str) -> None:
    """Every ttl/3: refresh this instance's entries; one instance at a time
    also removes expired ones and announces who left because of it."""
    interval = ttl / 3
    lock = f"{prefix}{KEY_PREFIX}:presence-janitor"
    while True:
        await asyncio.sleep(interval)
        try:
            conns = channels.hub.connections()
            await channels.presence.heartbeat(
                [
                    (c.team_id, c.user_id, channels.presence.member(c.id, c.connected_at))
                    for c in conns
                ]
            )
            redis = channels.presence.redis
            if await redis.set(lock, uuid.uuid4().hex, nx=True, px=int(interval * 1000)):
                for team_id, user_id in await channels.presence.expired():
                    await channels.announce(team_id, user_id, "presence.left")
        except Exception as exc:  # next round tries again
            log.warning("presence upkeep failed", error=repr(exc))


async def close_all(channels: Channels) -> None:
    """SIGTERM: tell every client to reconnect elsewhere (1001), and take this
    instance's connections out of the presence at once."""
    conns = channels.hub.connections()
    for conn in conns:
        conn.close(GOING_AWAY, "Server shutting down: reconnect")
    # Each endpoint detaches its connection, leaves the presence and sends its
    # close frame; give them a moment.
    for _ in range(50):
        if not channels.hub.connections():
            break
        await asyncio.sleep(0.1)
