"""The usage service: usage metering, quotas, plans and invoices."""

from __future__ import annotations

from fastapi import FastAPI

from agenthq_common.auth import KeySource
from agenthq_common.membership import register_membership_handlers
from agenthq_common.service import Service
from agenthq_usage.consumers import register_metering_handlers
from agenthq_usage.metering.api import router as metering_router
from agenthq_usage.settings import UsageSettings


def bootstrap(settings: UsageSettings, *, key_source: KeySource | None = None) -> Service:
    service = Service(
        settings,
        key_source=key_source,
        title="AgentHQ usage service",
        description="Usage metering, quotas, plans and invoices.",
    )
    register_membership_handlers(service.consumer("usage.membership"))
    register_metering_handlers(service.consumer("usage.metering", prefetch=512, max_batch=256))
    service.include_router(metering_router)
    return service


def create_app() -> FastAPI:
    """Entry point for uvicorn (``--factory``): settings from the environment."""
    return bootstrap(UsageSettings()).create_app()
