"""Event handlers of the usage service."""

from __future__ import annotations

from typing import Any

from agenthq_common.db import UnitOfWork
from agenthq_common.events import CloudEvent
from agenthq_common.inbox import EventConsumer, ParsedEvent
from agenthq_usage.billing.service import Billing
from agenthq_usage.metering import service


def register_metering_handlers(consumer: EventConsumer, billing: Billing) -> None:
    @consumer.on_batch(*service.METERED_TYPES)
    async def count_usage(events: list[ParsedEvent], uow: UnitOfWork) -> None:
        # One statement per batch; the ledger makes it exact even across the
        # HTTP ingest, the inbox makes a redelivered batch free.
        counted = await service.count(uow, [service.metered_from_event(e) for e, _ in events])
        await billing.after_counting(uow, counted)

    @consumer.on("team.created", "team.plan_changed")
    async def record_plan(event: CloudEvent, _: Any, uow: UnitOfWork) -> None:
        plan = event.data.get("plan") or event.data.get("new_plan")
        team_id = event.teamid or event.data.get("team_id")
        if plan and team_id:
            await billing.record_plan(uow, team_id, str(plan), event.time)
