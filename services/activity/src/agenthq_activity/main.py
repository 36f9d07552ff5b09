"""The activity service: The audit and activity log of every domain event."""

from __future__ import annotations

from fastapi import FastAPI

from agenthq_activity.activity.api import router as activity_router
from agenthq_activity.consumers import register_audit_handlers
from agenthq_activity.settings import ActivitySettings
from agenthq_common.auth import KeySource
from agenthq_common.membership import register_membership_handlers
from agenthq_common.service import Service


def bootstrap(settings: ActivitySettings, *, key_source: KeySource | None = None) -> Service:
    service = Service(
        settings,
        key_source=key_source,
        title="AgentHQ activity service",
        description="The audit and activity log of every domain event.",
    )
    register_membership_handlers(service.consumer("activity.membership"))
    register_audit_handlers(service.consumer("activity.audit"))
    service.include_router(activity_router)
    return service


def create_app() -> FastAPI:
    """Entry point for uvicorn (``--factory``): settings from the environment."""
    return bootstrap(ActivitySettings()).create_app()
