"""The realtime service: Real-time team channels over WebSocket."""

from __future__ import annotations

from fastapi import FastAPI

from agenthq_common.auth import KeySource
from agenthq_common.membership import register_membership_handlers
from agenthq_common.service import Service
from agenthq_realtime.settings import RealtimeSettings


def bootstrap(settings: RealtimeSettings, *, key_source: KeySource | None = None) -> Service:
    service = Service(
        settings,
        key_source=key_source,
        title="AgentHQ realtime service",
        description="Real-time team channels over WebSocket.",
    )
    register_membership_handlers(service.consumer("realtime.membership"))
    return service


def create_app() -> FastAPI:
    """Entry point for uvicorn (``--factory``): settings from the environment."""
    return bootstrap(RealtimeSettings()).create_app()
