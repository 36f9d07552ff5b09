"""The usage service: usage metering, quotas, plans and invoices."""

from __future__ import annotations

from fastapi import FastAPI

from agenthq_common.auth import KeySource
from agenthq_common.membership import register_membership_handlers
from agenthq_common.service import Service
from agenthq_usage.billing.api import router as billing_router
from agenthq_usage.billing.service import Billing, finalize_periodically
from agenthq_usage.consumers import register_metering_handlers
from agenthq_usage.metering.api import router as metering_router
from agenthq_usage.plans.catalog import load_plans
from agenthq_usage.settings import UsageSettings


def bootstrap(
    settings: UsageSettings, *, key_source: KeySource | None = None, run_jobs: bool = True
) -> Service:
    """``run_jobs=False``: tests finalize invoices themselves, at a time they choose."""
    service = Service(
        settings,
        key_source=key_source,
        title="AgentHQ usage service",
        description="Usage metering, quotas, plans and invoices.",
    )
    billing = Billing(load_plans(settings.plans_file))
    service.provide(billing)
    register_membership_handlers(service.consumer("usage.membership"))
    register_metering_handlers(
        service.consumer("usage.metering", prefetch=512, max_batch=256), billing
    )
    if run_jobs:

        async def invoices() -> None:
            await finalize_periodically(service.db, billing, settings.invoice_interval)

        service.run_in_background(invoices)
    service.include_router(metering_router)
    service.include_router(billing_router)
    return service


def create_app() -> FastAPI:
    """Entry point for uvicorn (``--factory``): settings from the environment."""
    return bootstrap(UsageSettings()).create_app()
