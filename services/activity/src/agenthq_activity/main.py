"""The activity service: the audit and activity log of every domain event."""

from __future__ import annotations

from fastapi import FastAPI

from agenthq_activity.activity.api import router as activity_router
from agenthq_activity.activity.retention import RetentionPolicy, run_periodically
from agenthq_activity.activity.service import ActivityLog
from agenthq_activity.consumers import register_audit_handlers
from agenthq_activity.settings import ActivitySettings
from agenthq_common.auth import KeySource
from agenthq_common.membership import register_membership_handlers
from agenthq_common.service import Service


def bootstrap(
    settings: ActivitySettings, *, key_source: KeySource | None = None, run_retention: bool = True
) -> Service:
    """``run_retention=False``: tests apply retention themselves, at a time they choose."""
    service = Service(
        settings,
        key_source=key_source,
        title="AgentHQ activity service",
        description="The audit and activity log of every domain event.",
        # The listing's statements are prepared once and run for teams of every
        # size and filters of every selectivity: after five runs PostgreSQL would
        # switch to one generic plan, which for a big team and a common word
        # fetches every match and sorts it (bench/activity.py: 1 s instead of
        # 12 ms). A plan per execution costs a fraction of a millisecond.
        database_settings={"plan_cache_mode": "force_custom_plan"},
    )
    log = ActivityLog(service.db)
    service.provide(log)
    service.provide(RetentionPolicy(settings.retention_days, settings.retention_default_days))
    register_membership_handlers(service.consumer("activity.membership"))
    register_audit_handlers(
        service.consumer(
            "activity.audit", prefetch=settings.audit_prefetch, max_batch=settings.audit_max_batch
        ),
        log,
    )
    if run_retention:
        policy = service.component(RetentionPolicy)

        async def retention() -> None:
            await run_periodically(service.db, log.partitions, policy, settings.retention_interval)

        service.run_in_background(retention)
    service.include_router(activity_router)
    return service


def create_app() -> FastAPI:
    """Entry point for uvicorn (``--factory``): settings from the environment."""
    return bootstrap(ActivitySettings()).create_app()
