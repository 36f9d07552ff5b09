"""The realtime service: team channels over WebSocket, fanned out through Redis."""

from __future__ import annotations

import uuid

from fastapi import FastAPI

from agenthq_common.auth import KeySource
from agenthq_common.membership import register_membership_handlers
from agenthq_common.service import Service
from agenthq_realtime.channels.api import router as channels_router
from agenthq_realtime.channels.hub import Hub
from agenthq_realtime.channels.presence import Presence
from agenthq_realtime.channels.server import SocketEndpoint
from agenthq_realtime.channels.sockets import Channels
from agenthq_realtime.channels.upkeep import keep_presence, stop_listening_on_sigterm
from agenthq_realtime.consumers import register_fanout_handlers
from agenthq_realtime.settings import RealtimeSettings


def bootstrap(settings: RealtimeSettings, *, key_source: KeySource | None = None) -> Service:
    service = Service(
        settings,
        key_source=key_source,
        title="AgentHQ realtime service",
        description="Real-time team channels over WebSocket.",
    )
    prefix = settings.bus_namespace
    hub = Hub(
        service.redis,
        prefix=prefix,
        instance_id=settings.instance_id or uuid.uuid4().hex[:12],
        history=settings.history_frames,
        history_ttl=settings.history_ttl_seconds,
    )
    channels = Channels(
        hub=hub,
        presence=Presence(service.redis, prefix=prefix, ttl=settings.presence_ttl_seconds),
        db=service.db,
        verifier=service.verifier,
        resolver=service.membership_resolver,
        send_buffer=settings.send_buffer_bytes,
        auth_timeout=settings.auth_timeout_seconds,
    )
    endpoint = SocketEndpoint(channels, settings.ws_host, settings.ws_port)
    service.provide(channels)
    service.provide(endpoint)
    register_membership_handlers(service.consumer("realtime.membership"))
    register_fanout_handlers(
        service.consumer("realtime.fanout"),
        service.redis,
        prefix=prefix,
        history=settings.history_frames,
        history_ttl=settings.history_ttl_seconds,
    )

    async def read_streams() -> None:
        await hub.run(settings.redis_url)

    async def upkeep() -> None:
        await keep_presence(channels, settings.presence_ttl_seconds, prefix=prefix)

    async def listen() -> None:
        await endpoint.start()
        stop_listening_on_sigterm(endpoint.close)

    service.on_startup(listen)
    service.run_in_background(read_streams)
    service.run_in_background(upkeep)
    service.on_shutdown(endpoint.stop)
    service.include_router(channels_router)
    return service


def create_app() -> FastAPI:
    """Entry point for uvicorn (``--factory``): settings from the environment."""
    return bootstrap(RealtimeSettings()).create_app()
