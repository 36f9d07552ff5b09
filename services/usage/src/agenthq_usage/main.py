"""The usage service: Usage metering, quotas, plans and invoices."""

from __future__ import annotations

from fastapi import FastAPI

from agenthq_common.auth import KeySource
from agenthq_common.membership import register_membership_handlers
from agenthq_common.service import Service
from agenthq_usage.settings import UsageSettings


def bootstrap(settings: UsageSettings, *, key_source: KeySource | None = None) -> Service:
    service = Service(
        settings,
        key_source=key_source,
        title="AgentHQ usage service",
        description="Usage metering, quotas, plans and invoices.",
    )
    register_membership_handlers(service.consumer("usage.membership"))
    return service


def create_app() -> FastAPI:
    """Entry point for uvicorn (``--factory``): settings from the environment."""
    return bootstrap(UsageSettings()).create_app()
