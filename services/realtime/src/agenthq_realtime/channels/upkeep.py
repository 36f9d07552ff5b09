"""The instance's background duties: heart-beating its presence entries,
clearing the entries of instances that died, and closing its sockets politely
when it stops."""

from __future__ import annotations

import asyncio
import signal
import threading
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
            await channels.presence.heartbeat(list(channels.joined.values()))
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


def close_first_on_sigterm(channels: Channels) -> None:
    """On SIGTERM, close every socket with 1001 *before* uvicorn's own
    shutdown, which would otherwise close them with 1012; then let uvicorn go
    on as usual (its handler is called once ours is done)."""
    if threading.current_thread() is not threading.main_thread():
        return  # signals reach the main thread only (e.g. servers in tests)
    previous = signal.getsignal(signal.SIGTERM)
    loop = asyncio.get_running_loop()

    async def drain_then_exit() -> None:
        try:
            await close_all(channels)
        finally:
            if callable(previous):
                previous(signal.SIGTERM, None)

    running: set[asyncio.Task[None]] = set()  # a reference, so the task is not collected

    def on_sigterm() -> None:
        loop.remove_signal_handler(signal.SIGTERM)
        task = loop.create_task(drain_then_exit())
        running.add(task)
        task.add_done_callback(running.discard)

    loop.add_signal_handler(signal.SIGTERM, on_sigterm)
