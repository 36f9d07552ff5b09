"""The instance's background duties: heart-beating its presence entries,
clearing the entries of instances that died, and no new sockets once it is
told to stop."""

from __future__ import annotations

import asyncio
import signal
import threading
import uuid
from collections.abc import Callable

from agenthq_common.logging import get_logger
from agenthq_realtime.channels.frames import KEY_PREFIX
from agenthq_realtime.channels.sockets import Channels

log = get_logger(__name__)


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


def stop_listening_on_sigterm(stop: Callable[[], object]) -> None:
    """On SIGTERM, first ``stop``: no new sockets, and every socket held is
    closed with 1001 (clients reconnect to another instance) while Redis is
    still there for their presence; then uvicorn's own shutdown runs. A second
    SIGTERM goes to uvicorn's handler as usual (it forces the exit)."""
    if threading.current_thread() is not threading.main_thread():
        return  # signals reach the main thread only (e.g. servers in tests)
    previous = signal.getsignal(signal.SIGTERM)
    loop = asyncio.get_running_loop()

    def on_sigterm() -> None:
        loop.remove_signal_handler(signal.SIGTERM)
        signal.signal(signal.SIGTERM, previous)
        try:
            stop()
        finally:
            if callable(previous):
                previous(signal.SIGTERM, None)

    loop.add_signal_handler(signal.SIGTERM, on_sigterm)
